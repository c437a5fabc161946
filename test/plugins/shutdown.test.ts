/**
 * Graceful shutdown: off by default; on, `app.close()` and SIGTERM/SIGINT run the same
 * phases within one budget (readiness 503 and `Connection: close` during the pre-close
 * delay; then no new connections, a 503 problem for requests on open ones, in-flight
 * requests finishing with their whole body, drain hooks given the time left), logged with
 * their durations. In-process tests use real sockets; signals, exit codes and the load test
 * run `spikard start` in a child process.
 */
import { describe, it, test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import dns from 'node:dns'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import { PassThrough, Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import spikard from '../../src/spikard.js'
import { spikardFastifyOptions } from '../../src/server.js'
import { Budget, Lifecycle } from '../../src/lifecycle.js'
import type { CreateServerConfig } from '../../src/server.js'
import { assertOptionsRefused, build, listen, until, withTimeout } from '../helpers.js'
import { assertShuttingDown, BIG, exited, get, startCli, type Child } from '../fixtures/shutdown-child.js'

/** Resolves each time a route below starts handling a request, by path. */
const started = new Map<string, Array<() => void>>()
function whenStarted (path: string): Promise<void> {
  return new Promise((resolve) => { started.set(path, [...(started.get(path) ?? []), resolve]) })
}
function markStarted (path: string): void {
  for (const resolve of started.get(path) ?? []) resolve()
  started.delete(path)
}

const routes: FastifyPluginAsync = async (app) => {
  app.get('/hello', async () => ({ hello: 'world' }))
  // Answers after `ms`: its headers are written after the shutdown began.
  app.get('/slow', async (request) => {
    markStarted('/slow')
    await sleep(Number((request.query as { ms?: string }).ms ?? 300))
    return { done: true, data: BIG }
  })
  // Headers and a first chunk at once, the rest later: its headers promised keep-alive.
  app.get('/stream', async (_request, reply) => {
    markStarted('/stream')
    async function * chunks (): AsyncGenerator<string> {
      yield 'first chunk;'
      await sleep(300)
      yield BIG
    }
    return reply.type('text/plain').send(Readable.from(chunks()))
  })
  app.post('/upload', async (request) => ({ bytes: (request.body as string).length }))
  app.get('/error', async () => { throw Object.assign(new Error('no coffee'), { statusCode: 418 }) })
  // Headers written by the handler itself, outside Fastify's onSend hooks.
  app.get('/raw', async (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/plain' })
    reply.raw.end('raw')
  })
  app.get('/hang', async () => {
    markStarted('/hang')
    return await new Promise(() => {})
  })
}

interface Running { app: FastifyInstance, logs: Array<Record<string, any>>, port: number, url: string }

/** spikard built by createServer with the test routes, listening on a free port unless `listening` is false. */
async function start (t: TestContext, config: CreateServerConfig, listening = true): Promise<Running> {
  const { app, logs } = await build(config, routes)
  t.after(() => app.close())
  if (!listening) return { app, logs, port: 0, url: '' }
  const { url, port } = await listen(app)
  return { app, logs, port, url }
}

interface Raw { status: number, headers: Record<string, string>, body: string }

/** A connection that has sent only part of a request head; `finish` sends the rest and reads until the server closes. */
async function partialRequest (port: number, head: string): Promise<{ finish: (rest: string) => Promise<Raw>, closed: Promise<unknown> }> {
  const socket = net.connect(port, '127.0.0.1')
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.on('error', () => {}) // a reset shows as a missing response
  await once(socket, 'connect')
  socket.write(head)
  return {
    closed,
    finish: async (rest) => {
      socket.write(rest)
      await withTimeout(closed, 5000, 'the server to answer and close the connection')
      const split = received.indexOf('\r\n\r\n')
      assert.notEqual(split, -1, `not an HTTP response: ${JSON.stringify(received)}`)
      const [statusLine, ...lines] = received.slice(0, split).split('\r\n')
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]))
      return { status: Number(statusLine.split(' ')[1]), headers, body: received.slice(split + 4) }
    }
  }
}

/** Resolves once the server has accepted `count` connections (and read what they sent). */
async function accepted (app: FastifyInstance, count: number): Promise<void> {
  const connections = (): Promise<number> => new Promise((resolve, reject) => app.server.getConnections((error, n) => error === null ? resolve(n) : reject(error)))
  await withTimeout((async () => { while (await connections() < count) await sleep(2) })(), 2000, `${count} accepted connections`)
  await sleep(20)
}

const phaseLines = (logs: Array<Record<string, any>>): Array<[string, number]> =>
  logs.filter((l) => l.msg === 'shutdown phase finished').map((l) => [l.phase, l.durationMs])

/** The phase lines, each with a duration; in-flight requests and drain hooks run together, so finish in either order. */
function assertPhases (logs: Array<Record<string, any>>, expected: string[]): void {
  const lines = phaseLines(logs)
  const order = (phase: string): number => phase === 'drain-hooks' ? expected.indexOf('in-flight-requests') : expected.indexOf(phase)
  assert.deepStrictEqual(lines.map(([phase]) => phase).sort((a, b) => order(a) - order(b) || a.localeCompare(b)),
    [...expected].sort((a, b) => order(a) - order(b) || a.localeCompare(b)), JSON.stringify(lines))
  const position = (phase: string): number => lines.findIndex(([p]) => p === phase)
  for (const concurrent of ['in-flight-requests', 'drain-hooks']) {
    if (!expected.includes(concurrent)) continue
    assert.ok(position('stop-accepting') < position(concurrent) && position(concurrent) < position('close'), JSON.stringify(lines))
  }
  for (const [phase, ms] of lines) assert.ok(typeof ms === 'number' && ms >= 0, `${phase} duration ${ms}`)
}

