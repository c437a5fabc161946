/**
 * Timeouts: on by default, a handler timeout answered with a problem (status
 * configurable, per-route override, request.signal aborted, the late result dropped without
 * a log line and a late failure logged, streams timed to their first byte, not their end) and Node's server timeouts for slow
 * headers, slow bodies and idle keep-alive connections, checked over real sockets.
 * Every timeout here is short so the file runs in a few seconds.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { createReadStream, type ReadStream } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type LightMyRequestResponse } from 'fastify'
import spikard from '../../src/spikard.js'
import { features } from '../../src/options.js'
import type { CreateServerConfig } from '../../src/server.js'
import { SpikardConfigError } from '../../src/errors.js'
import { assertOptionsRefused, build, listen, rawRequest, until, UUID, withTimeout, type TestApp } from '../helpers.js'

const TYPE = 'https://spikard.dev/errors/'
const PROBLEM_JSON = 'application/problem+json; charset=utf-8'
/** As written by the client error handler, straight to the socket. */
const RAW_PROBLEM_JSON = 'application/problem+json'

/** Settles when the handler of the latest /slow request has finished, late or not. */
let handlerFinished: Promise<void> = Promise.resolve()
/** The reason request.signal was aborted with, on the latest /signal request. */
let signalReason: Promise<unknown> = Promise.resolve()

async function * chunks (...steps: Array<string | number>): AsyncGenerator<string> {
  for (const step of steps) {
    if (typeof step === 'number') await sleep(step)
    else yield step
  }
}

const routes: FastifyPluginAsync = async (app) => {
  app.get('/fast', async () => ({ ok: true }))
  app.get('/info', async (request) => ({ handlerTimeout: request.routeOptions.handlerTimeout }))
  app.get('/slow', async (request, reply) => {
    const { ms = '300', mode = 'return' } = request.query as { ms?: string, mode?: string }
    let finish!: () => void
    handlerFinished = new Promise((resolve) => { finish = resolve })
    try {
      // abort: the handler stops as request.signal asks (an AbortError); reason: rethrows its reason.
      if (mode === 'abort') await sleep(Number(ms), undefined, { signal: request.signal })
      else await sleep(Number(ms))
      if (mode === 'reason') throw request.signal.reason
      if (mode === 'throw') throw new Error('late failure')
      // Anything may be thrown: here an object whose name cannot be read.
      if (mode === 'getter') throw Object.defineProperty({}, 'name', { get () { throw new Error('no name') } })
      if (mode === 'send') return reply.code(200).send({ late: true })
      return { late: true }
    } finally {
      setTimeout(finish, 20) // let Fastify see the late result first
    }
  })
  app.get('/signal', async (request) => {
    signalReason = new Promise((resolve) => request.signal.addEventListener('abort', () => resolve(request.signal.reason), { once: true }))
    await signalReason
    return { aborted: true }
  })
  app.get('/route-longer', { handlerTimeout: 600 }, async () => { await sleep(250); return { ok: 'longer' } })
  app.get('/route-shorter', { handlerTimeout: 50 }, async () => { await sleep(150); return { ok: 'shorter' } })
  // Streams, against a 200 ms handler timeout.
  app.get('/stream/long', async (_request, reply) => reply.type('text/plain').send(Readable.from(chunks('one ', 150, 'two ', 150, 'three ', 150, 'four'))))
  app.get('/stream/late-first-chunk', async (_request, reply) => reply.type('text/plain').send(Readable.from(chunks(350, 'late'))))
  app.get('/stream/late-handler', async (_request, reply) => {
    await sleep(350)
    return reply.type('text/plain').send(Readable.from(chunks('late')))
  })
  app.post('/echo', async (request) => ({ received: request.body }))
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build({ requestId: true, logging: true, ...config }, routes)
  t.after(() => built.app.close())
  return built
}

function timeoutProblem (res: LightMyRequestResponse | { headers: Record<string, unknown> }, ms: number, instance: string, status = 503, title = 'Service Unavailable') {
  return { type: TYPE + 'handler-timeout', title, status, detail: `The request was not answered within ${ms} ms`, instance, requestId: res.headers['x-request-id'] }
}

function expectTimeout (res: LightMyRequestResponse, ms: number, instance: string, status = 503, title = 'Service Unavailable'): void {
  assert.equal(res.statusCode, status, res.body)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.match(String(res.headers['x-request-id']), UUID)
  assert.deepStrictEqual(res.json(), timeoutProblem(res, ms, instance, status, title))
}

