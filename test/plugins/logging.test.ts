/**
 * Access log: off by default; on, exactly one structured line per completed request
 * (never Fastify's two), with secret query values and headers redacted, and secrets kept
 * out of every other log line by the logger's redact paths.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { Readable, Writable } from 'node:stream'
import type { FastifyPluginAsync, LightMyRequestResponse } from 'fastify'
import { createServer, type CreateServerConfig } from '../../src/server.js'
import { headersSerializer } from '../../src/logger.js'
import { redactHeaders } from '../../src/redact.js'
import { assertOptionsRefused, build, listen, rawRequest, until, UUID, type TestApp } from '../helpers.js'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/users/:id', async (request) => ({ id: (request.params as { id: string }).id }))
  app.get('/search', async (request) => ({ results: [], query: request.query }))
  app.get('/healthz', { config: { logging: false } }, async () => ({ status: 'ok' }))
  app.get('/boom', async () => { throw new Error('kaput') })
  app.get('/user-log', async (request) => {
    request.log.info({ req: { headers: request.headers } }, 'user logged req.headers')
    request.log.info({ headers: request.headers }, 'user logged headers')
    // Headers of the app's own (a call it makes), named as it wrote them.
    request.log.info({ headers: { Authorization: 'Bearer SECRET-outgoing', 'X-Api-Key': 'SECRET-out-key', Accept: 'application/json' } }, 'user logged outgoing headers')
    return { ok: true }
  })
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build(config, routes)
  t.after(() => built.app.close())
  return built
}

/** Like build(), but keeps the raw serialized log text, to search it for secrets. */
async function setupRaw (t: TestContext, config: CreateServerConfig): Promise<TestApp & { raw: () => string }> {
  let text = ''
  const logs: Array<Record<string, any>> = []
  const logStream = new Writable({
    write (chunk, _encoding, callback) {
      text += String(chunk)
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line))
      callback()
    }
  })
  const app = await createServer({ ...config, app: routes }, { logStream })
  t.after(() => app.close())
  return { app, logs, raw: () => text }
}

const accessLines = (logs: Array<Record<string, any>>): Array<Record<string, any>> => logs.filter((l) => l.msg === 'request completed')

/** The whole access line, with the fields that vary (time, pid, hostname, durationMs) checked and set aside. */
function assertAccessLine (line: Record<string, any>, res: LightMyRequestResponse, expected: Record<string, unknown>): void {
  const { time, pid, hostname, durationMs, ...rest } = line
  assert.equal(typeof time, 'number')
  assert.equal(typeof pid, 'number')
  assert.equal(typeof hostname, 'string')
  assert.equal(typeof durationMs, 'number')
  assert.ok(durationMs >= 0 && durationMs < 10_000, `durationMs ${durationMs}`)
  assert.deepStrictEqual(rest, {
    level: 30,
    reqId: res.headers['x-request-id'],
    bytes: Number(res.headers['content-length']),
    remoteAddress: '127.0.0.1',
    msg: 'request completed',
    ...expected
  })
}

// ---------------------------------------------------------------------------------------

test('false: no access line, and none of Fastify\'s request lines either', async (t) => {
  const { app, logs } = await setup(t, { logging: false })
  const res = await app.inject({ url: '/users/42' })
  assert.equal(res.statusCode, 200)
  const missing = await app.inject({ url: '/nowhere' })
  assert.equal(missing.statusCode, 404)
  assert.deepStrictEqual(logs, [])
})

test('true: exactly one access line per request with method, path, route, status, duration, bytes, address and id', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true })
  const res = await app.inject({ url: '/users/42' })
  assert.equal(res.statusCode, 200)
  assert.match(res.headers['x-request-id'] as string, UUID)
  assert.equal(logs.length, 1, JSON.stringify(logs))
  assert.ok(!logs.some((l) => l.msg === 'incoming request'))
  assertAccessLine(logs[0], res, { method: 'GET', path: '/users/42', route: '/users/:id', status: 200 })
  assert.equal(logs[0].bytes, Buffer.byteLength(res.body))

  const second = await app.inject({ url: '/search?q=shoes' })
  assert.equal(logs.length, 2)
  assertAccessLine(logs[1], second, { method: 'GET', path: '/search', query: 'q=shoes', route: '/search', status: 200 })
})