// ---------------------------------------------------------------------------------------
// Options, state and process handlers

test('false: no shutdown phases, no process handlers; drain hooks still run on close', async (t) => {
  const before = process.listenerCount('SIGTERM')
  const { app, logs } = await build({ requestId: true, shutdown: false }, routes)
  t.after(() => app.close())
  assert.equal(app.spikard.options.shutdown, false)
  assert.equal(process.listenerCount('SIGTERM'), before)
  await listen(app)
  const hooks: string[] = []
  app.spikard.onDrain('task', ({ remainingMs }) => { hooks.push(`task ${remainingMs > 29_000}`) })
  await app.close()
  assert.deepStrictEqual(hooks, ['task true'])
  assert.equal(app.spikard.phase, 'closed')
  assert.deepStrictEqual(logs.filter((l) => /^shutdown (started|phase|complete)/.test(l.msg)), [])
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown: drain hook finished').map((l) => l.drainHook), ['task'])
})

test('false: app.close() ends once a keep-alive request in flight has its answer, not a keepAliveTimeout (72 s) later', async (t) => {
  const agent = new http.Agent({ keepAlive: true })
  t.after(() => agent.destroy())
  const { app } = await build({ shutdown: false }, routes)
  t.after(() => app.close())
  const { port } = await listen(app)
  const slowStarted = whenStarted('/slow')
  const response = get(port, '/slow?ms=300', { agent })
  await slowStarted
  const closing = app.close()
  const res = await withTimeout(response, 3000, 'the in-flight response')
  assert.equal(res.status, 200)
  assert.equal(res.body, JSON.stringify({ done: true, data: BIG }))
  // Answered before the connection is closed: the client's socket closes cleanly, with no error.
  await withTimeout(closing, 2000, 'close, once the answered connection is closed')
  assert.equal(app.spikard.phase, 'closed')
})

test('abortDrain() aborts the drain under way, and not one that has finished (its hooks would be told they were cut)', async () => {
  const log = { info: () => {}, error: () => {} } as unknown as FastifyBaseLogger
  for (const finished of [false, true]) {
    const lifecycle = new Lifecycle()
    const cut: string[] = []
    let release!: () => void
    const held = new Promise<void>((resolve) => { release = resolve })
    // A hook that leaves its 'abort' listener on the signal when it returns, as a user's may.
    lifecycle.onDrain('jobs', async ({ signal }) => {
      signal.addEventListener('abort', () => { cut.push(String(signal.reason)) }, { once: true })
      if (!finished) await held
    })
    const budget = new Budget(60_000)
    const drained = lifecycle.drain(budget, log)
    if (finished) await drained
    // What spikard start does at its deadline, or at a second signal.
    lifecycle.abortDrain()
    release()
    await drained
    budget.clear()
    assert.equal(budget.expired, !finished)
    assert.deepStrictEqual(cut, finished ? [] : ['Error: shutdown budget of 60000 ms exceeded'])
  }
})

test('true: the defaults, and SIGTERM, SIGINT and error handlers installed until close', async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection'] as const
  const counts = (): number[] => events.map((e) => process.listenerCount(e))
  const before = counts()
  const others = ['SIGHUP', 'SIGUSR2', 'beforeExit'].map((e) => process.listenerCount(e))
  const { app } = await build({ shutdown: true }, routes)
  t.after(() => app.close())
  assert.deepStrictEqual(app.spikard.options.shutdown, { timeout: 30_000, preCloseDelay: 0, signals: true })
  assert.deepStrictEqual(counts(), before.map((n) => n + 1))
  assert.deepStrictEqual(['SIGHUP', 'SIGUSR2', 'beforeExit'].map((e) => process.listenerCount(e)), others, 'only SIGTERM, SIGINT and errors')
  assert.equal(app.spikard.phase, 'serving')
  await app.close()
  assert.deepStrictEqual(counts(), before)
  assert.equal(app.spikard.phase, 'closed')
})

test('app.close() drains within Fastify\'s pluginTimeout; createServer sets one above the budget', async (t) => {
  // The mechanism, at a small scale: an instance of your own whose pluginTimeout is shorter
  // than the request in flight fails app.close() and cuts the drain; a longer one drains.
  // (Long enough for spikard to register within it.)
  for (const [pluginTimeout, drained] of [[1500, false], [8000, true]] as const) {
    const app = Fastify({ pluginTimeout })
    await app.register(spikard, { shutdown: { timeout: '6s', signals: false } })
    await app.register(routes)
    const { url } = await listen(app)
    const started = whenStarted('/slow')
    const response = fetch(`${url}/slow?ms=3000`).then((r) => r.status, () => 'failed')
    await started
    const closed = await app.close().then(() => true, () => false)
    assert.equal(closed, drained, `pluginTimeout ${pluginTimeout}`)
    if (drained) assert.equal(await response, 200)
    else await app.close().catch(() => {})
  }
  // createServer: the budget plus 5 s, and never below Fastify's own 10 s. Off, app.close()
  // still runs the drain hooks with the default budget (30 s): Fastify must let it.
  for (const [shutdown, expected] of [[true, 35_000], ['60s', 65_000], ['2s', 10_000], [false, 35_000]] as const) {
    const { app } = await build({ shutdown }, routes)
    t.after(() => app.close())
    assert.equal(app.initialConfig.pluginTimeout, expected, String(shutdown))
  }
})