async function assertStillServing (app: FastifyInstance): Promise<void> {
  const res = await app.inject({ url: '/fast' })
  assert.equal(res.statusCode, 200)
  assert.deepStrictEqual(res.json(), { ok: true })
}

const warnings = (logs: Array<Record<string, any>>): Array<Record<string, any>> => logs.filter((l) => l.level >= 40)
const accessLine = (logs: Array<Record<string, any>>, path: string): Record<string, any> | undefined =>
  logs.find((l) => l.msg === 'request completed' && l.path === path)

/** The TIMEOUT column of `spikard check` for a route. */
function timeoutOf (app: FastifyInstance, url: string): string {
  const route = app.spikard.routes.find((r) => r.url === url && r.method === 'GET')
  assert.ok(route !== undefined, url)
  return features.timeout.columns[0].value(route, app.spikard.options.timeout)
}

function serverTimeouts (app: FastifyInstance): Record<string, unknown> {
  const s = app.server as unknown as Record<string, unknown>
  return { headersTimeout: s.headersTimeout, requestTimeout: s.requestTimeout, keepAliveTimeout: s.keepAliveTimeout, connectionsCheckingInterval: s.connectionsCheckingInterval }
}

// ---------------------------------------------------------------------------------------

test('false: no handler timeout, and the server timeouts are Fastify\'s', async (t) => {
  const { app } = await setup(t, { timeout: false })
  assert.deepStrictEqual((await app.inject({ url: '/info' })).json(), { handlerTimeout: 0 })
  const res = await app.inject({ url: '/slow?ms=100' })
  assert.equal(res.statusCode, 200)
  assert.deepStrictEqual(res.json(), { late: true })
  assert.deepStrictEqual(serverTimeouts(app), { headersTimeout: 60_000, requestTimeout: 0, keepAliveTimeout: 72_000, connectionsCheckingInterval: 30_000 })
  // A route's own handlerTimeout is Fastify's; problem details still render it (503, not a 500).
  expectTimeout(await app.inject({ url: '/route-shorter' }), 50, '/route-shorter')
})

test('true: 30 s handler timeout, 503, and 10 s / 60 s / 72 s server timeouts checked every second', async (t) => {
  const { app } = await setup(t, { timeout: true })
  assert.deepStrictEqual(app.spikard.options.timeout, { handler: 30_000, status: 503, headers: 10_000, request: 60_000, keepAlive: 72_000 })
  assert.equal(timeoutOf(app, '/info'), '30s')
  // spikard's timer, not Fastify's (which stops timing requests with a body once it is read).
  assert.deepStrictEqual((await app.inject({ url: '/info' })).json(), { handlerTimeout: 0 })
  assert.deepStrictEqual(serverTimeouts(app), { headersTimeout: 10_000, requestTimeout: 60_000, keepAliveTimeout: 72_000, connectionsCheckingInterval: 1000 })
  const { port } = await listen(app)
  const res = await rawRequest(port, 'GET /fast HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\nGET /fast HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  assert.equal(res.status, 200)
  assert.equal(res.headers['keep-alive'], 'timeout=72')
})

test('handler: a slow handler gets the 503 problem at the timeout; the access line says 503; the app keeps serving', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 100 } })
  const started = Date.now()
  const res = await app.inject({ url: '/slow?ms=500' })
  const elapsed = Date.now() - started
  expectTimeout(res, 100, '/slow')
  assert.ok(elapsed >= 90 && elapsed < 450, `answered after ${elapsed} ms, not when the handler finished`)
  await handlerFinished
  assert.equal(accessLine(logs, '/slow')?.status, 503)
  assert.deepStrictEqual(warnings(logs), [])
  await assertStillServing(app)
})

test('handler: 0 turns the handler timeout off; the server timeouts still apply', async (t) => {
  const { app } = await setup(t, { timeout: { handler: 0, headers: '2s' } })
  assert.deepStrictEqual((await app.inject({ url: '/info' })).json(), { handlerTimeout: 0 })
  const res = await app.inject({ url: '/slow?ms=150' })
  assert.equal(res.statusCode, 200)
  assert.equal(serverTimeouts(app).headersTimeout, 2000)
  // No hooks on routes without a timeout of their own.
  const fast = app.spikard.routes.find((r) => r.url === '/fast' && r.method === 'GET')
  assert.deepStrictEqual([fast?.onSend, fast?.onError, fast?.handlerTimeout], [undefined, undefined, undefined])
  // A route's own handlerTimeout still works, and still answers with the problem.
  expectTimeout(await app.inject({ url: '/route-shorter' }), 50, '/route-shorter')
})