test('true: one line per request over a real connection too', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true })
  const { url } = await listen(app)
  logs.length = 0 // the "Server listening" line
  const res = await fetch(`${url}/users/7`)
  assert.equal(res.status, 200)
  const body = await res.text()
  assert.equal(logs.length, 1, JSON.stringify(logs))
  const { time, pid, hostname, durationMs, ...rest } = logs[0]
  assert.ok(durationMs >= 0)
  assert.deepStrictEqual(rest, {
    level: 30,
    reqId: res.headers.get('x-request-id'),
    method: 'GET',
    path: '/users/7',
    route: '/users/:id',
    status: 200,
    bytes: Buffer.byteLength(body),
    remoteAddress: '127.0.0.1',
    msg: 'request completed'
  })
})

test('query string: secret-named values are masked, names, order and other values kept', async (t) => {
  const { app, logs, raw } = await setupRaw(t, { requestId: true, logging: true })
  const query = 'q=shoes&token=tok-SECRET1&access_token=at-SECRET2&api_key=ak-SECRET3&apiKey=ak-SECRET4' +
    '&password=pw-SECRET5&key=k-SECRET6&client_secret=cs-SECRET7&page=2&monkey=banana&Api-Key=ak-SECRET8'
  const res = await app.inject({ url: `/search?${query}` })
  assert.equal(res.statusCode, 200)
  assert.equal(accessLines(logs).length, 1)
  assertAccessLine(logs[0], res, {
    method: 'GET',
    path: '/search',
    query: 'q=shoes&token=[REDACTED]&access_token=[REDACTED]&api_key=[REDACTED]&apiKey=[REDACTED]' +
      '&password=[REDACTED]&key=[REDACTED]&client_secret=[REDACTED]&page=2&monkey=banana&Api-Key=[REDACTED]',
    route: '/search',
    status: 200
  })
  assert.ok(!raw().includes('SECRET'), raw())
})

test('redactQuery masks extra parameter names, case-insensitively', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: { redactQuery: ['email', 'SSN'] } })
  const res = await app.inject({ url: '/search?EMAIL=ada%40example.com&ssn=123-45-6789&q=x&token=t' })
  assertAccessLine(logs[0], res, {
    method: 'GET',
    path: '/search',
    query: 'EMAIL=[REDACTED]&ssn=[REDACTED]&q=x&token=[REDACTED]',
    route: '/search',
    status: 200
  })
})

test('headers: true adds the request headers, secrets redacted; redactHeaders adds more', async (t) => {
  const secrets = {
    authorization: 'Bearer SECRET-authz',
    cookie: 'sid=SECRET-cookie',
    'x-api-key': 'SECRET-apikey',
    'proxy-authorization': 'Basic SECRET-proxy',
    // Named like secrets (the query parameters' words).
    'x-internal-auth': 'SECRET-internal',
    'x-auth-token': 'SECRET-token',
    'x-csrf-token': 'SECRET-csrf',
    'x-amz-security-token': 'SECRET-amz',
    'x-tenant': 'SECRET-tenant',
    'x-trace': 'keep-me'
  }
  const named = { 'x-internal-auth': '[REDACTED]', 'x-auth-token': '[REDACTED]', 'x-csrf-token': '[REDACTED]', 'x-amz-security-token': '[REDACTED]' }
  await t.test('defaults', async (t) => {
    const { app, logs, raw } = await setupRaw(t, { requestId: true, logging: { headers: true } })
    const res = await app.inject({ url: '/users/1', headers: secrets })
    assertAccessLine(logs[0], res, {
      method: 'GET',
      path: '/users/1',
      route: '/users/:id',
      status: 200,
      headers: {
        authorization: '[REDACTED]',
        cookie: '[REDACTED]',
        'x-api-key': '[REDACTED]',
        'proxy-authorization': '[REDACTED]',
        ...named,
        'x-tenant': 'SECRET-tenant',
        'x-trace': 'keep-me',
        'user-agent': 'lightMyRequest',
        host: 'localhost:80'
      }
    })
    for (const s of ['SECRET-authz', 'SECRET-cookie', 'SECRET-apikey', 'SECRET-proxy', 'SECRET-internal', 'SECRET-token', 'SECRET-csrf', 'SECRET-amz']) assert.ok(!raw().includes(s), s)
  })
  await t.test('redactHeaders', async (t) => {
    const { app, logs } = await setup(t, { requestId: true, logging: { headers: true, redactHeaders: ['X-Tenant'] } })
    const res = await app.inject({ url: '/users/1', headers: secrets })
    assertAccessLine(logs[0], res, {
      method: 'GET',
      path: '/users/1',
      route: '/users/:id',
      status: 200,
      headers: {
        authorization: '[REDACTED]',
        cookie: '[REDACTED]',
        'x-api-key': '[REDACTED]',
        'proxy-authorization': '[REDACTED]',
        ...named,
        'x-tenant': '[REDACTED]',
        'x-trace': 'keep-me',
        'user-agent': 'lightMyRequest',
        host: 'localhost:80'
      }
    })
  })
})

