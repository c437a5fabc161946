/**
 * Background tasks at shutdown. `spikard start` in a child process, SIGTERM: running and
 * queued tasks finish inside the budget (exit 0); past it each unfinished one is logged by
 * id and name, its signal aborted, exit 1. A rejection left unhandled inside a task does
 * not end the process. In process, app.close() drains the same way; a request in flight adds
 * its task, which close() waits for, and one added after that is refused.
 */
import { describe, it, test } from 'node:test'
import assert from 'node:assert/strict'
import type { TaskContext } from '../../plugins/tasks/index.js'
import { UUID, listen, withTimeout } from '../helpers.js'
import { exited, get, startCli } from '../fixtures/shutdown-child.js'
import { gate, linesOf, setup, until } from './tasks-helpers.js'

const ROUTES = `const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const timer = setTimeout(resolve, ms)
  signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
})
export default async function routes (app) {
  // Queues ?count receipt tasks taking ?ms each; with ?ignore=1 they ignore their signal.
  app.post('/orders', async (request, reply) => {
    const { count = 1, ms = 100, ignore } = request.query
    const ids = []
    for (let i = 0; i < Number(count); i++) {
      ids.push(request.tasks.add(async function sendReceipt (ctx, n) {
        ctx.log.info({ n }, 'receipt task started')
        ctx.signal.addEventListener('abort', () => ctx.log.info({ n, reason: ctx.signal.reason.message }, 'receipt task aborted'))
        await sleep(Number(ms), ignore === '1' ? undefined : ctx.signal)
        ctx.log.info({ n }, 'receipt sent')
      }, i))
    }
    return reply.code(202).send({ ids })
  })
  app.post('/float', async (request) => {
    request.tasks.add(async function floats () {
      void (async () => { await sleep(10); throw new Error('floating boom') })()
    })
    return { ok: true }
  })
  app.get('/alive', async () => ({ alive: true }))
}
`

/** POST over node:http; the body parsed as JSON. */
async function post (port: number, path: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { 'x-request-id': 'order-1' } })
  return { status: res.status, body: await res.json() }
}