for (const [status, title] of [[503, 'Service Unavailable'], [504, 'Gateway Timeout']] as const) {
  test(`status: ${status} answers the timeout with a ${status} problem, also in the access line`, async (t) => {
    const { app, logs } = await setup(t, { timeout: { handler: 100, status } })
    expectTimeout(await app.inject({ url: '/slow?ms=300' }), 100, '/slow', status, title)
    await handlerFinished
    assert.equal(accessLine(logs, '/slow')?.status, status)
    // A 5xx of spikard's own making: no "request failed" error line, no stack.
    assert.deepStrictEqual(warnings(logs), [])
    await assertStillServing(app)
  })
}

test('per-route handlerTimeout overrides the global one, longer and shorter', async (t) => {
  const { app } = await setup(t, { timeout: { handler: 100 } })
  const longer = await app.inject({ url: '/route-longer' })
  assert.equal(longer.statusCode, 200)
  assert.deepStrictEqual(longer.json(), { ok: 'longer' })
  expectTimeout(await app.inject({ url: '/route-shorter' }), 50, '/route-shorter')
})

test('a route\'s handlerTimeout longer than a timer can wait is refused at ready(), naming the route', async () => {
  // Node would fire the timer after 1 ms: the deadline list swept every millisecond, with a
  // TimeoutOverflowWarning each time, for as long as a request of the route was in flight.
  const app = Fastify()
  await app.register(spikard, { shutdown: { signals: false } })
  app.register(async (child) => { child.get('/export', { handlerTimeout: 30 * 24 * 3600 * 1000 }, async () => ({ ok: true })) })
  await assert.rejects(async () => { await app.ready() }, (error: unknown) => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.equal(error.source, 'route GET /export')
    assert.deepStrictEqual(error.problems, ['handlerTimeout: expected at most 2147483647 ms (about 24 days), found 2592000000'])
    return true
  })
  await app.close()
})

for (const mode of ['return', 'send', 'abort', 'reason']) {
  const what = { return: 'return', send: 'reply.send()', abort: 'AbortError (request.signal)', reason: 'throw of request.signal.reason' }[mode]
  test(`a late ${what} after the timeout is dropped without a warning or error line`, async (t) => {
    const { app, logs } = await setup(t, { timeout: { handler: 50 }, server: { logger: { level: 'debug' } } })
    expectTimeout(await app.inject({ url: `/slow?ms=150&mode=${mode}` }), 50, '/slow')
    await handlerFinished
    // Not Fastify's FST_ERR_REP_ALREADY_SENT ("did you forget to return reply"): the route did nothing wrong.
    assert.deepStrictEqual(warnings(logs), [])
    // An explicit reply.send() says so, once, at debug.
    assert.deepStrictEqual(logs.filter((l) => l.msg.includes('after the handler timeout')).map((l) => [l.level, l.msg, l.stream]),
      mode === 'send'
        ? [[20, 'reply.send() after the handler timeout had answered the request: dropped', false]]
        : mode === 'return' ? [] : [[20, 'the handler failed after the handler timeout had answered the request', undefined]])
    assert.deepStrictEqual(logs.filter((l) => l.msg === 'request completed').map((l) => [l.path, l.status]), [['/slow', 503]])
    await assertStillServing(app)
  })
}

test('a late failure of the server (a throw after the timeout) is logged once at error level, with the error', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 50 } })
  expectTimeout(await app.inject({ url: '/slow?ms=150&mode=throw' }), 50, '/slow')
  await handlerFinished
  const late = logs.filter((l) => l.msg.includes('after the handler timeout'))
  assert.deepStrictEqual(late.map((l) => [l.level, l.msg, l.err?.message]), [[50, 'the handler failed after the handler timeout had answered the request', 'late failure']])
  assert.match(late[0].err.stack, /late failure\n {4}at /)
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'request completed').map((l) => [l.path, l.status]), [['/slow', 503]])
  await assertStillServing(app)
})

test('a late rejection whose name getter throws is logged at error level, not left as an unhandled rejection', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 50 } })
  const unhandled: unknown[] = []
  const onRejection = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.after(() => process.off('unhandledRejection', onRejection))
  expectTimeout(await app.inject({ url: '/slow?ms=150&mode=getter' }), 50, '/slow')
  await handlerFinished
  await sleep(20)
  assert.deepStrictEqual(unhandled, [])
  assert.deepStrictEqual(logs.filter((l) => l.msg.includes('after the handler timeout')).map((l) => [l.level, l.msg]), [[50, 'the handler failed after the handler timeout had answered the request']])
  await assertStillServing(app)
})