test('the access line\'s headers, masked already, are not walked again by the logger\'s headers serializer (a cost on every request with logging.headers); others are', () => {
  const hidden = new Set(['authorization'])
  const serialize = headersSerializer(hidden)
  const masked = redactHeaders({ authorization: 'Bearer SECRET', accept: '*/*' }, hidden)
  let reads = 0
  Object.defineProperty(masked, 'x-probe', { enumerable: true, get () { reads++; return 'v' } })
  assert.equal(serialize(masked), masked)
  assert.equal(reads, 0)
  assert.deepStrictEqual(JSON.parse(JSON.stringify(masked)), { authorization: '[REDACTED]', accept: '*/*', 'x-probe': 'v' })
  // A headers object of the app's own still is.
  assert.deepStrictEqual(serialize({ Authorization: 'Bearer SECRET', Accept: '*/*' }), { Authorization: '[REDACTED]', Accept: '*/*' })
})

test('level: debug writes the access line at level 20, and not at all when the logger is at info', async (t) => {
  await t.test('logger at debug', async (t) => {
    const { app, logs } = await setup(t, { requestId: true, logging: { level: 'debug' }, server: { logger: { level: 'debug' } } })
    const res = await app.inject({ url: '/users/3' })
    assert.equal(accessLines(logs).length, 1, JSON.stringify(logs))
    assertAccessLine(accessLines(logs)[0], res, { level: 20, method: 'GET', path: '/users/3', route: '/users/:id', status: 200 })
  })
  await t.test('logger at info', async (t) => {
    const { app, logs } = await setup(t, { requestId: true, logging: { level: 'debug' }, server: { logger: { level: 'info' } } })
    const res = await app.inject({ url: '/users/3' })
    assert.equal(res.statusCode, 200)
    assert.deepStrictEqual(logs, [])
  })
})

test('per-route config.logging: false keeps the route out of the access log', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true })
  const health = await app.inject({ url: '/healthz' })
  assert.equal(health.statusCode, 200)
  assert.deepStrictEqual(logs, [])
  const res = await app.inject({ url: '/users/5' })
  assert.equal(logs.length, 1)
  assertAccessLine(logs[0], res, { method: 'GET', path: '/users/5', route: '/users/:id', status: 200 })
})

test('a 404 and a 500 each get exactly one access line', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true })
  const missing = await app.inject({ url: '/nowhere?page=1' })
  assert.equal(missing.statusCode, 404)
  assert.equal(logs.length, 1)
  assertAccessLine(logs[0], missing, { method: 'GET', path: '/nowhere', query: 'page=1', route: null, status: 404 })

  logs.length = 0
  const boom = await app.inject({ url: '/boom' })
  assert.equal(boom.statusCode, 500)
  assert.deepStrictEqual(logs.map((l) => l.msg), ['request failed', 'request completed'])
  assertAccessLine(logs[1], boom, { method: 'GET', path: '/boom', route: '/boom', status: 500 })
})

test('a request rejected before routing (bad URL) still gets one access line', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true })
  const res = await app.inject({ url: '/users/%zz?token=abc' })
  assert.equal(res.statusCode, 400)
  assert.equal(accessLines(logs).length, 1, JSON.stringify(logs))
  assertAccessLine(accessLines(logs)[0], res, {
    method: 'GET', path: '/users/%zz', query: 'token=[REDACTED]', route: null, status: 400
  })
})