describe('spikard start: SIGTERM while tasks run', { concurrency: 3 }, () => {
  it('inside the budget: the running and the queued task both finish, exit 0', async (t) => {
    const server = await startCli(t, { requestId: true, tasks: { concurrency: 1 }, shutdown: { timeout: '5s' } }, {}, ROUTES)
    const { status, body } = await post(server.port, '/orders?count=2&ms=300')
    assert.equal(status, 202)
    await server.waitForLine((l) => l.msg === 'receipt task started' && l.n === 0, 'the first task to start')
    server.child.kill('SIGTERM')
    assert.deepStrictEqual(await exited(server), { code: 0, signal: null }, server.stderr())
    const lines = server.lines()
    const waiting = linesOf(lines, 'tasks: waiting for background tasks to finish')
    assert.deepStrictEqual(waiting.map((l) => [l.queued, l.running]), [[1, 1]])
    assert.deepStrictEqual(linesOf(lines, 'receipt sent').map((l) => [l.n, l.taskId, l.task, l.reqId]), [
      [0, body.ids[0], 'sendReceipt', 'order-1'], [1, body.ids[1], 'sendReceipt', 'order-1']
    ])
    assert.deepStrictEqual(linesOf(lines, 'task unfinished at the end of the shutdown budget'), [])
    assert.ok(lines.some((l) => l.msg === 'shutdown: drain hook finished' && l.drainHook === 'tasks'), server.stdout())
    assert.equal(lines.at(-1)?.msg, 'exiting with code 0')
  })

  // Without the feature's signals, spikard start's own handler closes the app: the same.
  for (const signals of [true, false]) {
    it(`past the budget: each unfinished task is logged by id and name, its signal aborted, exit 1 (shutdown.signals ${signals})`, async (t) => {
      const server = await startCli(t, { requestId: true, tasks: { concurrency: 1 }, shutdown: { timeout: '600ms', signals } }, {}, ROUTES)
      const { body } = await post(server.port, '/orders?count=2&ms=60000&ignore=1')
      await server.waitForLine((l) => l.msg === 'receipt task started', 'the first task to start')
      server.child.kill('SIGTERM')
      assert.deepStrictEqual(await exited(server), { code: 1, signal: null }, server.stderr())
      const lines = server.lines()
      const unfinished = linesOf(lines, 'task unfinished at the end of the shutdown budget')
      assert.deepStrictEqual(unfinished.map((l) => [l.level, l.taskId, l.task, l.state, l.attempt, l.reqId]), [
        [50, body.ids[0], 'sendReceipt', 'running', 1, 'order-1'],
        [50, body.ids[1], 'sendReceipt', 'queued', 0, 'order-1']
      ])
      assert.deepStrictEqual(linesOf(lines, 'receipt task aborted').map((l) => [l.n, l.reason]), [[0, 'shutdown budget of 600 ms exceeded']])
      assert.deepStrictEqual(linesOf(lines, 'receipt sent'), [])
      // The last line before the exit, as for requests cut at the budget's end.
      const overrun = linesOf(lines, 'shutdown did not finish in time')
      assert.deepStrictEqual(overrun.map((l) => [l.pendingDrainHooks, l.exitCode]), [[['tasks'], 1]])
      assert.equal(lines.at(-1), overrun[0])
    })
  }

  for (const signals of [true, false]) {
    it(`a second SIGTERM during the drain: each unfinished task is still logged by id and name before the exit 1 (shutdown.signals ${signals})`, async (t) => {
      const server = await startCli(t, { requestId: true, tasks: { concurrency: 1 }, shutdown: { timeout: '20s', signals } }, {}, ROUTES)
      const { body } = await post(server.port, '/orders?count=2&ms=60000&ignore=1')
      await server.waitForLine((l) => l.msg === 'receipt task started', 'the first task to start')
      server.child.kill('SIGTERM')
      await server.waitForLine((l) => l.msg === 'tasks: waiting for background tasks to finish', 'the drain to wait for the tasks')
      server.child.kill('SIGTERM')
      assert.deepStrictEqual(await exited(server, 5000), { code: 1, signal: null }, server.stderr())
      const lines = server.lines()
      const unfinished = linesOf(lines, 'task unfinished at the end of the shutdown budget')
      assert.deepStrictEqual(unfinished.map((l) => [l.level, l.taskId, l.task, l.state, l.reqId]), [
        [50, body.ids[0], 'sendReceipt', 'running', 'order-1'],
        [50, body.ids[1], 'sendReceipt', 'queued', 'order-1']
      ], server.stdout())
      assert.equal(lines.at(-1)?.msg, 'second SIGTERM while shutting down: exiting at once')
    })
  }

  it('a rejection left unhandled inside a task is logged as the task\'s; the server goes on and exits 0 on SIGTERM', async (t) => {
    const server = await startCli(t, { requestId: true, shutdown: { timeout: '5s' } }, {}, ROUTES)
    assert.equal((await post(server.port, '/float')).status, 200)
    const line = await server.waitForLine((l) => l.msg === 'task: unhandled rejection (caught; the process goes on)', 'the rejection to be logged')
    assert.deepStrictEqual([line.level, line.task, line.attempt, line.reqId, line.err.message], [50, 'floats', 1, 'order-1', 'floating boom'])
    assert.match(line.taskId, UUID)
    assert.match(line.err.stack, /^Error: floating boom\n {4}at .*routes\.mjs/)
    assert.equal((await get(server.port, '/alive')).status, 200)
    server.child.kill('SIGTERM')
    assert.deepStrictEqual(await exited(server), { code: 0, signal: null }, server.stderr())
    assert.deepStrictEqual(linesOf(server.lines(), 'uncaught error: shutting down'), [])
  })
})

test('app.close() drains: a running and a queued task finish before it resolves; later tasks are refused', async (t) => {
  const release = gate()
  const finished: number[] = []
  const { app, logs } = await setup(t, { tasks: { concurrency: 1 }, shutdown: { timeout: '5s', signals: false } })
  const work = async (_ctx: TaskContext, n: number): Promise<void> => { await release.opened; finished.push(n) }
  app.tasks.add(work, 1)
  app.tasks.add(work, 2)
  const closing = app.close()
  await until(() => linesOf(logs, 'tasks: waiting for background tasks to finish').length === 1, 'the drain to begin')
  assert.throws(() => app.tasks.add(work, 3), (error: Error & { code?: string, statusCode?: number }) => {
    assert.deepStrictEqual([error.code, error.statusCode, error.message], ['SPK_ERR_TASKS_SHUTTING_DOWN', 503, 'The server is shutting down and accepts no new background tasks; retry on another instance'])
    return true
  })
  release.open()
  await withTimeout(closing, 5000, 'close')
  assert.deepStrictEqual(finished, [1, 2])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 2, failed: 0, cancelled: 0 })
  assert.deepStrictEqual(linesOf(logs, 'shutdown did not finish in time'), [])
})