test('a stream returned after the timeout is released with the late result: a file stream destroyed, a web stream cancelled, a generator returned', async (t) => {
  const late: { file?: ReadStream, web?: ReadableStream<string>, generator?: AsyncGenerator<string> } = {}
  const webCancelled = new Promise<void>((resolve) => {
    late.web = new ReadableStream<string>({ pull: async () => { await sleep(60_000) }, cancel: () => { resolve() } })
  })
  const { app } = await build({ timeout: { handler: 50 } }, async (app) => {
    app.get('/late/file', async () => { await sleep(150); return (late.file = createReadStream(fileURLToPath(import.meta.url))) })
    app.get('/late/web', async () => { await sleep(150); return late.web })
    app.get('/late/generator', async () => {
      await sleep(150)
      return (late.generator = (async function * () { yield 'never read' })())
    })
  })
  t.after(() => app.close())
  for (const path of ['/late/file', '/late/web', '/late/generator']) expectTimeout(await app.inject({ url: path }), 50, path)
  await until(() => late.file !== undefined, 'the late file handler to return', 1000)
  const file = late.file as ReadStream
  await until(() => file.closed, 'the late file stream to be closed', 1000)
  assert.equal(file.destroyed, true)
  await withTimeout(webCancelled, 1000, 'the late web stream to be cancelled')
  await until(() => late.generator !== undefined, 'the late generator handler to return', 1000)
  await sleep(20)
  // Returned: it yields nothing more.
  assert.deepStrictEqual(await (late.generator as AsyncGenerator<string>).next(), { value: undefined, done: true })
})

test('a stream sent with reply.send() after the timeout is released too: a file stream and a generator\'s stream destroyed, a web stream and a Response body cancelled', async (t) => {
  // Fastify's send() finds the reply sent, warns and returns: without spikard the stream stayed
  // open (a file descriptor per timed-out request).
  const late: { file?: ReadStream, generator?: Readable } = {}
  const generator = (async function * () { yield 'never read' })()
  const cancelled = (): { stream: ReadableStream<Uint8Array>, done: Promise<void> } => {
    let resolve!: () => void
    const done = new Promise<void>((_resolve) => { resolve = _resolve })
    return { stream: new ReadableStream<Uint8Array>({ pull: async () => { await sleep(60_000) }, cancel: () => { resolve() } }), done }
  }
  const web = cancelled()
  const body = cancelled()
  const { app } = await build({ timeout: { handler: 50 } }, async (app) => {
    app.get('/late/file', async (_request, reply) => { await sleep(150); return reply.send(late.file = createReadStream(fileURLToPath(import.meta.url))) })
    app.get('/late/generator', async (_request, reply) => {
      await sleep(150)
      return reply.type('text/plain').send(late.generator = Readable.from(generator))
    })
    app.get('/late/web', async (_request, reply) => { await sleep(150); return reply.send(web.stream) })
    app.get('/late/response', async (_request, reply) => { await sleep(150); return reply.send(new Response(body.stream)) })
  })
  t.after(() => app.close())
  for (const path of ['/late/file', '/late/generator', '/late/web', '/late/response']) expectTimeout(await app.inject({ url: path }), 50, path)
  await until(() => late.file !== undefined && late.generator !== undefined, 'the late handlers to send', 1000)
  const file = late.file as ReadStream
  await until(() => file.closed, 'the late file stream to be closed', 1000)
  assert.equal(file.destroyed, true)
  await until(() => (late.generator as Readable).destroyed, 'the late generator stream to be destroyed', 1000)
  await withTimeout(web.done, 1000, 'the late web stream to be cancelled')
  await withTimeout(body.done, 1000, 'the late Response body to be cancelled')
  // Returned: it yields nothing more.
  assert.deepStrictEqual(await generator.next(), { value: undefined, done: true })
})