test('headers a user logs through request.log are redacted by the logger; the secret is nowhere in the logs', async (t) => {
  const { app, logs, raw } = await setupRaw(t, { requestId: true, logging: { headers: true } })
  const res = await app.inject({
    url: '/user-log?access_token=SECRET-query',
    headers: { authorization: 'Bearer SECRET-authz', cookie: 'sid=SECRET-cookie', 'x-api-key': 'SECRET-apikey', 'proxy-authorization': 'Basic SECRET-proxy' }
  })
  assert.equal(res.statusCode, 200)
  assert.deepStrictEqual(logs.map((l) => l.msg), ['user logged req.headers', 'user logged headers', 'user logged outgoing headers', 'request completed'])

  // `req` goes through Fastify's request serializer; whatever headers survive it must be redacted.
  const viaReq = logs[0]
  assert.equal(viaReq.reqId, res.headers['x-request-id'])
  if (viaReq.req?.headers !== undefined) assert.equal(viaReq.req.headers.authorization, '[REDACTED]')

  const viaHeaders = logs[1]
  assert.deepStrictEqual(viaHeaders.headers, {
    authorization: '[REDACTED]',
    cookie: '[REDACTED]',
    'x-api-key': '[REDACTED]',
    'proxy-authorization': '[REDACTED]',
    'user-agent': 'lightMyRequest',
    host: 'localhost:80'
  })
  assert.deepStrictEqual(logs[2].headers, { Authorization: '[REDACTED]', 'X-Api-Key': '[REDACTED]', Accept: 'application/json' })
  assert.ok(!raw().includes('SECRET'), raw())
})

// ---------------------------------------------------------------------------------------

const invalid: Array<{ options: unknown, problems: string[] }> = [
  {
    options: { level: 'loud' },
    problems: ['logging.level: expected "fatal", "error", "warn", "info", "debug", "trace" or "silent", found "loud"']
  },
  { options: { headers: 'yes' }, problems: ['logging.headers: expected true or false, found "yes"'] },
  { options: { redactHeaders: 'x-secret' }, problems: ['logging.redactHeaders: expected a list of strings, found "x-secret"'] },
  { options: { redactQuery: ['ok', 1] }, problems: ['logging.redactQuery[1]: expected a string, found 1'] },
  { options: { header: true }, problems: ['logging.header: unknown key (did you mean "headers"?)'] },
  {
    options: { level: 'verbose', headers: 1 },
    problems: [
      'logging.level: expected "fatal", "error", "warn", "info", "debug", "trace" or "silent", found "verbose"',
      'logging.headers: expected true or false, found 1'
    ]
  }
]

test('invalid options fail at createServer and at ready(), naming logging.<key>', async () => {
  for (const { options, problems } of invalid) await assertOptionsRefused('logging', options, problems)
})

test('on by default: one access line per request', async (t) => {
  const { app, logs } = await setup(t, {})
  await app.inject({ url: '/users/42' })
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'request completed').map((l) => [l.path, l.status]), [['/users/42', 200]])
})