test('app.close() past the budget: the unfinished tasks are named, their signals aborted, close() resolves', async (t) => {
  const { app, logs } = await setup(t, { tasks: { concurrency: 1 }, shutdown: { timeout: '300ms', signals: false } })
  let signal: AbortSignal | undefined
  const stuck = app.tasks.add(async function stuck (ctx: TaskContext) { signal = ctx.signal; await new Promise(() => {}) })
  const waiting = app.tasks.add(async function waiting () {})
  await withTimeout(app.close(), 3000, 'close')
  assert.equal(signal?.aborted, true)
  assert.deepStrictEqual(linesOf(logs, 'task unfinished at the end of the shutdown budget').map((l) => [l.taskId, l.task, l.state]), [
    [stuck, 'stuck', 'running'], [waiting, 'waiting', 'queued']
  ])
  assert.deepStrictEqual(linesOf(logs, 'shutdown did not finish in time').map((l) => l.pendingDrainHooks), [['tasks']])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 2 })
})

test('a request in flight when the shutdown begins adds its task: it runs, and close() waits for it; app.tasks.add is refused', async (t) => {
  const release = gate()
  const blocker = gate()
  const entered = gate()
  const ran: string[] = []
  const { app } = await setup(t, { shutdown: { timeout: '5s', signals: false } }, async (app) => {
    app.get('/late', async (request) => {
      entered.open()
      await release.opened
      request.tasks.add(async function receipt () { ran.push('receipt') })
      return { queued: true }
    })
  })
  const { url } = await listen(app)
  // A task, so that the drain hook exists, and is still waiting when the request is done.
  app.tasks.add(async () => { await blocker.opened; ran.push('blocker') })
  const pending = fetch(`${url}/late`, { headers: { 'x-request-id': 'late-1' } })
  await until(() => app.tasks.stats().running === 1, 'the task to run')
  await withTimeout(entered.opened, 3000, 'the request to reach its handler')
  const closing = app.close()
  await until(() => app.spikard.phase === 'closing', 'the shutdown to reach closing')
  assert.throws(() => app.tasks.add(() => {}), { code: 'SPK_ERR_TASKS_SHUTTING_DOWN' }, 'outside a request: refused')
  release.open()
  const res = await withTimeout(pending, 3000, 'the late response')
  assert.equal(res.status, 200)
  assert.deepStrictEqual(await res.json(), { queued: true })
  blocker.open()
  await withTimeout(closing, 5000, 'close')
  assert.deepStrictEqual(ran.sort(), ['blocker', 'receipt'])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 2, failed: 0, cancelled: 0 })
})

test('the app\'s first task, added by a request in flight once the server is closing, is refused: nothing would wait for it', async (t) => {
  const release = gate()
  const entered = gate()
  const { app } = await setup(t, { shutdown: { timeout: '5s', signals: false } }, async (app) => {
    app.get('/late', async (request) => {
      entered.open()
      await release.opened
      request.tasks.add(async function receipt () {})
      return { queued: true }
    })
  })
  const { url } = await listen(app)
  const pending = fetch(`${url}/late`)
  await withTimeout(entered.opened, 3000, 'the request to reach its handler')
  const closing = app.close()
  await until(() => app.spikard.phase === 'closing', 'the shutdown to reach closing')
  release.open()
  const res = await withTimeout(pending, 3000, 'the late response')
  assert.equal(res.status, 503)
  assert.equal((await res.json()).type, 'https://spikard.dev/errors/tasks-shutting-down')
  await withTimeout(closing, 5000, 'close')
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 })
})

test('the budget runs out while a request is in flight: the unfinished tasks are named and aborted then, not when the app closes', async (t) => {
  let signal: AbortSignal | undefined
  const { app, logs } = await setup(t, { tasks: { concurrency: 1 }, shutdown: { timeout: '400ms', signals: false } }, async (app) => {
    app.get('/slow', async () => { await new Promise((resolve) => setTimeout(resolve, 2000)); return { ok: true } })
  })
  const { url } = await listen(app)
  const stuck = app.tasks.add(async function stuck (ctx: TaskContext) { signal = ctx.signal; await new Promise(() => {}) })
  const slow = fetch(`${url}/slow`).catch(() => undefined)
  await until(() => signal !== undefined, 'the task to run')
  await new Promise((resolve) => setTimeout(resolve, 50))
  const closing = app.close()
  await until(() => linesOf(logs, 'shutdown did not finish in time').length === 1, 'the budget to run out')
  assert.equal(signal?.aborted, true)
  assert.deepStrictEqual(linesOf(logs, 'task unfinished at the end of the shutdown budget').map((l) => [l.taskId, l.task]), [[stuck, 'stuck']])
  await withTimeout(closing, 3000, 'close')
  await slow
  assert.deepStrictEqual(linesOf(logs, 'task unfinished when the app closed'), [])
})