test('a body that finishes arriving after the timeout and fails to parse: its error once at debug, not Fastify\'s "Reply was already sent" warning; a failure of the server still at error level', async (t) => {
  // Fastify's body parser sends its error without asking whether the reply was sent: its
  // send() then warns FST_ERR_REP_ALREADY_SENT ("did you forget to return reply", the route
  // is not at fault) and the parse error itself is lost.
  const { app, logs } = await build({ timeout: { handler: 100 }, server: { logger: { level: 'debug' } } }, async (app) => {
    app.post('/echo', async (request) => ({ received: request.body }))
    // A parser of the app's that fails late on its own: a bug, not the client's.
    app.addContentTypeParser('application/x-broken', async () => { await sleep(200); throw new Error('parser broke') })
    app.post('/broken', async () => ({ never: true }))
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  await once(socket, 'connect')
  socket.write('POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"a"')
  await until(() => received.includes('\r\n\r\n'), 'the timeout\'s answer', 2000)
  assert.match(received, /^HTTP\/1\.1 503 Service Unavailable\r\n/)
  socket.write(': no}') // the rest of the body: not JSON
  const unsent = 'error after the handler timeout had answered the request: not sent'
  await until(() => logs.some((l) => l.msg === unsent), 'the late parse error to be logged', 2000)
  expectTimeout(await app.inject({ method: 'POST', url: '/broken', headers: { 'content-type': 'application/x-broken' }, payload: 'x' }), 100, '/broken')
  await until(() => logs.filter((l) => l.msg === unsent).length === 2, 'the late parser failure to be logged', 2000)
  await sleep(20)
  // The startup line's warning about the debug level aside, nothing at warn.
  assert.deepStrictEqual(warnings(logs).filter((l) => l.level === 40 && !/^server\.logger\.level is debug/.test(l.msg)).map((l) => l.msg), [])
  const echoId = accessLine(logs, '/echo')?.reqId
  const brokenId = accessLine(logs, '/broken')?.reqId
  assert.deepStrictEqual(logs.filter((l) => l.msg === unsent).map((l) => [l.reqId, l.level, l.err?.statusCode, l.err?.code, l.err?.message]), [
    [echoId, 20, 400, 'FST_ERR_CTP_INVALID_JSON_BODY', 'Body is not valid JSON but content-type is set to \'application/json\''],
    [brokenId, 50, undefined, undefined, 'parser broke']
  ])
})

test('without spikard\'s wrapper Fastify would log the late results: the test above can fail', async () => {
  const lines: Array<Record<string, any>> = []
  const app = Fastify({ handlerTimeout: 50, logger: { level: 'info', stream: { write: (l: string) => lines.push(JSON.parse(l)) } } })
  let done!: () => void
  const finished = new Promise<void>((resolve) => { done = resolve })
  app.get('/late', async () => { await sleep(120); setTimeout(done, 20); return { late: true } })
  await app.inject({ url: '/late' })
  await finished
  await app.close()
  assert.ok(lines.some((l) => l.level === 40 && l.err?.code === 'FST_ERR_REP_ALREADY_SENT'))
})

test('request.signal is aborted when the timeout fires, so the handler can stop its work', async (t) => {
  const { app } = await setup(t, { timeout: { handler: 80 } })
  expectTimeout(await app.inject({ url: '/signal' }), 80, '/signal')
  const reason = await withTimeout(signalReason, 1000, 'signal abort')
  assert.equal((reason as { code?: string }).code, 'SPK_ERR_HANDLER_TIMEOUT')
})

test('request.signal of a timed route is aborted when the client goes away, not when it finishes', async (t) => {
  let aborted!: (reason: unknown) => void
  const abortedWith = new Promise((resolve) => { aborted = resolve })
  const { app } = await build({ timeout: { handler: 5000 } }, async (app) => {
    app.get('/wait', async (request) => {
      request.signal.addEventListener('abort', () => aborted(request.signal.reason), { once: true })
      await abortedWith
      return { ok: true }
    })
    app.get('/quick', async (request, reply) => {
      // Kept to be read once the response has finished and its connection event has passed.
      quickSignal = request.signal
      quickClosed = once(reply.raw, 'close')
      return { ok: true }
    })
  })
  let quickSignal: AbortSignal | undefined
  let quickClosed: Promise<unknown> | undefined
  t.after(() => app.close())
  const { port } = await listen(app)
  const quick = await fetch(`http://127.0.0.1:${port}/quick`)
  assert.deepStrictEqual(await quick.json(), { ok: true })
  await withTimeout(quickClosed as Promise<unknown>, 2000, 'response close')
  assert.equal(quickSignal?.aborted, false, 'a response that finished does not abort its signal')
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('GET /wait HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await sleep(100)
  socket.destroy()
  const reason = await withTimeout(abortedWith, 2000, 'abort on disconnect')
  assert.equal((reason as Error).name, 'AbortError')
})

test('a request with a body is timed too, and its request.signal is not aborted when the body has been read', async (t) => {
  // Fastify's own handlerTimeout (5.12) stops timing a request once its body is read and
  // aborts request.signal then (fastify/fastify#6725): over a real socket, as clients send it.
  const { app } = await build({ timeout: { handler: 150 } }, async (app) => {
    app.post('/slow-post', async (request) => {
      const read = request.signal.aborted
      await sleep(Number((request.body as { ms: number }).ms))
      return { read, later: request.signal.aborted }
    })
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const post = async (ms: number) => await fetch(`http://127.0.0.1:${port}/slow-post`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ms }) })
  const fast = await post(20)
  assert.equal(fast.status, 200)
  assert.deepStrictEqual(await fast.json(), { read: false, later: false })
  const slow = await post(400)
  assert.equal(slow.status, 503)
  assert.equal((await slow.json() as { type: string }).type, TYPE + 'handler-timeout')
})

// ---------------------------------------------------------------------------------------
// Streams, over a real socket: timed to their first byte (the stream feature reports it),
// not to their end.

test('stream: one that starts in time runs to its end, past the timeout', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 200 } })
  const { url } = await listen(app)
  const started = Date.now()
  const res = await fetch(`${url}/stream/long`)
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'text/plain')
  assert.equal(await res.text(), 'one two three four')
  assert.ok(Date.now() - started >= 400, 'the stream outlived the handler timeout')
  assert.deepStrictEqual(warnings(logs), [])
  assert.equal(accessLine(logs, '/stream/long')?.status, 200)
})