test('a request the client aborts, and a stream that fails half-way, each get their access line, marked aborted', async (t) => {
  let slowDone = false
  const { app, logs } = await build({ server: { logger: { level: 'info' } } }, async (app) => {
    app.get('/slow', async () => { await new Promise((resolve) => setTimeout(resolve, 300)); slowDone = true; return 'late' })
    app.get('/broken', async (_request, reply) => {
      let sent = 0
      return reply.type('text/plain').send(new Readable({
        read () {
          if (sent++ < 2) this.push('chunk\n')
          else setTimeout(() => this.destroy(new Error('the source failed')), 20)
        }
      }))
    })
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const send = (path: string, hangUpAfter?: number): Promise<void> => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${path}?token=hunter2 HTTP/1.1\r\nHost: x\r\n\r\n`)
      if (hangUpAfter !== undefined) setTimeout(() => socket.destroy(), hangUpAfter)
    })
    socket.on('data', () => {})
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
  await send('/slow', 50)
  await send('/broken')
  // The access lines are written when Fastify notices, on the close that follows; waited for,
  // with /slow's handler done (it must add no line), not a fixed 400 ms.
  await until(() => slowDone && logs.filter((l) => l.msg === 'request aborted').length >= 2, 'both access lines and the slow handler done')
  await new Promise((resolve) => setImmediate(resolve))
  const lines = logs.filter((l) => l.msg === 'request aborted' || l.msg === 'request completed')
  // The stream started (status 200, two chunks): its line has the status and the body bytes
  // written, and says spikard cut it on the error (the stream feature, on by default).
  assert.deepStrictEqual(lines.map(({ msg, method, path, query, route, aborted, status, bytes, cut }) => ({ msg, method, path, query, route, aborted, status, bytes, cut })), [
    { msg: 'request aborted', method: 'GET', path: '/slow', query: 'token=[REDACTED]', route: '/slow', aborted: true, status: undefined, bytes: undefined, cut: undefined },
    { msg: 'request aborted', method: 'GET', path: '/broken', query: 'token=[REDACTED]', route: '/broken', aborted: true, status: 200, bytes: 12, cut: 'error' }
  ])
  for (const line of lines) assert.match(line.reqId, UUID)
})

test('proxy headers Fastify ignores (trustProxy unset) are warned about once, rate limiting on or not (real socket)', async (t) => {
  const { app, logs } = await setup(t, {})
  const { url } = await listen(app)
  for (const xff of ['203.0.113.1', '203.0.113.2']) await (await fetch(`${url}/users/1`, { headers: { 'x-forwarded-for': xff } })).text()
  const warned = logs.filter((l) => l.level === 40 && /x-forwarded-for/.test(l.msg))
  assert.deepStrictEqual(warned.map((l) => [l.header, l.remoteAddress]), [['x-forwarded-for', '127.0.0.1']])
  assert.match(warned[0].msg, /server\.trustProxy is not set/)
  // The access line has the peer's address, not the forged one.
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'request completed').map((l) => l.remoteAddress), ['127.0.0.1', '127.0.0.1'])
})

test('a fragment, and the userinfo of an absolute-form target, are masked in every line that logs the target (real socket)', async (t) => {
  const { app, logs, raw } = await setupRaw(t, { server: { logger: { level: 'info' } } })
  app.get('/mine', async (request) => {
    request.log.info({ req: request }, 'user logged req')
    return { ok: true }
  })
  const { port } = await listen(app)
  const get = async (target: string): Promise<number> =>
    (await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).status
  // Node's parser takes a fragment, and Fastify routes by what comes before it: a client
  // passing on an OAuth callback URL as it is sends its access token this way.
  assert.equal(await get('/users/7#access_token=SECRET1'), 200)
  assert.equal(await get('/search?page=2#access_token=SECRET2&x=1'), 200)
  assert.equal(await get('/mine?q=1#SECRET3'), 200)
  assert.equal(await get('/nowhere#SECRET4'), 404)
  // Absolute form (RFC 9112 §3.2.2): Fastify routes it by its path.
  assert.equal(await get('http://alice:SECRET5@x/users/8?page=1'), 200)
  assert.deepStrictEqual(accessLines(logs).map(({ path, query, route, status }) => ({ path, query, route, status })), [
    { path: '/users/7#[REDACTED]', query: undefined, route: '/users/:id', status: 200 },
    { path: '/search', query: 'page=2#[REDACTED]', route: '/search', status: 200 },
    { path: '/mine', query: 'q=1#[REDACTED]', route: '/mine', status: 200 },
    { path: '/nowhere#[REDACTED]', query: undefined, route: null, status: 404 },
    { path: 'http://[REDACTED]@x/users/8', query: 'page=1', route: '/users/:id', status: 200 }
  ])
  assert.equal(logs.find((l) => l.msg === 'user logged req')?.req.url, '/mine?q=1#[REDACTED]')
  assert.doesNotMatch(raw(), /SECRET/)
})

test('a request or reply logged by the names handlers give them ({ request }, { reply }) is logged as Fastify logs req and res, its secrets out; an object of the app\'s own under those names as it is (real socket)', async (t) => {
  const { app, logs, raw } = await setupRaw(t, { server: { logger: { level: 'info' } } })
  app.post('/mine', async (request, reply) => {
    reply.header('set-cookie', 'sid=SECRET4; HttpOnly')
    request.log.info({ request, reply }, 'user logged request and reply')
    request.log.info({ request: { id: 7, kind: 'refund' }, reply: { text: 'thanks', raw: 'kept' } }, 'user logged objects of its own')
    return { ok: true }
  })
  const { url, port } = await listen(app)
  const res = await fetch(`${url}/mine?token=SECRET1&page=2`, { method: 'POST', headers: { authorization: 'Bearer SECRET2', cookie: 'sid=SECRET3', 'content-type': 'application/json' }, body: '{"password":"SECRET5"}' })
  assert.equal(res.status, 200)
  const mine = logs.find((l) => l.msg === 'user logged request and reply')
  assert.equal(typeof mine?.request.remotePort, 'number')
  assert.deepStrictEqual(mine?.request, { method: 'POST', url: '/mine?token=[REDACTED]&page=2', host: `127.0.0.1:${port}`, remoteAddress: '127.0.0.1', remotePort: mine?.request.remotePort })
  assert.deepStrictEqual(mine?.reply, { statusCode: 200 })
  const own = logs.find((l) => l.msg === 'user logged objects of its own')
  assert.deepStrictEqual([own?.request, own?.reply], [{ id: 7, kind: 'refund' }, { text: 'thanks', raw: 'kept' }])
  assert.doesNotMatch(raw(), /SECRET/)
})

test('the headers an error carries (an HTTP client\'s: config, response, raw request head) are masked in its log line, any case; the error is left as it was (real socket)', async (t) => {
  const { app, logs, raw } = await setupRaw(t, { server: { logger: { level: 'info' } }, logging: { redactHeaders: ['x-tenant-secret'] } })
  // Shaped like an axios error: the request's config, the raw head it wrote, the response.
  const upstreamError = (): Error => Object.assign(new Error('Request failed with status code 401'), {
    code: 'ERR_BAD_REQUEST',
    config: { url: 'https://api.example/v1', headers: { Accept: 'application/json', Authorization: 'Bearer SECRET1', 'X-Api-Key': 'SECRET2', 'X-Tenant-Secret': 'SECRET3' } },
    request: { _header: 'GET /v1 HTTP/1.1\r\nAccept: application/json\r\nAuthorization: Bearer SECRET4\r\nCookie: a=SECRET5\r\nHost: api.example\r\n\r\n' },
    response: { status: 401, headers: { 'Set-Cookie': ['s=SECRET6'], 'content-type': 'text/plain' } },
    cause: Object.assign(new Error('inner'), { headers: { authorization: 'Bearer SECRET7' } })
  })
  let thrown: Error | undefined
  app.get('/upstream', async () => { thrown = upstreamError(); throw thrown })
  app.get('/logged', async (request) => {
    request.log.warn({ err: upstreamError() }, 'upstream refused')
    return { ok: true }
  })
  const { port } = await listen(app)
  const get = async (path: string): Promise<number> => (await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).status
  assert.equal(await get('/upstream'), 500)
  assert.equal(await get('/logged'), 200)
  const errors = logs.filter((l) => l.err !== undefined)
  assert.deepStrictEqual(errors.map((l) => [l.msg, l.level]), [['request failed', 50], ['upstream refused', 40]])
  for (const { err } of errors) {
    assert.deepStrictEqual(err.config, { url: 'https://api.example/v1', headers: { Accept: 'application/json', Authorization: '[REDACTED]', 'X-Api-Key': '[REDACTED]', 'X-Tenant-Secret': '[REDACTED]' } })
    assert.equal(err.request._header, 'GET /v1 HTTP/1.1\r\nAccept: application/json\r\nAuthorization: [REDACTED]\r\nCookie: [REDACTED]\r\nHost: api.example\r\n\r\n')
    assert.deepStrictEqual(err.response, { status: 401, headers: { 'Set-Cookie': '[REDACTED]', 'content-type': 'text/plain' } })
    assert.equal(err.code, 'ERR_BAD_REQUEST')
  }
  assert.doesNotMatch(raw(), /SECRET/)
  // The log got copies: the error the handler threw still has its headers.
  assert.equal((thrown as unknown as { config: { headers: Record<string, string> } }).config.headers.Authorization, 'Bearer SECRET1')
})
