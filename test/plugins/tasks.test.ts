/**
 * Background tasks: on by default; a request's tasks run after its response has been sent
 * (a slow one does not hold the response back, on a real socket), are dropped with a log
 * line when it never was (unless `always`), run with `fn(ctx, ...args)` in the request's
 * context (its id in the task's logs, `requestContext.get()`), and a task that throws or
 * leaves a rejection unhandled is logged while the process goes on.
 * Queue bounds, timeouts, retries and cancel: tasks-queue.test.ts; shutdown: tasks-shutdown.test.ts.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import WebSocket from 'ws'
import spikard, { requestContext } from '../../src/index.js'
import { startupSummary } from '../../src/summary.js'
import { loadConfig } from '../../src/config/load.js'
import { createServer } from '../../src/server.js'
import { resolveSpikardOptions } from '../../src/options.js'
import type { TaskContext } from '../../plugins/tasks/index.js'
import { assertOptionsRefused, listen, UUID, withTimeout } from '../helpers.js'
import { gate, linesOf, setup, until } from './tasks-helpers.js'

test('on by default with its defaults; true gives the defaults; false leaves neither app.tasks nor request.tasks', async (t) => {
  const { app } = await setup(t, {})
  assert.deepStrictEqual(app.spikard.options.tasks, { concurrency: 10, maxQueued: 1000, timeout: 30_000, retries: 0, retryDelay: 1000 })
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 })
  assert.deepStrictEqual(resolveSpikardOptions({ tasks: true }).tasks, app.spikard.options.tasks)
  assert.equal(startupSummary(resolveSpikardOptions({})).record.features.tasks, 'concurrency=10 maxQueued=1000 timeout=30s retries=0')
  assert.equal(startupSummary(resolveSpikardOptions({ tasks: { retries: 3, retryDelay: '250ms', timeout: '1m' } })).record.features.tasks,
    'concurrency=10 maxQueued=1000 timeout=1m retries=3 retryDelay=250ms')

  const off = await setup(t, { tasks: false }, async (app) => {
    app.get('/has', async (request) => ({ request: 'tasks' in request }))
  })
  assert.equal(off.app.hasDecorator('tasks'), false)
  assert.deepStrictEqual((await off.app.inject('/has')).json(), { request: false })
  assert.ok(startupSummary(resolveSpikardOptions({ tasks: false })).record.off.includes('tasks'))
})

test('invalid options fail at ready(), naming the key', async () => {
  await assertOptionsRefused('tasks', { concurrency: 0 }, ['tasks.concurrency: expected an integer >= 1, found 0'])
  await assertOptionsRefused('tasks', { maxQueued: -1 }, ['tasks.maxQueued: expected an integer >= 0, found -1'])
  await assertOptionsRefused('tasks', { retries: 11 }, ['tasks.retries: expected an integer >= 0 and <= 10, found 11'])
  await assertOptionsRefused('tasks', { timeout: 0 }, ['tasks.timeout: expected a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h"), found 0'])
  // Longer than a timer can wait: Node would fire it after 1 ms, failing every task at once.
  await assertOptionsRefused('tasks', { timeout: '600h' }, ['tasks.timeout: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms'])
  await assertOptionsRefused('tasks', { workers: 2 }, ['tasks.workers: unknown key'])
})

test('a request\'s task runs after its response has been sent, and a slow task does not delay it (real socket)', async (t) => {
  const order: string[] = []
  const slow = gate()
  let finished = false
  const { app } = await setup(t, {}, async (app) => {
    app.post('/orders', async (request, reply) => {
      reply.raw.prependOnceListener('finish', () => order.push('response sent'))
      const id = request.tasks.add(async function sendReceipt (ctx: TaskContext, orderId: string) {
        order.push(`task ${ctx.name} ${orderId} started (response finished: ${reply.raw.writableFinished})`)
        await slow.opened
        finished = true
      }, 'o-1')
      order.push('handler returned')
      return reply.code(202).send({ taskId: id })
    })
  })
  const { url } = await listen(app)
  const res = await withTimeout(fetch(`${url}/orders`, { method: 'POST' }), 3000, 'the response, while the task is still running')
  assert.equal(res.status, 202)
  const { taskId } = await res.json() as { taskId: string }
  assert.match(taskId, UUID)
  await until(() => order.length === 3, 'the task to start')
  assert.deepStrictEqual(order, ['handler returned', 'response sent', 'task sendReceipt o-1 started (response finished: true)'])
  assert.equal(finished, false, 'the response came while the task was still running')
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 1, succeeded: 0, failed: 0, cancelled: 0 })
  slow.open()
  await withTimeout(app.tasks.idle(), 3000, 'the task to finish')
  assert.equal(finished, true)
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 0 })
})

test('a response never sent (the client went away): its tasks are dropped with a line each, except { always: true }', async (t) => {
  const release = gate()
  const ran: string[] = []
  const { app, logs } = await setup(t, {}, async (app) => {
    app.get('/abandoned', async (request) => {
      request.tasks.add(async function notify () { ran.push('notify') })
      request.tasks.add({ fn: async () => { ran.push('audit') }, name: 'audit', always: true })
      await release.opened
      return { late: true }
    })
  })
  const { port } = await listen(app)
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write('GET /abandoned HTTP/1.1\r\nHost: x\r\nx-request-id: gone-1\r\n\r\n')
  await until(() => app.tasks.stats().queued === 2, 'the handler to add its tasks')
  socket.destroy()
  await until(() => linesOf(logs, 'task dropped: its request\'s response was not sent (add it with { always: true } to run it anyway)').length === 1, 'the drop line')
  release.open()
  await withTimeout(app.tasks.idle(), 3000, 'the tasks to settle')
  assert.deepStrictEqual(ran, ['audit'])
  const [dropped] = linesOf(logs, 'task dropped: its request\'s response was not sent (add it with { always: true } to run it anyway)')
  assert.deepStrictEqual([dropped.level, dropped.task, dropped.reqId], [40, 'notify', 'gone-1'])
  assert.match(dropped.taskId, UUID)
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 1 })
})

test('a task first added after the response went out (a later onResponse hook, code after reply.send) runs at once, not held for ever', async (t) => {
  const ran: string[] = []
  const sent = gate()
  // A held task would keep the close waiting for the whole budget.
  const { app } = await setup(t, { shutdown: { signals: false, timeout: 1000 } }, async (app) => {
    app.get('/after-send', async (request, reply) => {
      reply.send({ ok: true })
      await sent.opened
      request.tasks.add(async function afterSend () { ran.push('after send') })
      return reply
    })
    app.get('/hooked', async () => ({ ok: true }))
    // Registered after spikard's: runs once the tasks feature has settled the request.
    app.addHook('onResponse', async (request) => {
      if (request.url === '/hooked') request.tasks.add(async function inOnResponse () { ran.push('in onResponse') })
    })
  })
  const { url } = await listen(app)
  assert.equal((await fetch(`${url}/after-send`)).status, 200)
  sent.open()
  assert.equal((await fetch(`${url}/hooked`)).status, 200)
  await until(() => ran.length === 2, 'both tasks to run', 3000)
  assert.deepStrictEqual(ran.sort(), ['after send', 'in onResponse'])
  await withTimeout(app.tasks.idle(), 3000, 'the tasks to finish')
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 2, failed: 0, cancelled: 0 })
})

test('a WebSocket handler\'s tasks run while its socket is open (its response is the 101), and the close does not wait for them', async (t) => {
  const ran: string[] = []
  const { app, logs } = await setup(t, {}, async (app) => {
    app.addHook('preHandler', async (request) => {
      if (request.ws) request.tasks.add(async function beforeUpgrade () { ran.push('before the upgrade') })
    })
    app.get('/chat', { websocket: true }, (socket, request) => {
      request.tasks.add(async function onOpen () { ran.push('open') })
      socket.on('message', (message: Buffer) => {
        request.tasks.add(async function onMessage (_ctx: TaskContext, text: string) { ran.push(`message ${text}`) }, message.toString())
        socket.send('queued')
      })
    })
  })
  const { url } = await listen(app)
  const socket = new WebSocket(url.replace('http', 'ws') + '/chat')
  t.after(() => socket.terminate())
  await withTimeout(new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject)), 3000, 'the upgrade')
  socket.send('hello')
  await withTimeout(new Promise((resolve) => socket.once('message', resolve)), 3000, 'the handler to queue the message\'s task')
  // The socket is still open: the tasks ran all the same, none is held for its end.
  await withTimeout(app.tasks.idle(), 3000, 'the tasks to run while the socket is open')
  assert.deepStrictEqual(ran.sort(), ['before the upgrade', 'message hello', 'open'])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 3, failed: 0, cancelled: 0 })
  await withTimeout(app.close(), 3000, 'app.close()')
  assert.deepStrictEqual(linesOf(logs, 'task unfinished at the end of the shutdown budget'), [])
  assert.deepStrictEqual(linesOf(logs, 'task unfinished when the app closed'), [])
})

test('an upgrade whose client leaves before the 101: the tasks its hooks added are dropped (always ones run), not held for ever', async (t) => {
  const ran: string[] = []
  const added = gate()
  const { app, logs } = await setup(t, {}, async (app) => {
    app.addHook('preHandler', async (request) => {
      if (!request.ws) return
      request.tasks.add(async function beforeUpgrade () { ran.push('dropped') })
      request.tasks.add({ fn: async function always () { ran.push('always') }, always: true })
      added.open()
      // The client is gone by the time the hook is done: no 101, no response of any kind.
      await new Promise((resolve) => setTimeout(resolve, 300))
    })
    app.get('/chat', { websocket: true }, (socket) => { socket.send('never') })
  })
  const { port } = await listen(app)
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  await withTimeout(new Promise((resolve) => socket.once('connect', resolve)), 3000, 'the connection')
  socket.write('GET /chat HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  await withTimeout(added.opened, 3000, 'the hook to add its tasks')
  socket.destroy()
  await until(() => app.tasks.stats().cancelled === 1 && app.tasks.stats().succeeded === 1, 'the tasks settled once the socket closed')
  assert.deepStrictEqual(ran, ['always'])
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 0, cancelled: 1 })
  // Nothing left for the drain to wait for: the close is not held until the budget runs out.
  await withTimeout(app.close(), 3000, 'app.close()')
  assert.deepStrictEqual(linesOf(logs, 'task unfinished at the end of the shutdown budget'), [])
})

test('ctx: id (as add() returned it), name, attempt, signal, and a logger carrying taskId, task and reqId; the args follow ctx', async (t) => {
  const seen: Array<Record<string, unknown>> = []
  const record = (ctx: TaskContext, ...args: unknown[]): void => {
    seen.push({ id: ctx.id, name: ctx.name, attempt: ctx.attempt, aborted: ctx.signal.aborted, args })
    ctx.log.info('receipt sent')
  }
  const { app, logs } = await setup(t, {}, async (app) => {
    app.post('/pay', async (request) => {
      const ids = [
        request.tasks.add(async function sendReceipt (ctx: TaskContext, to: string, amount: number) { record(ctx, to, amount) }, 'ann@example.com', 42),
        request.tasks.add({ fn: record, name: 'ledger' }, { entry: 1 }),
        request.tasks.add((ctx: TaskContext) => { record(ctx) })
      ]
      return { ids }
    })
  })
  const res = await app.inject({ method: 'POST', url: '/pay', headers: { 'x-request-id': 'pay-1' } })
  const { ids } = res.json() as { ids: string[] }
  await withTimeout(app.tasks.idle(), 3000, 'the tasks')
  assert.deepStrictEqual(seen, [
    { id: ids[0], name: 'sendReceipt', attempt: 1, aborted: false, args: ['ann@example.com', 42] },
    { id: ids[1], name: 'ledger', attempt: 1, aborted: false, args: [{ entry: 1 }] },
    { id: ids[2], name: 'anonymous', attempt: 1, aborted: false, args: [] }
  ])
  assert.deepStrictEqual(linesOf(logs, 'receipt sent').map((l) => [l.taskId, l.task, l.reqId]), [
    [ids[0], 'sendReceipt', 'pay-1'], [ids[1], 'ledger', 'pay-1'], [ids[2], 'anonymous', 'pay-1']
  ])
  // app.tasks.add runs now, outside any request: no reqId.
  const id = app.tasks.add(async (ctx: TaskContext) => { ctx.log.info('outside a request') })
  await withTimeout(app.tasks.idle(), 3000, 'the app task')
  const [outside] = linesOf(logs, 'outside a request')
  assert.deepStrictEqual([outside.taskId, outside.task, outside.reqId], [id, 'anonymous', undefined])
})

test('add() refuses what is not a task, with a TypeError naming what it expected', async (t) => {
  const { app } = await setup(t, {})
  assert.throws(() => app.tasks.add(42 as never), { name: 'TypeError', message: 'tasks.add: expected a function or { fn, name?, timeout?, retries?, always? }, found number' })
  assert.throws(() => app.tasks.add({ fn: 'x' } as never), { name: 'TypeError', message: 'tasks.add: expected a function or { fn, name?, timeout?, retries?, always? }, found object' })
  assert.throws(() => app.tasks.add({ fn: () => {}, retries: -1 }), { name: 'TypeError', message: 'tasks.add: retries must be a whole number from 0 to 10, found -1' })
  // As many as the option allows: no task is retried without end.
  assert.throws(() => app.tasks.add({ fn: () => {}, retries: 11 }), { name: 'TypeError', message: 'tasks.add: retries must be a whole number from 0 to 10, found 11' })
  assert.throws(() => app.tasks.add({ fn: () => {}, timeout: 0 }), { name: 'TypeError', message: 'tasks.add: timeout must be a duration of at least 1 ms, found 0' })
  assert.throws(() => app.tasks.add({ fn: () => {}, timeout: '600h' }), { name: 'TypeError', message: 'tasks.add: timeout must not exceed 2147483647 ms (about 24 days), found 600h' })
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 })
})

test('with requestContext on, requestContext.get() inside a task gives the request that queued it', async (t) => {
  const { app } = await setup(t, { requestContext: true }, async (app) => {
    app.get('/ctx', async (request) => {
      request.tasks.add(async function readContext () {
        await new Promise((resolve) => setTimeout(resolve, 5))
        seen.push(requestContext.get('requestId') ?? null)
      })
      return { ok: true }
    })
  })
  const seen: Array<string | null> = []
  await Promise.all(['ctx-a', 'ctx-b', 'ctx-c'].map(async (id) => await app.inject({ url: '/ctx', headers: { 'x-request-id': id } })))
  await withTimeout(app.tasks.idle(), 3000, 'the tasks')
  assert.deepStrictEqual(seen.sort(), ['ctx-a', 'ctx-b', 'ctx-c'])
})

test('a task that throws or rejects is logged with its stack, taskId, task, attempt and reqId; the server goes on', async (t) => {
  // Signals on: the shutdown feature's process handlers are installed, as in production.
  // (A rejection left unhandled inside a task is tested in a child process, in
  // tasks-shutdown.test.ts: node:test fails any test during which one happens.)
  const { app, logs } = await setup(t, { shutdown: { signals: true } }, async (app) => {
    app.post('/crash', async (request) => {
      request.tasks.add(function throwsAtOnce () { throw new Error('sync boom') })
      request.tasks.add(async function rejects () { throw new Error('async boom') })
      request.tasks.add(async function fine () {})
      return { ok: true }
    })
    app.get('/alive', async () => ({ alive: true }))
  })
  await app.inject({ method: 'POST', url: '/crash', headers: { 'x-request-id': 'crash-1' } })
  await withTimeout(app.tasks.idle(), 3000, 'the tasks')
  const failed = linesOf(logs, 'task failed')
  assert.deepStrictEqual(failed.map((l) => [l.level, l.task, l.attempt, l.reqId, l.err.message]).sort(), [
    [50, 'rejects', 1, 'crash-1', 'async boom'],
    [50, 'throwsAtOnce', 1, 'crash-1', 'sync boom']
  ])
  for (const line of failed) {
    assert.match(line.taskId, UUID)
    assert.match(line.err.stack, /^Error: (sync|async) boom\n {4}at /)
  }
  assert.equal(app.spikard.phase, 'serving')
  assert.deepStrictEqual((await app.inject('/alive')).json(), { alive: true })
  assert.deepStrictEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 1, failed: 2, cancelled: 0 })
})

test('a plugin of its own: spikard on a Fastify instance, the tasks run after inject() answers', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(spikard, { shutdown: { signals: false } })
  const done: string[] = []
  app.get('/', async (request) => { request.tasks.add(() => { done.push('ran') }); return 'ok' })
  assert.equal((await app.inject('/')).body, 'ok')
  await withTimeout(app.tasks.idle(), 3000, 'the task')
  assert.deepStrictEqual(done, ['ran'])
})

test('the demo: POST /orders answers 202, then its receipt task logs with the request id', async (t) => {
  const examples = join(import.meta.dirname, '..', '..', 'examples')
  const { config } = loadConfig({ file: join(examples, 'spikard.config.yaml'), env: { LOG_LEVEL: 'info' } })
  const logs: Array<Record<string, any>> = []
  const logStream = new Writable({ write (chunk, _encoding, callback) { for (const l of String(chunk).split('\n')) if (l !== '') logs.push(JSON.parse(l)); callback() } })
  const app = await createServer(config, { baseDir: examples, logStream })
  t.after(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/orders', headers: { 'x-request-id': 'demo-order-1' }, payload: { item: 'tea', email: 'ann@example.com' } })
  assert.equal(res.statusCode, 202, res.body)
  const { orderId, receiptTask } = res.json() as { orderId: string, receiptTask: string }
  await withTimeout(app.tasks.idle(), 3000, 'the receipt')
  const sent = linesOf(logs, 'receipt sent')
  assert.deepStrictEqual(sent.map((l) => [l.reqId, l.taskId, l.task, l.orderId, l.to, l.attempt]), [['demo-order-1', receiptTask, 'sendReceipt', orderId, '…@example.com', 1]])
  assert.doesNotMatch(JSON.stringify(logs), /ann@example\.com/)
})