test('stream: one handed over in time whose first chunk comes after the timeout gets the timeout problem', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 200 } })
  const { url } = await listen(app)
  const started = Date.now()
  const res = await fetch(`${url}/stream/late-first-chunk`)
  assert.equal(res.status, 503)
  assert.equal(res.headers.get('content-type'), PROBLEM_JSON)
  assert.deepStrictEqual(await res.json(), timeoutProblem({ headers: { 'x-request-id': res.headers.get('x-request-id') } }, 200, '/stream/late-first-chunk'))
  // Not before the timeout. (Readable.from's destroy waits for the busy generator's next
  // step, so the answer may come with it; a generator returned as such is answered at the
  // timeout itself: test/plugins/stream.test.ts.)
  const elapsed = Date.now() - started
  assert.ok(elapsed >= 190, `answered at the timeout: ${elapsed} ms`)
  assert.deepStrictEqual(warnings(logs), [])
  assert.equal(accessLine(logs, '/stream/late-first-chunk')?.status, 503)
})

test('stream: compressed, with a late first chunk, gets the timeout problem without the stream\'s Content-Encoding', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 200 }, compression: true })
  const { url } = await listen(app)
  const res = await fetch(`${url}/stream/late-first-chunk`, { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(res.status, 503)
  assert.equal(res.headers.get('content-encoding'), null)
  assert.deepStrictEqual(await res.json(), timeoutProblem({ headers: { 'x-request-id': res.headers.get('x-request-id') } }, 200, '/stream/late-first-chunk'))
  const long = await fetch(`${url}/stream/long`, { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(long.headers.get('content-encoding'), 'gzip')
  assert.equal(await long.text(), 'one two three four')
  assert.deepStrictEqual(warnings(logs), [])
})

test('a response written on reply.raw (without hijack) whose headers went out in time runs to its end, past the timeout', async (t) => {
  const { app, logs } = await build({ logging: true, timeout: { handler: 200 } }, async (app) => {
    app.get('/raw', async (_request, reply) => {
      reply.raw.writeHead(200, { 'content-type': 'text/plain' })
      for (const word of ['one ', 'two ', 'three ']) {
        reply.raw.write(word)
        await sleep(150)
      }
      reply.raw.end('four')
      return reply
    })
  })
  t.after(() => app.close())
  const { url } = await listen(app)
  const started = Date.now()
  const res = await fetch(`${url}/raw`)
  assert.equal(res.status, 200)
  // Not cut at the timeout: the status line was out, a problem could only truncate it.
  assert.equal(await res.text(), 'one two three four')
  assert.ok(Date.now() - started >= 400, 'the response outlived the handler timeout')
  assert.deepStrictEqual(warnings(logs), [])
})

test('stream: with the stream feature off, a stream is timed to its hand-over: a late first chunk arrives', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 200 }, stream: false })
  const { url } = await listen(app)
  const res = await fetch(`${url}/stream/late-first-chunk`)
  assert.equal(res.status, 200)
  assert.equal(await res.text(), 'late')
  assert.deepStrictEqual(warnings(logs), [])
})