test('an instance of your own that answers requests itself during app.close() (return503OnClosing) is a startup warning; spikardFastifyOptions() turns it off', async (t) => {
  for (const [factory, warned] of [[{}, true], [{ return503OnClosing: false }, false], [spikardFastifyOptions({}, new PassThrough()), false]] as const) {
    const logs: string[] = []
    const app = Fastify({ ...factory, logger: { level: 'warn', stream: { write: (line: string) => { logs.push(JSON.parse(line).msg) } } } })
    t.after(() => app.close())
    await app.register(spikard, { shutdown: { signals: false } })
    await listen(app)
    assert.equal(logs.some((msg) => msg.startsWith('Fastify\'s return503OnClosing is on: ')), warned, `${JSON.stringify(Object.keys(factory))}: ${logs.join(' | ')}`)
  }
})

test('many apps in one process: handlers removed on close, no listener leak warning', async () => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  const before = process.listenerCount('SIGTERM')
  try {
    for (let i = 0; i < 15; i++) {
      const { app } = await build({ shutdown: true, server: { logger: { level: 'silent' } } })
      await app.ready()
      await app.close()
    }
    const open = await Promise.all([1, 2, 3].map(async () => (await build({ shutdown: true, server: { logger: { level: 'silent' } } })).app))
    assert.equal(process.listenerCount('SIGTERM'), before + 3)
    await Promise.all(open.map((app) => app.close()))
    assert.equal(process.listenerCount('SIGTERM'), before)
    await sleep(10) // warnings are emitted on a later tick
    assert.deepStrictEqual(warnings.filter((w) => w.name === 'MaxListenersExceededWarning'), [])
  } finally {
    process.off('warning', onWarning)
  }
})

test('invalid options fail at createServer and at ready(), naming shutdown.<key>', async () => {
  const cases: Array<{ shutdown: unknown, problems: string[] }> = [
    { shutdown: { timeout: 'soon' }, problems: ['shutdown.timeout: expected a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h"), found "soon"'] },
    // A budget of 0 is spent before the shutdown begins: every signal cut the requests in flight and exited 1.
    { shutdown: { timeout: 0 }, problems: ['shutdown.timeout: expected a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h"), found 0'] },
    { shutdown: 0, problems: ['shutdown: expected true, false, an options object or a duration of at least 1 ms (milliseconds, or a string such as "30s", "1m", "1h") (its timeout), found 0'] },
    { shutdown: { preCloseDelay: -1 }, problems: ['shutdown.preCloseDelay: expected a duration (milliseconds, or a string such as "500ms", "30s", "1m"), found -1'] },
    { shutdown: { signals: 'yes' }, problems: ['shutdown.signals: expected true or false, found "yes"'] },
    { shutdown: { timout: '5s' }, problems: ['shutdown.timout: unknown key (did you mean "timeout"?)'] },
    { shutdown: { preCloseDelay: '30s' }, problems: ['shutdown.preCloseDelay: expected less than shutdown.timeout (30000 ms), found 30000 ms'] },
    { shutdown: { preCloseDelay: '2s', timeout: '1s' }, problems: ['shutdown.preCloseDelay: expected less than shutdown.timeout (1000 ms), found 2000 ms'] },
    // Longer than a timer can wait: Node would end the budget after 1 ms, every shutdown cut short (exit 1).
    { shutdown: { timeout: '600h' }, problems: ['shutdown.timeout: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms'] }
  ]
  for (const { shutdown, problems } of cases) await assertOptionsRefused('shutdown', shutdown, problems)
})

test('onDrain: names are unique and non-empty, hooks are functions, a hook can be removed, none after closing', async (t) => {
  const { app } = await start(t, { shutdown: { signals: false } }, false)
  const ran: string[] = []
  app.spikard.onDrain('a', () => { ran.push('a') })
  assert.throws(() => app.spikard.onDrain('a', () => {}), { message: 'onDrain: a drain hook named "a" is already registered' })
  assert.throws(() => app.spikard.onDrain('', () => {}), { message: 'onDrain: expected a non-empty name' })
  assert.throws(() => app.spikard.onDrain('b', 'nope' as never), { message: 'onDrain("b"): expected a function, found string' })
  const remove = app.spikard.onDrain('removed', () => { ran.push('removed') })
  remove()
  await app.close()
  assert.deepStrictEqual(ran, ['a'])
  assert.throws(() => app.spikard.onDrain('late', () => {}), { message: 'onDrain("late"): the server is already closed' })
})

// ---------------------------------------------------------------------------------------
// app.close(), in process, on real sockets

