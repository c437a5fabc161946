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
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, realpath, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import type { CreateServerConfig } from '../../src/server.js'
import { assertOptionsRefused, build, listen, withTimeout } from '../helpers.js'

const SHUTTING_DOWN = {
  type: 'https://spikard.dev/errors/shutting-down',
  title: 'Service Unavailable',
  status: 503,
  detail: 'The server is shutting down; retry on another instance'
}

/** A body big enough to take several socket writes. */
const BIG = 'x'.repeat(256 * 1024)

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

interface Response { status: number, headers: http.IncomingHttpHeaders, body: string, socket: net.Socket }

/** GET over node:http (an agent keeps the connection alive); rejects on any connection error or a body cut short. */
function get (port: number, path: string, options: { agent?: http.Agent, headers?: Record<string, string> } = {}): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: options.agent ?? false, headers: options.headers }, (res) => {
      const socket = res.socket
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('error', reject)
      res.on('end', () => {
        if (!res.complete) return reject(new Error(`truncated body (${body.length} characters)`))
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, socket })
      })
    })
    req.setTimeout(10_000, () => req.destroy(new Error(`no response to GET ${path}`)))
    req.on('error', reject)
  })
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

async function until (condition: () => boolean, what: string, ms = 2000): Promise<void> {
  await withTimeout((async () => { while (!condition()) await sleep(2) })(), ms, what)
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

function assertShuttingDown (res: { status: number, headers: Record<string, unknown>, body: string }, instance: string): void {
  assert.equal(res.status, 503, res.body)
  assert.equal(res.headers.connection, 'close')
  assert.match(String(res.headers['content-type']), /^application\/problem\+json(;|$)/)
  assert.deepStrictEqual(JSON.parse(res.body), { ...SHUTTING_DOWN, instance, requestId: res.headers['x-request-id'] })
}

// ---------------------------------------------------------------------------------------
// Options, state and process handlers

test('off by default: no shutdown phases, no process handlers; drain hooks still run on close', async (t) => {
  const before = process.listenerCount('SIGTERM')
  const { app, logs } = await build({ requestId: true }, routes)
  t.after(() => app.close())
  assert.equal(app.spikard.options.shutdown, false)
  assert.equal(process.listenerCount('SIGTERM'), before)
  await listen(app)
  const hooks: string[] = []
  app.spikard.onDrain('task', ({ remainingMs }) => { hooks.push(`task ${remainingMs > 29_000}`) })
  await app.close()
  assert.deepStrictEqual(hooks, ['task true'])
  assert.equal(app.spikard.phase, 'closed')
  assert.deepStrictEqual(logs.filter((l) => /^shutdown /.test(l.msg)), [])
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'shutdown: drain hook finished').map((l) => l.drainHook), ['task'])
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
    { shutdown: { timeout: 'soon' }, problems: ['shutdown.timeout: expected a duration (milliseconds, or a string such as "500ms", "30s", "1m"), found "soon"'] },
    { shutdown: { preCloseDelay: -1 }, problems: ['shutdown.preCloseDelay: expected a duration (milliseconds, or a string such as "500ms", "30s", "1m"), found -1'] },
    { shutdown: { signals: 'yes' }, problems: ['shutdown.signals: expected true or false, found "yes"'] },
    { shutdown: { timout: '5s' }, problems: ['shutdown.timout: unknown key (did you mean "timeout"?)'] },
    { shutdown: { preCloseDelay: '30s' }, problems: ['shutdown.preCloseDelay: expected less than shutdown.timeout (30000 ms), found 30000 ms'] },
    { shutdown: { preCloseDelay: '2s', timeout: '1s' }, problems: ['shutdown.preCloseDelay: expected less than shutdown.timeout (1000 ms), found 2000 ms'] }
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

test('app.close(): a response whose headers promised keep-alive finishes, then its connection is closed as soon as it is idle', async (t) => {
  const { app, port } = await start(t, { shutdown: { signals: false } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  const slowStarted = whenStarted('/slow')
  const slow = get(port, '/slow?ms=1200') // keeps the shutdown going
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
  if (!res.socket.destroyed) await withTimeout(once(res.socket, 'close'), 1000, 'the idle connection to be closed')
  const closedAfter = performance.now() - begin
  assert.ok(closedAfter < 800, `closed ${closedAfter} ms after close() began, not when the shutdown ended`)
  assert.equal(app.spikard.phase, 'closing', 'the slow request is still in flight')
  assert.equal((await slow).status, 200)
  await withTimeout(closing, 3000, 'close')
})

test('app.close(): no new connections; a request arriving on an open connection gets a 503 problem with Connection: close; probes keep answering', async (t) => {
  const { app, logs, port } = await start(t, { requestId: true, health: true, logging: true, shutdown: { signals: false } })
  const slowStarted = whenStarted('/slow')
  const slow = get(port, '/slow?ms=700') // keeps the shutdown in its closing phase
  await slowStarted
  const [hello, live, ready] = await Promise.all(['/hello', '/livez', '/readyz'].map((path) => partialRequest(port, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n`)))
  // Connections still in the listen backlog when the server stops listening are reset by the kernel.
  await accepted(app, 4)
  const closing = app.close()
  await until(() => app.spikard.phase === 'closing', 'the closing phase')

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

test('app.close() without listening: no pre-close delay to wait for, and the phases at debug level only', async (t) => {
  for (const level of ['info', 'debug'] as const) {
    const { app, logs } = await start(t, { server: { logger: { level } }, shutdown: { preCloseDelay: '2s', timeout: '5s', signals: false } }, false)
    await app.ready()
    const begin = performance.now()
    await app.close()
    assert.ok(performance.now() - begin < 500)
    if (level === 'info') assert.deepStrictEqual(logs, [], '`spikard check` prints no shutdown lines')
    else {
      assertPhases(logs, ['stop-accepting', 'in-flight-requests', 'drain-hooks', 'close'])
      assert.ok(logs.every((l) => l.level === 20), JSON.stringify(logs))
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

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const CLI = join(ROOT, 'src/cli/index.ts')
const TSX = import.meta.resolve('tsx')

const ROUTES_MJS = `const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const PAD = 'p'.repeat(2048)
export default async function routes (app) {
  app.get('/hello', async () => ({ hello: 'world' }))
  app.get('/slow', async (request) => {
    request.log.info('slow request started')
    await sleep(Number(request.query.ms))
    return { done: true, data: 'x'.repeat(${BIG.length}) }
  })
  app.get('/hang', async (request) => { request.log.info('hang request started'); return await new Promise(() => {}) })
  app.get('/crash', async () => { setTimeout(() => { throw new Error('kaboom in a timer') }, 20); return { crashing: true } })
  app.get('/reject', async () => { Promise.reject(new Error('a rejection nobody handles')); return { rejecting: true } })
  app.get('/work', async (request) => { await sleep(Math.random() * 10); return { id: request.id, pad: PAD } })
  // Every request the server accepted, whoever answers it.
  app.server.on('request', (req) => { if (req.url === '/work') app.log.info({ accepted: req.headers['x-request-id'] }, 'accepted') })
  if (process.env.STUCK_DRAIN === '1') app.spikard.onDrain('stuck-task', () => new Promise(() => {}))
}
`
const PAD = 'p'.repeat(2048)

interface Child {
  child: ChildProcess
  port: number
  lines: () => Array<Record<string, any>>
  stdout: () => string
  stderr: () => string
  exit: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Resolves when a log line matching `match` has been written. */
  waitForLine: (match: (line: Record<string, any>) => boolean, what: string) => Promise<Record<string, any>>
}

/** `spikard start` with the given config in a temp dir, after its "listening" line; killed after the test. */
async function startCli (t: TestContext, config: Record<string, unknown>, env: Record<string, string> = {}): Promise<Child> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'spikard-shutdown-')))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'routes.mjs'), ROUTES_MJS)
  await writeFile(join(dir, 'spikard.config.json'), JSON.stringify({ server: { host: '127.0.0.1', port: 0 }, app: './routes.mjs', ...config }))
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  delete childEnv.NODE_TEST_CONTEXT
  delete childEnv.NODE_OPTIONS
  const child = spawn(process.execPath, ['--import', TSX, CLI, 'start'], { cwd: dir, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const exit = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let stdout = ''
  let stderr = ''
  const waiters: Array<() => void> = []
  const lines = (): Array<Record<string, any>> => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    for (const waiter of waiters) waiter()
  })
  const waitFor = async <T>(check: () => T | undefined, what: string): Promise<T> => await withTimeout(new Promise<T>((resolve, reject) => {
    const test = (): void => { const found = check(); if (found !== undefined) resolve(found) }
    waiters.push(test)
    void exit.then(({ code, signal }) => reject(new Error(`spikard exited (${code ?? signal}) before ${what}:\n${stdout}\n${stderr}`)))
    test()
  }), 15_000, what)
  const url = await waitFor(() => /^spikard listening on (http:\/\/\S+)$/m.exec(stdout)?.[1], 'listening')
  return {
    child,
    port: Number(new URL(url).port),
    lines,
    stdout: () => stdout,
    stderr: () => stderr,
    exit,
    waitForLine: async (match, what) => await waitFor(() => {
      // Only complete lines: a chunk may end mid-line.
      const complete = stdout.slice(0, stdout.lastIndexOf('\n') + 1)
      return complete.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find(match)
    }, what)
  }
}

async function exited (server: Child, ms = 10_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  const exit = await withTimeout(server.exit, ms, 'spikard to exit')
  // 'exit' can come before the pipes are drained.
  await Promise.all([server.child.stdout!, server.child.stderr!].map((s) => s.readableEnded ? undefined : once(s, 'end')))
  return exit
}

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

// ---------------------------------------------------------------------------------------
// The load test

type Outcome =
  | { id: string, kind: 'ok', close: boolean }
  | { id: string, kind: 'shutting-down' }
  | { id: string, kind: 'refused' }
  | { id: string, kind: 'failed' | 'invalid', detail: string }

/** One GET /work, classified: a complete valid 200 or 503 problem, a refused connection, a failure, or an invalid answer. */
async function work (port: number, id: string, agent: http.Agent): Promise<Outcome> {
  let res: Response
  try {
    res = await get(port, '/work', { agent, headers: { 'x-request-id': id } })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ECONNREFUSED' ? { id, kind: 'refused' } : { id, kind: 'failed', detail: `${code ?? ''} ${(error as Error).message}` }
  }
  const length = Number(res.headers['content-length'])
  if (length !== Buffer.byteLength(res.body)) return { id, kind: 'invalid', detail: `content-length ${length}, body ${Buffer.byteLength(res.body)} bytes` }
  if (res.status === 200 && res.body === JSON.stringify({ id, pad: PAD })) return { id, kind: 'ok', close: res.headers.connection === 'close' }
  if (res.status === 503 && res.headers.connection === 'close' && /^application\/problem\+json/.test(String(res.headers['content-type'])) &&
    res.body === JSON.stringify({ ...SHUTTING_DOWN, instance: '/work', requestId: id })) return { id, kind: 'shutting-down' }
  return { id, kind: 'invalid', detail: `${res.status} ${JSON.stringify(res.headers)} ${res.body.slice(0, 200)}` }
}

describe('load: 8 keep-alive clients looping while SIGTERM arrives', { concurrency: 1 }, () => {
  for (const preCloseDelay of [0, 300]) {
    it(`preCloseDelay ${preCloseDelay}: every request the server accepted got a complete, valid response`, async (t) => {
      const server = await startCli(t, { requestId: true, shutdown: { preCloseDelay, timeout: '5s' } })
      const outcomes: Outcome[] = []
      let stop = false
      const clients = Array.from({ length: 8 }, async (_, c) => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
        try {
          for (let i = 0; !stop; i++) {
            const outcome = await work(server.port, `c${c}-${i}`, agent)
            outcomes.push(outcome)
            if (outcome.kind === 'refused') break // the server stopped accepting: nothing more to learn
          }
        } finally {
          agent.destroy()
        }
      })
      await sleep(400)
      const sent = outcomes.length
      server.child.kill('SIGTERM')
      const exit = await exited(server)
      stop = true
      await withTimeout(Promise.all(clients), 10_000, 'the clients to stop')
      assert.deepStrictEqual(exit, { code: 0, signal: null }, server.stderr())

      const accepted = new Set(server.lines().filter((l) => l.msg === 'accepted').map((l) => l.accepted as string))
      const count = (kind: Outcome['kind']): number => outcomes.filter((o) => o.kind === kind).length
      t.diagnostic(`before SIGTERM ${sent}; ok ${count('ok')} (with Connection: close ${outcomes.filter((o) => o.kind === 'ok' && o.close).length}); ` +
        `503 ${count('shutting-down')}; refused ${count('refused')}; accepted by the server ${accepted.size}; ` +
        `failed before the server saw them ${count('failed')} ${JSON.stringify(outcomes.flatMap((o) => o.kind === 'failed' ? [o.detail] : []))}`)

      assert.deepStrictEqual(outcomes.filter((o) => o.kind === 'invalid'), [], 'every response is complete and valid')
      assert.deepStrictEqual(outcomes.filter((o) => o.kind === 'failed' && accepted.has(o.id)), [], 'no accepted request failed')
      const answered = new Set(outcomes.filter((o) => o.kind === 'ok' || o.kind === 'shutting-down').map((o) => o.id))
      assert.deepStrictEqual([...accepted].filter((id) => !answered.has(id)), [], 'every accepted request was answered')
      assert.deepStrictEqual([...answered].filter((id) => !accepted.has(id)), [], 'the server logged every request it answered')
      assert.ok(sent > 50, `a steady stream before SIGTERM: ${sent}`)
      if (preCloseDelay > 0) assert.ok(outcomes.some((o) => o.kind === 'ok' && o.close), 'the pre-close delay served with Connection: close')
      assert.ok(count('refused') >= 1, 'clients saw the server stop accepting')
    })
  }
})