test('stream: one handed over after the timeout gets the timeout problem', async (t) => {
  const { app, logs } = await setup(t, { timeout: { handler: 200 } })
  const { url } = await listen(app)
  const res = await fetch(`${url}/stream/late-handler`)
  assert.equal(res.status, 503)
  assert.equal(res.headers.get('content-type'), PROBLEM_JSON)
  assert.deepStrictEqual(await res.json(), timeoutProblem({ headers: { 'x-request-id': res.headers.get('x-request-id') } }, 200, '/stream/late-handler'))
  await sleep(250) // the handler's late reply.send(stream): released, at most a debug line
  assert.deepStrictEqual(warnings(logs), [])
  assert.equal(accessLine(logs, '/stream/late-handler')?.status, 503)
  assert.equal((await fetch(`${url}/fast`)).status, 200)
})

// ---------------------------------------------------------------------------------------
// Server timeouts, over raw sockets.

function requestTimeoutProblem (res: { headers: Record<string, string> }) {
  return { type: TYPE + 'request-timeout', title: 'Request Timeout', status: 408, detail: 'The request took too long to arrive', requestId: res.headers['x-request-id'] }
}

test('headers: a client that stalls in its headers is cut off with a 408 problem near the timeout', async (t) => {
  const { app } = await setup(t, { timeout: { headers: '300ms', request: '2s' } })
  assert.deepStrictEqual(serverTimeouts(app), { headersTimeout: 300, requestTimeout: 2000, keepAliveTimeout: 72_000, connectionsCheckingInterval: 30 })
  const { port, url } = await listen(app)
  const started = Date.now()
  const res = await rawRequest(port, 'GET /fast HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
  const elapsed = Date.now() - started
  assert.equal(res.statusLine, 'HTTP/1.1 408 Request Timeout')
  assert.equal(res.headers['content-type'], RAW_PROBLEM_JSON)
  assert.equal(res.headers.connection, 'close')
  assert.match(res.headers['x-request-id'], UUID)
  assert.deepStrictEqual(JSON.parse(res.body), requestTimeoutProblem(res))
  assert.ok(elapsed >= 280 && elapsed < 900, `cut off after ${elapsed} ms`)
  assert.equal((await fetch(`${url}/fast`)).status, 200)
})

test('request: a client whose body trickles in is cut off with a 408 problem near the timeout, with its request\'s id and path', async (t) => {
  const { app, logs } = await setup(t, { timeout: { headers: '200ms', request: '500ms' } })
  const { port, url } = await listen(app)
  const started = Date.now()
  const res = await rawRequest(port, 'POST /echo?token=x HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: slow-1\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{"a"')
  const elapsed = Date.now() - started
  assert.equal(res.statusLine, 'HTTP/1.1 408 Request Timeout')
  assert.equal(res.headers['content-type'], RAW_PROBLEM_JSON)
  assert.equal(res.headers['x-request-id'], 'slow-1')
  assert.deepStrictEqual(JSON.parse(res.body), { ...requestTimeoutProblem(res), instance: '/echo' })
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'request rejected').map((l) => [l.reqId, l.status, l.method, l.path]), [['slow-1', 408, 'POST', '/echo']])
  assert.ok(elapsed >= 480 && elapsed < 1200, `cut off after ${elapsed} ms`)
  const echo = await fetch(`${url}/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' })
  assert.deepStrictEqual(await echo.json(), { received: { a: 1 } })
  assert.deepStrictEqual(warnings(logs), [])
})

test('keepAlive: an idle keep-alive connection is closed after the timeout, not before', async (t) => {
  const { app } = await setup(t, { timeout: { keepAlive: '300ms' } })
  assert.equal(app.server.keepAliveTimeout, 300)
  const { port } = await listen(app)
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.setEncoding('latin1')
  let received = ''
  socket.on('data', (chunk) => { received += chunk })
  const closed = once(socket, 'close')
  socket.write('GET /fast HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n')
  while (!received.endsWith('{"ok":true}')) await withTimeout(once(socket, 'data'), 2000, 'response')
  const idleFrom = Date.now()
  await withTimeout(closed, 3000, 'the server closing the idle connection')
  const idle = Date.now() - idleFrom
  assert.match(received, /^HTTP\/1\.1 200 OK\r\n/)
  // Node closes the socket 1 s after the advertised keep-alive timeout (its fixed buffer on
  // Node 20, `keepAliveTimeoutBuffer` on Node 24) so that clients close first; the point
  // here is that it is 300 ms + 1 s, not Fastify's 72 s.
  assert.ok(idle >= 280 && idle < 2000, `closed after ${idle} ms idle`)
})

// ---------------------------------------------------------------------------------------
// Registering on an instance of your own, and invalid options.

test('register on your own instance: routes get timeout.handler, app.server gets the server timeouts', async () => {
  const app = Fastify()
  await app.register(spikard, { timeout: { handler: 60, headers: '2s', request: '4s', keepAlive: '3s' } })
  await app.register(routes)
  try {
    assert.deepStrictEqual(serverTimeouts(app), { headersTimeout: 2000, requestTimeout: 4000, keepAliveTimeout: 3000, connectionsCheckingInterval: 200 })
    const res = await app.inject({ url: '/slow?ms=200' })
    assert.equal(res.statusCode, 503)
    assert.deepStrictEqual(res.json(), timeoutProblem(res, 60, '/slow'))
    await handlerFinished
  } finally {
    await app.close()
  }
})

test('an instance created with Fastify\'s handlerTimeout and timeout.handler on is refused: one timer, not two', async () => {
  const app = Fastify({ handlerTimeout: 5000 })
  await assert.rejects(async () => { await app.register(spikard, { timeout: { handler: 60 } }).ready() }, (error: unknown) =>
    error instanceof SpikardConfigError && /timeout\.handler: Fastify was created with handlerTimeout 5000 as well/.test(error.message))
  await app.close()
})

test('register with handler: 0 keeps your instance\'s own handlerTimeout: Fastify\'s timer, answered with a problem', async () => {
  const app = Fastify({ handlerTimeout: 60 })
  await app.register(spikard, { timeout: { handler: 0 } })
  await app.register(routes)
  try {
    const res = await app.inject({ url: '/slow?ms=200&mode=throw' })
    assert.equal(res.statusCode, 503)
    assert.deepStrictEqual(res.json(), timeoutProblem(res, 60, '/slow'))
    await handlerFinished
    // A route's own, longer value is Fastify's too: 600 ms, not the instance's 60.
    assert.deepStrictEqual((await app.inject({ url: '/route-longer' })).json(), { ok: 'longer' })
  } finally {
    await app.close()
  }
})

const invalid: Array<[Record<string, unknown>, string[]]> = [
  [{ headers: '90s' }, ['timeout.headers: must not exceed timeout.request (60000 ms), found 90000 ms']],
  [{ headers: '5s', request: '2s' }, ['timeout.headers: must not exceed timeout.request (2000 ms), found 5000 ms']],
  [{ handler: '600h' }, ['timeout.handler: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms']],
  [{ status: 500 }, ['timeout.status: expected 408, 503 or 504, found 500']],
  [{ handler: 'soon' }, ['timeout.handler: expected a duration (milliseconds, or a string such as "500ms", "30s", "1m"), found "soon"']],
  [{ keepAlive: -1 }, ['timeout.keepAlive: expected a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h"), found -1']],
  // For Node, 0 is no idle timeout at all: every idle keep-alive connection kept for ever.
  [{ keepAlive: 0 }, ['timeout.keepAlive: expected a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h"), found 0']]
]

for (const [options, problems] of invalid) {
  test(`invalid ${JSON.stringify(options)} fails at createServer and at ready(), naming the key`, async () => {
    await assertOptionsRefused('timeout', options, problems)
  })
}

test('headers and request may each be 0 (off) without the other limiting it', async (t) => {
  const { app } = await setup(t, { timeout: { headers: '90s', request: 0 } })
  assert.deepStrictEqual(serverTimeouts(app), { headersTimeout: 90_000, requestTimeout: 0, keepAliveTimeout: 72_000, connectionsCheckingInterval: 9000 })
})

test('a not-found handler of your own is timed too', async (t) => {
  const { app } = await build({ timeout: { handler: 100 } }, async (app) => {
    app.register(async (child) => {
      child.setNotFoundHandler(async (_request, reply) => { await sleep(300); return reply.code(404).send({ fallback: true }) })
    }, { prefix: '/app' })
  })
  t.after(() => app.close())
  expectTimeout(await app.inject({ url: '/app/missing' }), 100, '/app/missing')
  // spikard's own not-found answer is unchanged.
  assert.equal((await app.inject({ url: '/missing' })).statusCode, 404)
})

test('routes registered before spikard are timed too; the shorthand timeout: 100 is the handler timeout', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  const slow = async (): Promise<unknown> => { await sleep(300); return { late: true } }
  app.get('/early', slow)
  app.register(async (child) => { child.get('/child', slow) }, { prefix: '/v1' })
  await app.register(spikard, { timeout: 100, shutdown: { signals: false } })
  app.get('/late', slow)
  for (const url of ['/early', '/v1/child', '/late']) {
    const res = await app.inject({ url })
    assert.equal(res.statusCode, 503, url)
    assert.match(res.body, /The request was not answered within 100 ms/, url)
  }
})
