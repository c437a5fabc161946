/**
 * The task queue: `concurrency` running at once, `maxQueued` waiting (past it a 503 problem
 * from a handler, an error outside one), per-attempt timeouts aborting `ctx.signal`,
 * retries with exponential backoff and jitter (attempts counted, delays within their
 * bounds), cancellation of running, waiting and retrying tasks, and the stats.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { TaskContext } from '../../plugins/tasks/index.js'
import { backoff } from '../../plugins/tasks/queue.js'
import { withTimeout } from '../helpers.js'
import { gate, linesOf, setup, until } from './tasks-helpers.js'

const QUEUE_FULL = (waiting: number, instance: string, requestId: string): Record<string, unknown> => ({
  type: 'https://spikard.dev/errors/tasks-queue-full',
  title: 'Service Unavailable',
  status: 503,
  detail: `The background task queue is full (${waiting} tasks waiting); retry shortly`,
  instance,
  requestId
})

test('concurrency: never more than tasks.concurrency run at once; the others wait their turn in order', async (t) => {
  const { app } = await setup(t, { tasks: { concurrency: 2 } })
  let running = 0
  let most = 0
  const started: number[] = []
  const gates = Array.from({ length: 5 }, () => gate())
  for (const [i, g] of gates.entries()) {
    app.tasks.add(async () => {
      started.push(i)
      most = Math.max(most, ++running)
      await g.opened
      running--
    })
  }
  assert.deepStrictEqual(app.tasks.stats(), { queued: 3, running: 2, succeeded: 0, failed: 0, cancelled: 0 })
  for (const g of gates) { g.open(); await new Promise((resolve) => setImmediate(resolve)) }
  await withTimeout(app.tasks.idle(), 3000, 'the tasks')
  assert.equal(most, 2)
  assert.deepStrictEqual(started, [0, 1, 2, 3, 4])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 5, failed: 0, cancelled: 0 })
})

test('maxQueued: past it a handler\'s add() is a 503 problem (whole body), app.tasks.add() throws; running tasks do not count', async (t) => {
  const hold = gate()
  const { app } = await setup(t, { tasks: { concurrency: 1, maxQueued: 1 } }, async (app) => {
    app.post('/events', async (request, reply) => {
      request.tasks.add(async function record () {})
      return reply.code(202).send({ queued: true })
    })
  })
  app.tasks.add(async () => { await hold.opened }) // running: not counted
  app.tasks.add(async () => {}) // waiting: the one place
  assert.deepStrictEqual(app.tasks.stats(), { queued: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0 })
  const res = await app.inject({ method: 'POST', url: '/events', headers: { 'x-request-id': 'full-1' } })
  assert.equal(res.statusCode, 503)
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.deepStrictEqual(res.json(), QUEUE_FULL(1, '/events', 'full-1'))
  assert.throws(() => app.tasks.add(() => {}), { code: 'SPK_ERR_TASKS_QUEUE_FULL', statusCode: 503, message: 'The background task queue is full (1 tasks waiting); retry shortly' })
  assert.deepStrictEqual(app.tasks.stats(), { queued: 1, running: 1, succeeded: 0, failed: 0, cancelled: 0 }, 'nothing refused is counted')
  hold.open()
  await withTimeout(app.tasks.idle(), 3000, 'the tasks')
  assert.equal((await app.inject({ method: 'POST', url: '/events' })).statusCode, 202)
  await withTimeout(app.tasks.idle(), 3000, 'the request\'s task')
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 3, failed: 0, cancelled: 0 })
})

test('maxQueued: 0 runs a task at once while a place is free, and refuses any that would wait (a request\'s always would)', async (t) => {
  const { app } = await setup(t, { tasks: { concurrency: 1, maxQueued: 0 } }, async (app) => {
    app.get('/', async (request) => { request.tasks.add(() => {}); return 'ok' })
  })
  const hold = gate()
  app.tasks.add(async () => { await hold.opened })
  assert.throws(() => app.tasks.add(() => {}), { code: 'SPK_ERR_TASKS_QUEUE_FULL' })
  assert.deepStrictEqual((await app.inject({ url: '/', headers: { 'x-request-id': 'zero' } })).json(), QUEUE_FULL(0, '/', 'zero'))
  hold.open()
  await withTimeout(app.tasks.idle(), 3000, 'the task')
})

test('timeout: the attempt\'s signal is aborted with a TimeoutError and the task fails; a task\'s own timeout wins', async (t) => {
  const { app, logs } = await setup(t, { tasks: { timeout: '40ms' } })
  const reasons: string[] = []
  const waitForAbort = async (ctx: TaskContext): Promise<void> => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { reasons.push(`${ctx.name}: ${(ctx.signal.reason as Error).name} ${(ctx.signal.reason as Error).message}`); resolve() }))
  }
  app.tasks.add({ fn: waitForAbort, name: 'default' })
  app.tasks.add({ fn: waitForAbort, name: 'own', timeout: '15ms' })
  app.tasks.add({ fn: waitForAbort, name: 'numeric', timeout: 25 })
  await withTimeout(app.tasks.idle(), 3000, 'the tasks to time out')
  assert.deepStrictEqual(reasons.sort(), [
    'default: TimeoutError task default timed out after 40 ms',
    'numeric: TimeoutError task numeric timed out after 25 ms',
    'own: TimeoutError task own timed out after 15 ms'
  ])
  const failed = linesOf(logs, 'task failed')
  assert.deepStrictEqual(failed.map((l) => [l.task, l.attempt, l.err.message]).sort(), [
    ['default', 1, 'task default timed out after 40 ms'], ['numeric', 1, 'task numeric timed out after 25 ms'], ['own', 1, 'task own timed out after 15 ms']
  ])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 0, failed: 3, cancelled: 0 })
})

test('retries: failed attempts are retried with backoff (each delay within its jittered bound), attempt counted from 1', async (t) => {
  const { app, logs } = await setup(t, { tasks: { retries: 3, retryDelay: '20ms' } })
  const attempts: number[] = []
  const id = app.tasks.add(async function flaky (ctx: TaskContext) {
    attempts.push(ctx.attempt)
    if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} failed`)
  })
  await withTimeout(app.tasks.idle(), 3000, 'the retries')
  assert.deepStrictEqual(attempts, [1, 2, 3])
  const retried = linesOf(logs, 'task attempt failed; retrying')
  assert.deepStrictEqual(retried.map((l) => [l.level, l.taskId, l.task, l.attempt, l.err.message]), [
    [40, id, 'flaky', 1, 'attempt 1 failed'], [40, id, 'flaky', 2, 'attempt 2 failed']
  ])
  // retryDelay * 2^(attempt-1), jittered between half of it and all of it.
  assert.ok(retried[0].retryInMs >= 10 && retried[0].retryInMs <= 20, `first delay ${retried[0].retryInMs}`)
  assert.ok(retried[1].retryInMs >= 20 && retried[1].retryInMs <= 40, `second delay ${retried[1].retryInMs}`)
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 0 })

  // A task's own retries win over tasks.retries; once spent, the task fails.
  const count: number[] = []
  app.tasks.add({ fn: (ctx: TaskContext) => { count.push(ctx.attempt); throw new Error('always') }, name: 'doomed', retries: 1 })
  await withTimeout(app.tasks.idle(), 3000, 'the doomed task')
  assert.deepStrictEqual(count, [1, 2])
  assert.deepStrictEqual(linesOf(logs, 'task failed').map((l) => [l.task, l.attempt]), [['doomed', 2]])
})

test('backoff: doubles per attempt, jitter from half to all of it, at most one minute', () => {
  assert.deepStrictEqual([1, 2, 3, 4, 5].map((attempt) => backoff(attempt, 10_000, 0)), [5000, 10_000, 20_000, 30_000, 30_000])
  assert.deepStrictEqual([1, 2, 3, 4, 5].map((attempt) => backoff(attempt, 10_000, 0.5)), [7500, 15_000, 30_000, 45_000, 45_000])
  assert.deepStrictEqual([1, 2, 3, 4, 5].map((attempt) => backoff(attempt, 10_000, 0.999_999)), [10_000, 20_000, 40_000, 60_000, 60_000])
  assert.equal(backoff(1, 0, 0.7), 0)
})

test('cancel: a running task\'s signal is aborted and its place freed; a queued or waiting-to-retry one never runs again', async (t) => {
  const { app, logs } = await setup(t, { tasks: { concurrency: 1, retries: 5, retryDelay: '1m' } })
  let reason: unknown
  const running = app.tasks.add(async function long (ctx: TaskContext) {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { reason = ctx.signal.reason; resolve() }))
  })
  const ran: string[] = []
  const queued = app.tasks.add(async function never () { ran.push('never') })
  const next = app.tasks.add(async function next () { ran.push('next') })
  assert.equal(app.tasks.cancel(queued), true)
  assert.equal(app.tasks.cancel(running), true)
  await withTimeout(app.tasks.idle(), 3000, 'the remaining task')
  assert.equal((reason as Error).name, 'AbortError')
  assert.deepStrictEqual(ran, ['next'])
  assert.equal(next.length, 36)
  assert.equal(app.tasks.cancel(running), false, 'done: nothing to cancel')
  assert.equal(app.tasks.cancel('no-such-task'), false)
  assert.deepStrictEqual(linesOf(logs, 'task cancelled').map((l) => [l.taskId, l.task, l.state]), [[queued, 'never', 'queued'], [running, 'long', 'running']])

  // Waiting for its retry (a minute away): cancel wakes it, and it is not tried again.
  const tries: number[] = []
  const retrying = app.tasks.add((ctx: TaskContext) => { tries.push(ctx.attempt); throw new Error('fails') })
  await until(() => linesOf(logs, 'task attempt failed; retrying').length === 1, 'the first failure')
  assert.equal(app.tasks.cancel(retrying), true)
  await withTimeout(app.tasks.idle(), 3000, 'the cancelled retry')
  assert.deepStrictEqual(tries, [1])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 3 })
})

test('cancel: a request\'s task still waiting for its response is removed', async (t) => {
  const ran: string[] = []
  const { app } = await setup(t, {}, async (app) => {
    app.get('/', async (request) => {
      const id = request.tasks.add(() => { ran.push('cancelled one') })
      request.tasks.add(() => { ran.push('kept') })
      return { cancelled: app.tasks.cancel(id), stats: app.tasks.stats() }
    })
  })
  const res = await app.inject('/')
  assert.deepStrictEqual(res.json(), { cancelled: true, stats: { queued: 1, running: 0, succeeded: 0, failed: 0, cancelled: 1 } })
  await withTimeout(app.tasks.idle(), 3000, 'the kept task')
  assert.deepStrictEqual(ran, ['kept'])
})
