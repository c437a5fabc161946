/**
 * CORS: off by default; on, a preflight is answered 204 on any path before shutdown, rate
 * limiting and auth could refuse it, every response (problems included) carries
 * `Access-Control-Allow-Origin` for an allowed page, an OPTIONS that is not a preflight goes
 * to the app's routes, and bad options are refused naming the key. Over real sockets.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import spikard from '../../src/spikard.js'
import type { CreateServerConfig } from '../../src/server.js'
import { assertOptionsRefused, build, listen, rawRequest, type RawResponse, type TestApp } from '../helpers.js'

const KEY = 'k'.repeat(32)
const PAGE = 'https://app.example'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/items', async () => ({ items: [] }))
  app.get('/items/:id', async () => ({ item: {} }))
  app.get('/big', async () => ({ text: 'x'.repeat(4096) }))
  app.post('/items', async () => ({ created: true }))
  app.get('/public', { config: { auth: false } }, async () => ({ ok: true }))
  app.get('/internal', { config: { auth: false, cors: false } }, async () => ({ ok: true }))
  app.get('/by-language', { config: { auth: false } }, async (request, reply) => {
    reply.header('vary', (request.query as { vary?: string }).vary ?? 'Accept-Language')
    return { text: 'x'.repeat(4096) }
  })
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp & { port: number }> {
  const built = await build({ server: { logger: { level: 'info' } }, ...config }, routes)
  t.after(() => built.app.close())
  const { port } = await listen(built.app)
  return { ...built, port }
}

function send (port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const lines = Object.entries({ host: '127.0.0.1', connection: 'close', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  return rawRequest(port, `${method} ${path} HTTP/1.1\r\n${lines}\r\n`)
}

const preflight = (origin: string, extra: Record<string, string> = {}): Record<string, string> =>
  ({ origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-api-key', ...extra })

const withAuth: CreateServerConfig = { cors: { origin: [PAGE] }, auth: { apiKey: { keys: [KEY] } }, rateLimit: { max: 3, timeWindow: '1m' } }

test('off by default: no CORS headers, and a preflight is an OPTIONS like any other', async (t) => {
  const { port } = await setup(t, {})
  const answer = await send(port, 'OPTIONS', '/items', preflight(PAGE))
  assert.equal(answer.status, 405)
  assert.equal(answer.headers['access-control-allow-origin'], undefined)
  const plain = await send(port, 'GET', '/items', { origin: PAGE })
  assert.equal(plain.headers['access-control-allow-origin'], undefined)
  assert.equal(plain.headers.vary, undefined)
})

test('a preflight is answered 204 before auth and rate limiting, with what the page may send', async (t) => {
  const { port, logs } = await setup(t, withAuth)
  // More preflights than the rate limit allows requests: none is counted, none needs a key.
  for (let i = 0; i < 3; i++) {
    const answer = await send(port, 'OPTIONS', '/items', preflight(PAGE))
    assert.equal(answer.status, 204, answer.body)
    assert.equal(answer.body, '')
    assert.equal(answer.headers['access-control-allow-origin'], PAGE)
    assert.equal(answer.headers['access-control-allow-methods'], 'GET, HEAD, PUT, PATCH, POST, DELETE')
    assert.equal(answer.headers['access-control-allow-headers'], 'x-api-key')
    assert.equal(answer.headers['access-control-max-age'], '600')
    assert.equal(answer.headers.vary, 'Origin, Access-Control-Request-Headers')
    assert.equal(answer.headers['access-control-allow-credentials'], undefined)
    assert.match(answer.headers['x-request-id'], /^[0-9a-f-]{36}$/)
  }
  // On any path: the request that follows gets its own answer (here a 404 the page can read).
  const unknown = await send(port, 'OPTIONS', '/nowhere', preflight(PAGE, { 'access-control-request-method': 'DELETE' }))
  assert.equal(unknown.status, 204)
  assert.equal(unknown.headers['access-control-allow-origin'], PAGE)
  // Each has its access line.
  assert.equal(logs.filter((l) => l.msg === 'request completed' && l.method === 'OPTIONS' && l.status === 204).length, 4)
  // The rate limit still has all its requests.
  const first = await send(port, 'GET', '/items', { origin: PAGE, 'x-api-key': KEY })
  assert.equal(first.status, 200)
  assert.equal(first.headers['x-ratelimit-remaining'], '2')
})

test('a preflight from a page that is not allowed gets no CORS headers: the browser refuses the request', async (t) => {
  const { port } = await setup(t, withAuth)
  const answer = await send(port, 'OPTIONS', '/items', preflight('https://evil.example'))
  assert.equal(answer.status, 204)
  for (const name of Object.keys(answer.headers)) assert.doesNotMatch(name, /^access-control-/, name)
  assert.equal(answer.headers.vary, 'Origin, Access-Control-Request-Headers')
  const request = await send(port, 'GET', '/items', { origin: 'https://evil.example', 'x-api-key': KEY })
  assert.equal(request.status, 200)
  assert.equal(request.headers['access-control-allow-origin'], undefined)
  assert.equal(request.headers.vary, 'Origin')
})

test('every answer to an allowed page is readable by it: successes, 401, 404 and 429 problems', async (t) => {
  const { port } = await setup(t, withAuth)
  const exposed = 'retry-after, x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, www-authenticate'
  const check = (answer: RawResponse, status: number): void => {
    assert.equal(answer.status, status, answer.body)
    assert.equal(answer.headers['access-control-allow-origin'], PAGE, String(status))
    assert.equal(answer.headers['access-control-expose-headers'], exposed, String(status))
    assert.equal(answer.headers.vary, 'Origin', String(status))
  }
  const denied = await send(port, 'GET', '/items', { origin: PAGE })
  check(denied, 401)
  assert.equal(denied.headers['content-type'], 'application/problem+json; charset=utf-8')
  check(await send(port, 'GET', '/items', { origin: PAGE, 'x-api-key': KEY }), 200)
  check(await send(port, 'GET', '/nowhere', { origin: PAGE, 'x-api-key': KEY }), 404)
  const limited = await send(port, 'GET', '/items', { origin: PAGE, 'x-api-key': KEY })
  check(limited, 429)
  assert.ok(Number(limited.headers['retry-after']) > 0)
  // Origins compare as browsers send them: in lower case.
  assert.equal((await send(port, 'GET', '/public', { origin: PAGE.toUpperCase() })).headers['access-control-allow-origin'], undefined)
})

test('a request Fastify refuses before routing (a malformed URL, an over-long parameter) is readable too', async (t) => {
  const { port } = await setup(t, withAuth)
  for (const path of ['/items/%zz', `/items/${'1'.repeat(101)}`]) {
    const answer = await send(port, 'GET', path, { origin: PAGE, 'x-api-key': KEY })
    assert.equal(answer.status, 400, path)
    assert.equal(answer.headers['content-type'], 'application/problem+json; charset=utf-8')
    assert.equal(answer.headers['access-control-allow-origin'], PAGE, path)
    assert.equal(answer.headers['access-control-expose-headers'], 'retry-after, x-request-id, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset, www-authenticate', path)
    assert.equal(answer.headers.vary, 'Origin', path)
  }
  const other = await send(port, 'GET', '/items/%zz', { origin: 'https://evil.example' })
  assert.equal(other.headers['access-control-allow-origin'], undefined)
  assert.equal(other.headers.vary, 'Origin')
})

test('an onRequest hook of yours added before spikard throws: its problem is readable by the allowed pages too', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  // Added before spikard, it runs before spikard's own onRequest hooks, the CORS one included.
  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/thrown')) throw Object.assign(new Error('Not for you'), { statusCode: 403 })
  })
  app.register(spikard, { cors: { origin: PAGE, credentials: true }, shutdown: { signals: false } })
  app.get('/thrown', async () => 'never')
  app.get('/thrown/internal', { config: { cors: false } }, async () => 'never')
  const { port } = await listen(app)
  const thrown = await send(port, 'GET', '/thrown', { origin: PAGE })
  assert.equal(thrown.status, 403)
  assert.equal(thrown.headers['access-control-allow-origin'], PAGE)
  assert.equal(thrown.headers['access-control-allow-credentials'], 'true')
  assert.equal(thrown.headers['access-control-expose-headers'], 'retry-after, x-request-id')
  assert.equal(thrown.headers.vary, 'Origin')
  // Not for a route that left CORS.
  const internal = await send(port, 'GET', '/thrown/internal', { origin: PAGE })
  assert.equal(internal.status, 403)
  assert.equal(internal.headers['access-control-allow-origin'], undefined)
  assert.equal(internal.headers.vary, undefined)
})

test('a route with `cors: false` registered before spikard: its preflights get no CORS headers either', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  app.delete('/early/internal', { config: { cors: false } }, async () => 'deleted')
  app.delete('/early/open', async () => 'deleted')
  await app.register(spikard, { cors: { origin: PAGE }, shutdown: { signals: false } })
  const { port } = await listen(app)
  const closed = await send(port, 'OPTIONS', '/early/internal', preflight(PAGE, { 'access-control-request-method': 'DELETE' }))
  assert.equal(closed.status, 204)
  for (const name of Object.keys(closed.headers)) assert.doesNotMatch(name, /^access-control-/, name)
  const open = await send(port, 'OPTIONS', '/early/open', preflight(PAGE, { 'access-control-request-method': 'DELETE' }))
  assert.equal(open.headers['access-control-allow-origin'], PAGE)
})

test('an OPTIONS request that is not a preflight goes to the routes: 405 with Allow, or 404', async (t) => {
  const { port } = await setup(t, { cors: true })
  const known = await send(port, 'OPTIONS', '/items', { origin: PAGE })
  assert.equal(known.status, 405)
  assert.equal(known.headers.allow, 'GET, HEAD, POST')
  assert.equal(known.headers['access-control-allow-origin'], '*')
  const unknown = await send(port, 'OPTIONS', '/nowhere')
  assert.equal(unknown.status, 404)
  assert.equal(unknown.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.equal(unknown.headers['access-control-allow-methods'], undefined)
})

test('any origin (`cors: true`): `*`, no Vary: Origin; compression still adds its Vary', async (t) => {
  const { port } = await setup(t, { cors: true })
  const answer = await send(port, 'GET', '/big', { origin: PAGE, 'accept-encoding': 'gzip' })
  assert.equal(answer.status, 200)
  assert.equal(answer.headers['content-encoding'], 'gzip')
  assert.equal(answer.headers['access-control-allow-origin'], '*')
  assert.equal(answer.headers['access-control-expose-headers'], 'retry-after, x-request-id')
  assert.equal(answer.headers.vary, 'Accept-Encoding')
  const listed = await setup(t, { cors: PAGE })
  const compressed = await send(listed.port, 'GET', '/big', { origin: PAGE, 'accept-encoding': 'gzip' })
  assert.equal(compressed.headers['content-encoding'], 'gzip')
  assert.equal(compressed.headers.vary, 'Origin, Accept-Encoding')
  // A request without Origin (not from a page, or a navigation) gets them too: a cache that
  // kept its answer gives it to the pages as well (the Fetch standard: with `*`, always send
  // it and no Vary).
  const direct = await send(port, 'GET', '/items')
  assert.equal(direct.headers['access-control-allow-origin'], '*')
  assert.equal(direct.headers['access-control-expose-headers'], 'retry-after, x-request-id')
  assert.equal(direct.headers.vary, undefined)
  // With a list, an answer without them says Vary: Origin instead.
  const unlisted = await send(listed.port, 'GET', '/items')
  assert.equal(unlisted.headers['access-control-allow-origin'], undefined)
  assert.equal(unlisted.headers.vary, 'Origin')
})

test('a handler\'s own Vary keeps Origin in it, so a cache never gives one page\'s answer to another', async (t) => {
  const { port } = await setup(t, { cors: PAGE })
  // (Compressible, so compression adds its own after.)
  const answer = await send(port, 'GET', '/by-language', { origin: PAGE, 'accept-encoding': 'gzip' })
  assert.equal(answer.headers['access-control-allow-origin'], PAGE)
  assert.equal(answer.headers['content-encoding'], 'gzip')
  assert.equal(answer.headers.vary, 'Accept-Language, Origin, Accept-Encoding')
  // Without an Origin too: that answer has no Access-Control-Allow-Origin, and must not be given to a page.
  assert.equal((await send(port, 'GET', '/by-language')).headers.vary, 'Accept-Language, Origin, Accept-Encoding')
  // Already there (in any case), or `*`: left as it is.
  assert.equal((await send(port, 'GET', '/by-language?vary=origin,%20Accept')).headers.vary, 'origin, Accept, Accept-Encoding')
  assert.equal((await send(port, 'GET', '/by-language?vary=*')).headers.vary, '*')
  // Any origin (`*`): the answer does not depend on it, and the handler's Vary is left alone.
  const any = await setup(t, { cors: true })
  assert.equal((await send(any.port, 'GET', '/by-language', { origin: PAGE })).headers.vary, 'Accept-Language, Accept-Encoding')
})

test('methods are allowed in upper case, as Fastify routes them and browsers send them', async (t) => {
  // Browsers compare a preflight's methods exactly, with the request's in upper case (fetch's
  // `put` is sent as PUT): a `put` passed on as it is made every PUT fail its preflight.
  const { port } = await setup(t, { cors: { origin: PAGE, methods: ['get', 'Put', 'PATCH', 'patch'] } })
  const answer = await send(port, 'OPTIONS', '/items', preflight(PAGE, { 'access-control-request-method': 'PUT' }))
  assert.equal(answer.status, 204)
  assert.equal(answer.headers['access-control-allow-methods'], 'GET, PUT, PATCH')
})

test('credentials, configured methods, headers and exposed headers; a route with `cors: false` is left out', async (t) => {
  const { port } = await setup(t, {
    cors: { origin: ['https://a.example', 'http://localhost:5173'], credentials: true, methods: ['GET', 'POST'], allowedHeaders: ['Authorization', 'Content-Type'], exposedHeaders: ['ETag', 'X-Request-Id'], maxAge: 0 },
    requestId: { header: 'X-Request-Id' }
  })
  const answer = await send(port, 'OPTIONS', '/items', preflight('http://localhost:5173', { 'access-control-request-headers': 'x-other' }))
  assert.equal(answer.status, 204)
  assert.equal(answer.headers['access-control-allow-origin'], 'http://localhost:5173')
  assert.equal(answer.headers['access-control-allow-credentials'], 'true')
  assert.equal(answer.headers['access-control-allow-methods'], 'GET, POST')
  assert.equal(answer.headers['access-control-allow-headers'], 'Authorization, Content-Type')
  assert.equal(answer.headers['access-control-max-age'], '0')
  // The allowed headers do not depend on the request's: Vary names the origin only.
  assert.equal(answer.headers.vary, 'Origin')
  const request = await send(port, 'GET', '/items', { origin: 'https://a.example' })
  assert.equal(request.headers['access-control-allow-credentials'], 'true')
  assert.equal(request.headers['access-control-expose-headers'], 'retry-after, x-request-id, etag')
  // `config: { cors: false }`: no CORS headers, so no other origin's page can read its responses.
  const internal = await send(port, 'GET', '/internal', { origin: 'https://a.example' })
  assert.equal(internal.status, 200)
  assert.equal(internal.headers['access-control-allow-origin'], undefined)
  assert.equal(internal.headers.vary, undefined)
  // Nor may a page send it a request that needs a preflight: the preflight says nothing.
  const closed = await send(port, 'OPTIONS', '/internal?x=1', preflight('https://a.example'))
  assert.equal(closed.status, 204)
  for (const name of Object.keys(closed.headers)) assert.doesNotMatch(name, /^access-control-/, name)
  // Another method at that path is another route.
  const open = await send(port, 'OPTIONS', '/internal', preflight('https://a.example', { 'access-control-request-method': 'DELETE' }))
  assert.equal(open.headers['access-control-allow-origin'], 'https://a.example')
})

test('listed origins compare as browsers send them: no default port, IPv6 and IPv4 in their short form', async (t) => {
  const { port } = await setup(t, { cors: { origin: ['https://App.Example:443', 'http://localhost:80', 'http://[0:0::1]:5173', 'http://127.1:8080'] } })
  for (const origin of ['https://app.example', 'http://localhost', 'http://[::1]:5173', 'http://127.0.0.1:8080']) {
    const answer = await send(port, 'GET', '/public', { origin })
    assert.equal(answer.headers['access-control-allow-origin'], origin, origin)
  }
  assert.equal((await send(port, 'GET', '/public', { origin: 'https://app.example:443' })).headers['access-control-allow-origin'], undefined)
})

test('bad options are refused at startup, naming the key', async () => {
  await assertOptionsRefused('cors', { origin: '*', credentials: true }, [
    'cors.credentials: true needs the allowed origins listed in cors.origin: browsers refuse credentials from a server that allows any origin ("*")'
  ])
  // With credentials a `*` is taken literally, as a method or header named "*": nothing would pass.
  await assertOptionsRefused('cors', { origin: PAGE, credentials: true, methods: ['GET', '*'], allowedHeaders: ['*'], exposedHeaders: ['ETag', '*'] }, [
    'cors.methods[1]: "*" is no wildcard with cors.credentials: true (browsers take it for a method named "*"); list the methods',
    'cors.allowedHeaders[0]: "*" is no wildcard with cors.credentials: true (browsers take it for a header named "*"); list the headers',
    'cors.exposedHeaders[1]: "*" is no wildcard with cors.credentials: true (browsers take it for a header named "*"); list the headers'
  ])
  await assertOptionsRefused('cors', { origin: 'https://app.example/' }, [
    'cors.origin: expected "*", an origin such as https://app.example.com, or a list of origins, found "https://app.example/"'
  ])
  await assertOptionsRefused('cors', { origin: ['https://a.example', 'https://b.example:65536'] }, [
    'cors.origin[1]: expected an origin such as https://app.example.com (scheme, host and a port up to 65535), found "https://b.example:65536"'
  ])
  await assertOptionsRefused('cors', { origin: [] }, [
    'cors.origin: expected a non-empty list of origins such as https://app.example.com (scheme, host and port; no path), found []'
  ])
  await assertOptionsRefused('cors', { maxAge: 86401, exposedHeaders: ['x y'] }, [
    'cors.exposedHeaders[0]: expected a header name, found "x y"',
    'cors.maxAge: expected an integer >= 0 and <= 86400, found 86401'
  ])
  await assertOptionsRefused('cors', 'app.example', [
    'cors: expected true, false, an options object or "*", an origin such as https://app.example.com, or a list of origins (its origin), found "app.example"'
  ])
})