test('app.close(): an in-flight request completes with its whole body; the phases are logged in order with durations', async (t) => {
  const { app, logs, port } = await start(t, { requestId: true, shutdown: { signals: false } })
  const agent = new http.Agent({ keepAlive: true })
  t.after(() => agent.destroy())
  const slowStarted = whenStarted('/slow')
  const response = get(port, '/slow?ms=400', { agent })
  await slowStarted
  const closing = app.close()
  const res = await withTimeout(response, 5000, 'the in-flight response')
  assert.equal(res.status, 200)
  assert.equal(res.headers.connection, 'close', 'its headers were written after the shutdown began')
  assert.equal(res.body, JSON.stringify({ done: true, data: BIG }))
  await withTimeout(closing, 5000, 'close')

  assertPhases(logs, ['stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
  const inFlight = logs.find((l) => l.phase === 'in-flight-requests')
  assert.equal(inFlight?.requests, 1)
  assert.ok(inFlight.durationMs >= 250, `waited for the request: ${inFlight.durationMs} ms`)
  const first = logs.find((l) => l.msg === 'shutdown started')
  assert.deepStrictEqual({ ...first, time: 0, pid: 0, hostname: '' }, { level: 30, time: 0, pid: 0, hostname: '', trigger: 'close', timeoutMs: 30_000, preCloseDelayMs: 0, msg: 'shutdown started' })
  assert.equal(logs.at(-1)?.msg, 'shutdown complete')
  assert.ok(logs.at(-1)?.durationMs >= 250)
})

test('listening on localhost (127.0.0.1 and ::1): a request in flight on the second address is waited for, not left behind', async (t) => {
  const ipv6 = await new Promise<boolean>((resolve) => net.createServer().once('error', () => resolve(false)).listen(0, '::1', function (this: net.Server) { this.close(() => resolve(true)) }))
  if (!ipv6) return t.skip('no IPv6 loopback here')
  // Most systems resolve localhost to both (Fastify binds each, app.server being the first).
  const lookup = dns.lookup
  t.mock.method(dns, 'lookup', (host: string, options: unknown, callback: (...args: unknown[]) => void) => {
    if (host === 'localhost' && (options as { all?: boolean } | undefined)?.all === true) return callback(null, [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }])
    return Reflect.apply(lookup, dns, [host, options, callback])
  })
  const { app, logs } = await build({ shutdown: { signals: false } }, routes)
  t.after(() => app.close())
  await app.listen({ host: 'localhost', port: 0 })
  const main = app.server.address() as net.AddressInfo
  const second = app.addresses().find((a): a is net.AddressInfo => typeof a !== 'string' && a.address !== main.address)
  assert.ok(second !== undefined, JSON.stringify(app.addresses()))
  const slowStarted = whenStarted('/slow')
  const response = new Promise<{ status: number, connection?: string, body: string }>((resolve, reject) => {
    http.get({ host: second.address, port: second.port, path: '/slow?ms=600', agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body }))
    }).on('error', reject)
  })
  await slowStarted
  await withTimeout(app.close(), 5000, 'close')
  const inFlight = logs.find((l) => l.phase === 'in-flight-requests')
  assert.equal(inFlight?.requests, 1, 'close() waited for the request on the second address')
  assert.ok(logs.findIndex((l) => l.msg === 'request completed' && l.path === '/slow') < logs.findIndex((l) => l.msg === 'shutdown complete'), 'answered before the shutdown completed')
  assert.deepStrictEqual(await withTimeout(response, 5000, 'the response'), { status: 200, connection: 'close', body: JSON.stringify({ done: true, data: BIG }) })
})

test('app.close(): a connection whose last response promised keep-alive gets a grace for its next request (a 503, not a reset), then is closed', async (t) => {
  const { app, port } = await start(t, { shutdown: { timeout: '5s', signals: false } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  const slowStarted = whenStarted('/slow')
  const slow = get(port, '/slow?ms=1500') // keeps the shutdown going
  await slowStarted
  const streamStarted = whenStarted('/stream')
  const response = get(port, '/stream', { agent })
  await streamStarted
  await sleep(50) // the headers and the first chunk are out
  const begin = performance.now()
  const closing = app.close()
  const res = await withTimeout(response, 3000, 'the streamed response')
  assert.equal(res.status, 200)
  assert.equal(res.headers.connection, 'keep-alive', 'its headers were written before the shutdown began')
  assert.equal(res.body, `first chunk;${BIG}`)
  // The client sends its next request at once, on the same connection.
  const next = await get(port, '/hello', { agent })
  assert.equal(next.socket, res.socket, 'the same keep-alive connection, still open')
  assertShuttingDown({ ...next, headers: next.headers as Record<string, unknown> }, '/hello')
  if (!next.socket.destroyed) await withTimeout(once(next.socket, 'close'), 1000, 'the connection to be closed after its 503')
  // A new connection: refused, the listener has closed by now.
  const idle = await get(port, '/hello', { agent: new http.Agent({ keepAlive: true }) }).catch((error: Error) => error)
  assert.ok(idle instanceof Error, 'the listener has closed')
  assert.equal(app.spikard.phase, 'closing', 'the slow request is still in flight')
  assert.ok(performance.now() - begin < 1500)
  assert.equal((await slow).status, 200)
  await withTimeout(closing, 3000, 'close')
})

test('app.close(): new connections refused once the listener is quiet; a request arriving on an open connection gets a 503 problem with Connection: close; probes keep answering', async (t) => {
  const { app, logs, port } = await start(t, { requestId: true, health: true, logging: true, shutdown: { signals: false } })
  const slowStarted = whenStarted('/slow')
  const slow = get(port, '/slow?ms=700') // keeps the shutdown in its closing phase
  await slowStarted
  const [hello, live, ready] = await Promise.all(['/hello', '/livez', '/readyz'].map((path) => partialRequest(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n`)))
  // Connections still in the listen backlog when the server stops listening are reset by the kernel.
  await accepted(app, 4)
  const closing = app.close()
  await until(() => app.spikard.phase === 'closing', 'the closing phase')

  // The listener stays open a moment, answering 503, so no connection waiting to be
  // accepted is reset; then new connections are refused.
  const late = await get(port, '/hello', { headers: { 'x-request-id': 'late-0' } })
  assertShuttingDown({ ...late, headers: late.headers as Record<string, unknown> }, '/hello')
  await until(() => logs.some((l) => l.phase === 'stop-accepting'), 'the listener to close')
  await assert.rejects(get(port, '/hello'), { code: 'ECONNREFUSED' })
  const rejected = await hello.finish('x-request-id: late-1\r\n\r\n')
  assertShuttingDown(rejected, '/hello')
  assert.equal(rejected.headers['x-request-id'], 'late-1')
  const liveness = await live.finish('\r\n')
  assert.deepStrictEqual([liveness.status, liveness.headers.connection, liveness.body], [200, 'close', '{"status":"ok"}'])
  const readiness = await ready.finish('x-request-id: late-2\r\n\r\n')
  assertShuttingDown(readiness, '/readyz')

  const res = await slow
  assert.equal(res.status, 200)
  assert.equal(res.body, JSON.stringify({ done: true, data: BIG }))
  await withTimeout(closing, 5000, 'close')
  // The rejected request has its access line like any other.
  assert.ok(logs.some((l) => l.msg === 'request completed' && l.reqId === 'late-1' && l.status === 503))
})

test('app.close(): a request arriving on an open connection for spikard\'s own routes in a child (the docs) gets the 503 problem too', async (t) => {
  const { app, port } = await start(t, { requestId: true, shutdown: { timeout: '5s', signals: false } })
  const slowStarted = whenStarted('/slow')
  const slow = get(port, '/slow?ms=700') // keeps the shutdown in its closing phase
  await slowStarted
  const paths = ['/openapi.json', '/docs', '/asyncapi.json']
  const waiting = await Promise.all(paths.map((path) => partialRequest(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n`)))
  await accepted(app, paths.length + 1)
  const closing = app.close()
  await until(() => app.spikard.phase === 'closing', 'the closing phase')
  for (const [i, path] of paths.entries()) {
    const res = await waiting[i].finish(`x-request-id: late-${i}\r\n\r\n`)
    assertShuttingDown(res, path)
    assert.equal(res.headers['x-request-id'], `late-${i}`)
  }
  assert.equal((await slow).status, 200)
  await withTimeout(closing, 5000, 'close')
})

test('app.close() with preCloseDelay: still serving, with Connection: close and readiness 503; then idle connections are closed', async (t) => {
  const { app, logs, port } = await start(t, { requestId: true, health: true, shutdown: { preCloseDelay: '400ms', timeout: '5s', signals: false } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  const idleAgent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => { agent.destroy(); idleAgent.destroy() })
  const before = await get(port, '/hello', { agent })
  assert.equal(before.headers.connection, 'keep-alive')
  const idle = await get(port, '/hello', { agent: idleAgent })
  const idleClosed = once(idle.socket, 'close')

  const begin = performance.now()
  const closing = app.close()
  await until(() => app.spikard.phase === 'draining', 'the shutdown to begin')

  const during = await get(port, '/hello', { agent })
  assert.equal(during.socket, before.socket, 'the same keep-alive connection')
  assert.deepStrictEqual([during.status, during.headers.connection, during.body], [200, 'close', '{"hello":"world"}'])
  await withTimeout(once(during.socket, 'close'), 1000, 'the server to close that connection')
  const fresh = await get(port, '/hello')
  assert.deepStrictEqual([fresh.status, fresh.headers.connection], [200, 'close'], 'new connections are still accepted')
  const ready = await get(port, '/readyz')
  assertShuttingDown({ ...ready, headers: ready.headers as Record<string, unknown> }, '/readyz')
  const live = await get(port, '/livez')
  assert.deepStrictEqual([live.status, live.body], [200, '{"status":"ok"}'])
  assert.equal(app.spikard.phase, 'draining')

  await withTimeout(closing, 5000, 'close')
  const elapsed = performance.now() - begin
  assert.ok(elapsed >= 390 && elapsed < 2000, `close took ${elapsed} ms`)
  await withTimeout(idleClosed, 100, 'the idle keep-alive connection to be closed')
  assertPhases(logs, ['pre-close-delay', 'stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
  const delay = phaseLines(logs)[0][1]
  assert.ok(delay >= 395 && delay < 1000, `pre-close delay ${delay} ms`)
})

test('app.close() without listening: no pre-close delay to wait for, and the phases and drain hooks at debug level only', async (t) => {
  for (const shutdown of [{ preCloseDelay: '2s', timeout: '5s', signals: false }, false] as const) {
    for (const level of ['info', 'debug'] as const) {
      const { app, logs } = await start(t, { server: { logger: { level } }, shutdown }, false)
      await app.ready()
      // As the SSE, WebSocket, stream and tasks features register theirs.
      app.spikard.onDrain('task', () => {})
      const begin = performance.now()
      await app.close()
      assert.ok(performance.now() - begin < 500)
      if (level === 'info') assert.deepStrictEqual(logs, [], '`spikard check` prints no shutdown lines')
      else {
        if (shutdown !== false) assertPhases(logs, ['stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
        assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown: drain hook finished').map((l) => l.drainHook), ['task'])
        assert.ok(logs.every((l) => l.level === 20), JSON.stringify(logs))
      }
    }
  }
})

test('drain hooks start together once the server stops accepting, each given the time left in the budget', async (t) => {
  const { app, logs } = await start(t, { shutdown: { preCloseDelay: '300ms', timeout: '2s', signals: false } })
  const calls: Array<{ name: string, phase: string, remainingMs: number, aborted: boolean, at: number }> = []
  for (const name of ['websocket', 'tasks']) {
    app.spikard.onDrain(name, async ({ remainingMs, signal }) => {
      calls.push({ name, phase: app.spikard.phase, remainingMs, aborted: signal.aborted, at: performance.now() })
      await sleep(200)
    })
  }
  app.spikard.onDrain('broken', async () => { throw new Error('drain failed on purpose') })
  const begin = performance.now()
  await withTimeout(app.close(), 3000, 'close')

  assert.deepStrictEqual(calls.map((c) => [c.name, c.phase, c.aborted]), [['websocket', 'closing', false], ['tasks', 'closing', false]])
  for (const c of calls) {
    assert.ok(c.remainingMs > 1500 && c.remainingMs <= 1700, `${c.name}: remainingMs ${c.remainingMs}`)
    assert.ok(c.at - begin >= 295, `${c.name} called after the pre-close delay`)
  }
  const drain = logs.find((l) => l.phase === 'drain-hooks')
  assert.deepStrictEqual(drain?.hooks, ['websocket', 'tasks', 'broken'])
  assert.ok(drain.durationMs >= 195 && drain.durationMs < 380, `hooks ran together: ${drain.durationMs} ms`)
  const failed = logs.find((l) => l.msg === 'shutdown: drain hook failed')
  assert.equal(failed?.level, 50)
  assert.equal(failed.drainHook, 'broken')
  assert.equal(failed.err.message, 'drain failed on purpose')
  assert.match(failed.err.stack, /\n {4}at /)
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown: drain hook finished').map((l) => l.drainHook).sort(), ['tasks', 'websocket'])
})

test('app.close(): a client that pipelines two requests and goes away does not hold the shutdown', async (t) => {
  const { app, logs, port } = await start(t, { shutdown: { timeout: '5s', signals: false } })
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  const slowStarted = whenStarted('/slow')
  // Node parses the second request at once and queues its response behind the first.
  socket.write('GET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n')
  await slowStarted
  await sleep(50)
  socket.destroy()
  await sleep(300) // both handlers have answered into the void
  const begin = performance.now()
  await withTimeout(app.close(), 4000, 'close')
  const elapsed = performance.now() - begin
  assert.ok(elapsed < 1500, `close took ${elapsed} ms`)
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown did not finish in time'), [])
})

test('app.close(): pipelined requests in flight each get their answer; only the last response closes the connection', async (t) => {
  const { app, port } = await start(t, { shutdown: { timeout: '5s', signals: false } })
  const socket = net.connect(port, '127.0.0.1')
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  socket.on('error', () => {}) // a reset shows as a missing response
  const closed = new Promise((resolve) => socket.once('close', resolve))
  await once(socket, 'connect')
  const slowStarted = whenStarted('/slow')
  // Node parses the second request at once and queues its response behind the first's:
  // its handler runs now, and its answer must not be thrown away when the first closes the connection.
  socket.write('GET /slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n')
  await slowStarted
  const closing = app.close()
  await withTimeout(closed, 4000, 'the server to answer and close the connection')
  const heads = [...received.matchAll(/HTTP\/1\.1 (\d+)[^]*?\r\nconnection: ([^\r]*)\r\n/gi)].map((m) => [Number(m[1]), m[2]])
  assert.deepStrictEqual(heads, [[200, 'keep-alive'], [200, 'close']], received.replace(/x{100,}/g, '...'))
  assert.ok(received.endsWith(JSON.stringify({ done: true, data: BIG })), received.slice(-100))
  await withTimeout(closing, 4000, 'close')
})

test('draining: every response closes its connection, errors and responses written outside onSend included', async (t) => {
  const { app, port } = await start(t, { requestId: true, shutdown: { preCloseDelay: '400ms', timeout: '5s', signals: false } })
  const closing = app.close()
  await until(() => app.spikard.phase === 'draining', 'the shutdown to begin')
  for (const [path, status] of [['/hello', 200], ['/error', 418], ['/raw', 200], ['/nowhere', 404]] as const) {
    const agent = new http.Agent({ keepAlive: true })
    t.after(() => agent.destroy())
    const res = await get(port, path, { agent })
    assert.deepStrictEqual([path, res.status, res.headers.connection], [path, status, 'close'])
  }
  await withTimeout(closing, 5000, 'close')
})

test('a slow upload during a shutdown is answered with a 503 problem at 90 % of the budget; close() ends in time', async (t) => {
  const { app, logs, port } = await start(t, { requestId: true, shutdown: { timeout: '1s', signals: false } })
  const socket = net.connect(port, '127.0.0.1')
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  socket.on('error', () => {}) // the server may reset it once it has answered
  const closed = once(socket, 'close')
  await once(socket, 'connect')
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 10000\r\nx-request-id: upload-1\r\n\r\n')
  // 10 bytes every 50 ms: the whole body would take 50 s.
  const trickle = setInterval(() => { if (socket.writable) socket.write('y'.repeat(10)) }, 50)
  t.after(() => { clearInterval(trickle); socket.destroy() })
  await sleep(200)
  const begin = performance.now()
  await withTimeout(app.close(), 3000, 'close')
  const elapsed = performance.now() - begin
  await withTimeout(closed, 2000, 'the connection to close')
  clearInterval(trickle)
  assert.ok(elapsed >= 850 && elapsed < 1000, `close took ${elapsed} ms`)
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown did not finish in time'), [])
  const split = received.indexOf('\r\n\r\n')
  const head = received.slice(0, split).split('\r\n')
  assert.equal(head[0], 'HTTP/1.1 503 Service Unavailable', received)
  assert.ok(head.includes('connection: close'), received)
  assert.ok(head.includes('content-type: application/problem+json; charset=utf-8'), received)
  assert.deepStrictEqual(JSON.parse(received.slice(split + 4)), { type: 'https://spikard.dev/errors/shutting-down', title: 'Service Unavailable', status: 503, detail: 'The server is shutting down; retry on another instance', instance: '/upload', requestId: 'upload-1' })
  assert.equal(logs.find((l) => l.msg === 'shutdown: cutting a request whose body is still arriving')?.url, '/upload')
})

test('budget overrun: what is pending is logged, drain hooks are aborted, connections cut, and close() still resolves', async (t) => {
  const { app, logs, port } = await start(t, { shutdown: { timeout: '500ms', signals: false } })
  let signal: AbortSignal | undefined
  app.spikard.onDrain('stuck-task', (context) => { signal = context.signal; return new Promise(() => {}) })
  app.spikard.onDrain('quick', () => {})
  const hangStarted = whenStarted('/hang')
  const hung = get(port, '/hang')
  hung.catch(() => {})
  await hangStarted
  const begin = performance.now()
  await withTimeout(app.close(), 3000, 'close after the budget ran out')
  const elapsed = performance.now() - begin
  assert.ok(elapsed >= 480 && elapsed < 1500, `close took ${elapsed} ms`)

  const overrun = logs.filter((l) => l.msg === 'shutdown did not finish in time')
  assert.equal(overrun.length, 1)
  const { time, pid, hostname, elapsedMs, ...rest } = overrun[0]
  assert.ok(elapsedMs >= 480, `elapsedMs ${elapsedMs}`)
  assert.deepStrictEqual(rest, {
    level: 50,
    reason: 'budget exceeded',
    timeoutMs: 500,
    waitingFor: 'in-flight requests and drain hooks',
    pendingDrainHooks: ['stuck-task'],
    inFlightRequests: 1,
    msg: 'shutdown did not finish in time'
  })
  assert.equal(signal?.aborted, true)
  await assert.rejects(hung, (error: NodeJS.ErrnoException) => ['ECONNRESET'].includes(error.code ?? '') || /socket hang up/.test(error.message))
  assert.deepStrictEqual(phaseLines(logs).map(([phase]) => phase), ['stop-accepting', 'close'], 'the unfinished phases are not reported as finished')
})

test('createServer: requests that arrive during app.close() reach spikard', async (t) => {
  const { app } = await build({ requestId: true, health: true, shutdown: { preCloseDelay: '300ms', timeout: '5s', signals: false } }, routes)
  t.after(() => app.close())
  const { port } = await listen(app)
  const closing = app.close()
  await until(() => app.spikard.phase === 'draining', 'the shutdown to begin')
  try {
    const hello = await get(port, '/hello')
    assert.deepStrictEqual([hello.status, hello.headers.connection, hello.body], [200, 'close', '{"hello":"world"}'], 'the pre-close delay still serves')
    const ready = await get(port, '/readyz')
    assertShuttingDown({ ...ready, headers: ready.headers as Record<string, unknown> }, '/readyz')
  } finally {
    await closing
  }
})

// ---------------------------------------------------------------------------------------
// `spikard start`, signals and exit codes, in a child process

const msgs = (server: Child): string[] => server.lines().map((l) => l.msg)

describe('spikard start: signals and exit codes', { concurrency: 2 }, () => {
  it('SIGTERM: the phases are logged with their durations, then exit 0', async (t) => {
    const server = await startCli(t, { requestId: true, health: true, shutdown: { timeout: '5s' } })
    assert.equal((await get(server.port, '/hello')).status, 200)
    server.child.kill('SIGTERM')
    const exit = await exited(server)
    assert.deepStrictEqual(exit, { code: 0, signal: null }, server.stdout() + server.stderr())
    assert.equal(server.stderr(), '')
    const lines = server.lines()
    const shutdown = lines.slice(lines.findIndex((l) => l.msg === 'SIGTERM received: shutting down'))
    assert.deepStrictEqual(shutdown.map((l) => l.msg), [
      'SIGTERM received: shutting down',
      'shutdown started',
      'shutdown phase finished',
      'shutdown phase finished',
      'shutdown phase finished',
      'shutdown phase finished',
      'shutdown complete',
      'exiting with code 0'
    ])
    assert.equal(shutdown[0].signal, 'SIGTERM')
    assert.equal(shutdown[1].trigger, 'SIGTERM')
    assertPhases(shutdown, ['stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
    for (const [phase, ms] of phaseLines(shutdown)) assert.ok(ms < 1000, `${phase}: ${ms}`)
    assert.equal(shutdown.at(-1)?.exitCode, 0)
  })

  it('SIGINT: a slow in-flight request finishes with its whole body, then exit 0', async (t) => {
    const server = await startCli(t, { shutdown: { timeout: '5s' } })
    const agent = new http.Agent({ keepAlive: true })
    t.after(() => agent.destroy())
    const response = get(server.port, '/slow?ms=800', { agent })
    await server.waitForLine((l) => l.msg === 'slow request started', 'the slow request to start')
    server.child.kill('SIGINT')
    const res = await withTimeout(response, 5000, 'the slow response')
    assert.equal(res.status, 200)
    assert.equal(res.headers.connection, 'close')
    assert.equal(res.body, JSON.stringify({ done: true, data: BIG }))
    assert.deepStrictEqual(await exited(server), { code: 0, signal: null }, server.stderr())
    const inFlight = server.lines().find((l) => l.phase === 'in-flight-requests')
    assert.equal(inFlight?.requests, 1)
    assert.ok(inFlight.durationMs >= 500, `waited ${inFlight.durationMs} ms`)
  })

  it('the budget runs out: what was pending is logged, exit 1', async (t) => {
    const server = await startCli(t, { shutdown: { timeout: '600ms' } }, { STUCK_DRAIN: '1' })
    const hung = get(server.port, '/hang')
    hung.catch(() => {})
    await server.waitForLine((l) => l.msg === 'hang request started', 'the hanging request to start')
    const begin = performance.now()
    server.child.kill('SIGTERM')
    assert.deepStrictEqual(await exited(server), { code: 1, signal: null }, server.stderr())
    const elapsed = performance.now() - begin
    assert.ok(elapsed >= 550 && elapsed < 5000, `exited after ${elapsed} ms`)
    const overrun = server.lines().filter((l) => l.msg === 'shutdown did not finish in time')
    assert.equal(overrun.length, 1, server.stdout())
    const { time, pid, hostname, elapsedMs, ...rest } = overrun[0]
    assert.ok(elapsedMs >= 550, `elapsedMs ${elapsedMs}`)
    assert.deepStrictEqual(rest, {
      level: 50,
      reason: 'budget exceeded',
      timeoutMs: 600,
      waitingFor: 'in-flight requests and drain hooks',
      pendingDrainHooks: ['stuck-task'],
      inFlightRequests: 1,
      exitCode: 1,
      msg: 'shutdown did not finish in time'
    })
    await assert.rejects(hung)
  })

  it('a second SIGTERM exits at once with code 1', async (t) => {
    const server = await startCli(t, { shutdown: { preCloseDelay: '10s', timeout: '20s' } })
    server.child.kill('SIGTERM')
    await server.waitForLine((l) => l.msg === 'shutdown started', 'the shutdown to start')
    const begin = performance.now()
    server.child.kill('SIGTERM')
    assert.deepStrictEqual(await exited(server, 5000), { code: 1, signal: null }, server.stderr())
    assert.ok(performance.now() - begin < 2000)
    const second = server.lines().find((l) => l.msg === 'second SIGTERM while shutting down: exiting at once')
    assert.deepStrictEqual([second?.level, second?.signal, second?.waitingFor, second?.exitCode], [50, 'SIGTERM', 'the pre-close delay', 1], server.stdout())
  })

  for (const { path, message } of [{ path: '/crash', message: 'kaboom in a timer' }, { path: '/reject', message: 'a rejection nobody handles' }]) {
    it(`an uncaught error (${path}) is logged with its stack, the server closes gracefully, exit 1`, async (t) => {
      const server = await startCli(t, { shutdown: { timeout: '5s' } })
      assert.equal((await get(server.port, path)).status, 200)
      assert.deepStrictEqual(await exited(server), { code: 1, signal: null }, server.stderr())
      const lines = server.lines()
      const error = lines.find((l) => l.msg === 'uncaught error: shutting down')
      assert.equal(error?.level, 50)
      assert.equal(error.err.message, message)
      assert.match(error.err.stack, new RegExp(`^Error: ${message}\\n {4}at .*routes\\.mjs`))
      assert.equal(lines.find((l) => l.msg === 'shutdown started')?.trigger, 'uncaught error')
      assertPhases(lines, ['stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
      assert.equal(msgs(server).at(-1), 'exiting with code 1')
    })
  }
})
