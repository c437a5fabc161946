/**
 * Rate limiting in memory: off by default; on, a global count per client across routes, a
 * route's own count, `false` and the health probes left alone (without a hook); the limit on
 * routes in every plugin and prefix, on unknown paths and before auth and body parsing;
 * keys by identity (after auth), header and cookie; the allow-list; IPv6 networks and
 * IPv4-mapped addresses; proxy headers only through trustProxy, over real sockets; both
 * header styles; windows under mock timers; invalid options and routes registered before
 * spikard refused at ready(). Redis: rate-limit-redis.test.ts.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { BlockList } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync, type FastifyReply, type FastifyRequest, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import spikard from '../../src/spikard.js'
import { createServer, spikardFastifyOptions, type CreateServerConfig } from '../../src/server.js'
import { SpikardConfigError } from '../../src/errors.js'
import { describeRouteLimit } from '../../plugins/rate-limit/describe.js'
import { formatDuration } from '../../src/feature.js'
import { inWords } from '../../plugins/rate-limit/limiter.js'
import { cookieValue, ipv4Number } from '../../plugins/rate-limit/keys.js'
import rateLimitPlugin from '../../plugins/rate-limit/index.js'
import { Outage, PROBE_INTERVAL } from '../../plugins/rate-limit/store.js'
import { assertOptionsRefused, build, listen, UUID, type TestApp } from '../helpers.js'

const TYPE = 'https://spikard.dev/errors/'
const PROBLEM_JSON = 'application/problem+json; charset=utf-8'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/items', async () => ({ items: [] }))
  app.get('/search', async () => ({ results: [] }))
  app.post('/echo', async (request) => ({ body: request.body ?? null }))
  app.get('/own', { config: { rateLimit: { max: 2 } } }, async () => ({ own: true }))
  app.get('/open', { config: { rateLimit: false } }, async () => ({ open: true }))
  app.get('/global', { config: { rateLimit: true } }, async () => ({ global: true }))
  app.get('/ip', async (request) => ({ ip: request.ip }))
  await app.register(async (api) => {
    api.get('/', async () => ({ api: true }))
    api.get('/users/:id', async () => ({ user: true }))
  }, { prefix: '/api' })
}

async function setup (t: TestContext, config: CreateServerConfig, plugin: FastifyPluginAsync = routes): Promise<TestApp> {
  const built = await build({ requestId: true, health: true, ...config }, plugin)
  t.after(() => built.app.close())
  return built
}

function get (app: FastifyInstance, url: string, options: { remoteAddress?: string, headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url, ...options })
}

/** Asserts a 429 problem, whole body and headers, with `seconds` to wait. */
function assertLimited (res: LightMyRequestResponse, instance: string, seconds: number, limit?: number): void {
  assert.equal(res.statusCode, 429, res.body)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.deepEqual(res.json(), {
    type: TYPE + 'rate-limited',
    title: 'Too Many Requests',
    status: 429,
    detail: `Rate limit exceeded, retry in ${inWords(seconds)}`,
    instance,
    requestId: res.headers['x-request-id']
  })
  assert.match(String(res.headers['x-request-id']), UUID)
  assert.equal(res.headers['retry-after'], String(seconds))
  if (limit !== undefined) {
    assert.equal(res.headers['x-ratelimit-limit'], String(limit))
    assert.equal(res.headers['x-ratelimit-remaining'], '0')
    assert.equal(res.headers['x-ratelimit-reset'], String(seconds))
  }
}

function assertCounted (res: LightMyRequestResponse, limit: number, remaining: number, reset: number): void {
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['x-ratelimit-limit'], String(limit))
  assert.equal(res.headers['x-ratelimit-remaining'], String(remaining))
  assert.equal(res.headers['x-ratelimit-reset'], String(reset))
  assert.equal(res.headers['retry-after'], undefined)
}

function assertUnlimited (res: LightMyRequestResponse): void {
  assert.equal(res.statusCode, 200, res.body)
  for (const header of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'ratelimit', 'ratelimit-policy', 'retry-after']) {
    assert.equal(res.headers[header], undefined, header)
  }
}

test('off by default: no limit headers on any route', async (t) => {
  const { app } = await setup(t, {}, async (app) => {
    app.get('/items', async () => ({ items: [] }))
    app.get('/open', { config: { rateLimit: false } }, async () => ({ open: true }))
  })
  for (let i = 0; i < 5; i++) assertUnlimited(await get(app, '/items'))
  assert.equal((await get(app, '/nope')).statusCode, 404)
  assert.equal(app.hasPlugin('spikard-rate-limit'), false)
})

test('off, a route asking for a limit of its own is refused at startup instead of going unlimited', async () => {
  await assert.rejects(build({}, routes), (error: unknown) => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.deepEqual(error.problems, ['route GET /own: config.rateLimit is set but the rateLimit feature is off; configure rateLimit or remove config.rateLimit'])
    return true
  })
})

test('true: 100 requests a minute per client with X-RateLimit headers, then a 429 problem with Retry-After', async (t) => {
  const { app } = await setup(t, { rateLimit: true })
  assertCounted(await get(app, '/items'), 100, 99, 60)
  for (let i = 2; i <= 100; i++) assert.equal((await get(app, '/items')).statusCode, 200)
  assertLimited(await get(app, '/items'), '/items', 60, 100)
  // Another client has a count of its own.
  assertCounted(await get(app, '/items', { remoteAddress: '198.51.100.9' }), 100, 99, 60)
})

test('the window, under mock timers: "retry in 1 second", then the count starts over', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 })
  const { app } = await setup(t, { rateLimit: { max: 1, timeWindow: '1s' } })
  assertCounted(await get(app, '/items'), 1, 0, 1)
  assertLimited(await get(app, '/items'), '/items', 1, 1)
  t.mock.timers.tick(999)
  assertLimited(await get(app, '/items'), '/items', 1, 1)
  t.mock.timers.tick(1)
  assertCounted(await get(app, '/items'), 1, 0, 1)
})

test('Retry-After and the detail count down within the window, in words', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 })
  const { app } = await setup(t, { rateLimit: { max: 1, timeWindow: '1h' } })
  assertCounted(await get(app, '/items'), 1, 0, 3600)
  assertLimited(await get(app, '/items'), '/items', 3600, 1)
  assert.equal((await get(app, '/items')).json().detail, 'Rate limit exceeded, retry in 60 minutes')
  t.mock.timers.tick(3600_000 - 90_000)
  const res = await get(app, '/items')
  assertLimited(res, '/items', 90, 1)
  assert.equal(res.json().detail, 'Rate limit exceeded, retry in 90 seconds')
  t.mock.timers.tick(89_000)
  assert.equal((await get(app, '/items')).json().detail, 'Rate limit exceeded, retry in 1 second')
})

test('one global count per client across routes; a route\'s own limit counts apart; false and the probes are never limited', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 3 } })
  assertCounted(await get(app, '/items'), 3, 2, 60)
  assertCounted(await get(app, '/search'), 3, 1, 60)
  assertCounted(await get(app, '/global'), 3, 0, 60)
  assertLimited(await get(app, '/search'), '/search', 60, 3)
  assertLimited(await get(app, '/api/users/7'), '/api/users/7', 60, 3)
  // The route with its own limit has its own count, untouched by the global one.
  assertCounted(await get(app, '/own'), 2, 1, 60)
  assertCounted(await get(app, '/own'), 2, 0, 60)
  assertLimited(await get(app, '/own'), '/own', 60, 2)
  for (let i = 0; i < 10; i++) {
    assertUnlimited(await get(app, '/open'))
    assertUnlimited(await get(app, '/livez'))
    assertUnlimited(await get(app, '/readyz'))
  }
})

test('a GET and the HEAD Fastify adds for it share the route\'s own count', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 100 } })
  assertCounted(await get(app, '/own'), 2, 1, 60)
  const head = await app.inject({ method: 'HEAD', url: '/own' })
  assert.equal(head.statusCode, 200)
  assert.equal(head.headers['x-ratelimit-remaining'], '0')
  assertLimited(await get(app, '/own'), '/own', 60, 2)
})

test('unknown paths (404) and wrong methods (405) are counted and limited, and so is a prefixed plugin\'s own not-found handler', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 3 } }, async (app) => {
    await routes(app, {})
    await app.register(async (v2) => {
      v2.setNotFoundHandler((_request, reply) => reply.code(404).send({ v2: 'not found' }))
      v2.get('/ping', async () => ({ pong: true }))
    }, { prefix: '/v2' })
  })
  const missing = await get(app, '/nope')
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.headers['x-ratelimit-remaining'], '2')
  const wrongMethod = await app.inject({ method: 'DELETE', url: '/items' })
  assert.equal(wrongMethod.statusCode, 405)
  assert.equal(wrongMethod.headers['x-ratelimit-remaining'], '1')
  const custom = await get(app, '/v2/nope')
  assert.deepEqual([custom.statusCode, custom.json(), custom.headers['x-ratelimit-remaining']], [404, { v2: 'not found' }, '0'])
  assertLimited(await get(app, '/nope/again'), '/nope/again', 60, 3)
  assertLimited(await get(app, '/v2/other'), '/v2/other', 60, 3)
  assertLimited(await get(app, '/items'), '/items', 60, 3)
})

test('routes in plugins and prefixes, including a prefix\'s "/" (which Fastify enters twice), are limited', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 2 } })
  assertCounted(await get(app, '/api'), 2, 1, 60)
  assertCounted(await get(app, '/api/'), 2, 0, 60)
  assertLimited(await get(app, '/api'), '/api', 60, 2)
})

/**
 * Auth as the auth feature does it: a plugin registered before the rate limiter whose
 * onRoute puts a hook first among each route's own, rejecting requests without a good key.
 */
const fakeAuth = fp(async (app: FastifyInstance) => {
  app.addHook('onRoute', (route) => {
    if (route.config?.auth === false) return
    const check = (request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void => {
      if (request.headers['x-api-key'] === 'good') return done()
      reply.code(401).send({ error: 'bad key' })
    }
    route.onRequest = [check, ...[route.onRequest ?? []].flat()]
  })
})

test('address limits run before auth and before the body is read: floods of bad credentials and of large bodies are limited', async (t) => {
  const app = Fastify(spikardFastifyOptions({ server: { logger: { level: 'silent' } } }))
  t.after(() => app.close())
  await app.register(fakeAuth)
  await app.register(spikard, { requestId: true, rateLimit: { max: 3 } })
  app.get('/items', async () => ({ items: [] }))
  app.post('/echo', async (request) => ({ body: request.body }))
  // A route's own onRequest hook (its own auth, say) comes after the limit too.
  app.get('/own-check', { config: { auth: false } as never, onRequest: async (_request, reply) => reply.code(403).send({ error: 'no' }) }, async () => 'never')
  for (let i = 0; i < 3; i++) assert.equal((await get(app, '/items', { headers: { 'x-api-key': 'guess' + i } })).statusCode, 401)
  assertLimited(await get(app, '/items', { headers: { 'x-api-key': 'guess' } }), '/items', 60, 3)
  assertLimited(await get(app, '/items', { headers: { 'x-api-key': 'good' } }), '/items', 60, 3)
  assertLimited(await get(app, '/own-check'), '/own-check', 60, 3)
  // Over Fastify's 1 MiB body limit: a 413 if the body were read first.
  const big = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json', 'x-api-key': 'good' }, payload: JSON.stringify({ s: 'x'.repeat(2 * 1024 * 1024) }) })
  assertLimited(big, '/echo', 60, 3)
})

/** Auth simulated as the auth feature will do it: `request.identity` set in onRequest from a header. */
const identityFromHeader: FastifyPluginAsync = async (app) => {
  app.addHook('onRequest', async (request) => {
    const user = request.headers['x-user']
    if (typeof user === 'string') (request as { identity?: unknown }).identity = { scheme: user.startsWith('key-') ? 'apiKey' : 'jwt', id: user.replace(/^key-/, '') }
  })
  await routes(app, {})
}

test('keyBy identity: counted per authenticated identity, after auth; unauthenticated requests by address', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 2, keyBy: 'identity' } }, identityFromHeader)
  const as = (user?: string): Promise<LightMyRequestResponse> => get(app, '/items', { headers: user === undefined ? {} : { 'x-user': user } })
  assertCounted(await as('alice'), 2, 1, 60)
  assertCounted(await as('alice'), 2, 0, 60)
  assertLimited(await as('alice'), '/items', 60, 2)
  // The API key named alice is another identity; bob and anonymous callers count apart.
  assertCounted(await as('key-alice'), 2, 1, 60)
  assertCounted(await as('bob'), 2, 1, 60)
  assertCounted(await as(), 2, 1, 60)
  assertCounted(await get(app, '/items', { remoteAddress: '198.51.100.20' }), 2, 1, 60)
  assertCounted(await as(), 2, 0, 60)
  assertLimited(await as(), '/items', 60, 2)
})

test('a route keyed by identity while the global limit is by address, with its own window', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 })
  const { app, logs } = await setup(t, { rateLimit: { max: 1 } }, async (app) => {
    app.addHook('onRequest', async (request) => { (request as { identity?: unknown }).identity = { scheme: 'apiKey', id: String(request.headers['x-user']) } })
    app.get('/reports', { config: { rateLimit: { keyBy: 'identity', max: 2, timeWindow: '10s' } } }, async () => ({ reports: [] }))
    app.get('/items', async () => ({ items: [] }))
  })
  assertCounted(await get(app, '/items', { headers: { 'x-user': 'a' } }), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { 'x-user': 'b' } }), '/items', 60, 1)
  assertCounted(await get(app, '/reports', { headers: { 'x-user': 'a' } }), 2, 1, 10)
  assertCounted(await get(app, '/reports', { headers: { 'x-user': 'a' } }), 2, 0, 10)
  assertLimited(await get(app, '/reports', { headers: { 'x-user': 'a' } }), '/reports', 10, 2)
  assertCounted(await get(app, '/reports', { headers: { 'x-user': 'b' } }), 2, 1, 10)
  t.mock.timers.tick(10_000)
  assertCounted(await get(app, '/reports', { headers: { 'x-user': 'a' } }), 2, 1, 10)
  // Auth is off here (the identity comes from a hook of the test's own): said once, at startup.
  const warnings = logs.filter((l) => /keyBy is "identity" but spikard's auth is off/.test(l.msg))
  assert.deepEqual(warnings.map((w) => [w.level, w.where]), [[40, 'route GET /reports']])
})

test('with spikard\'s auth: keyBy identity counts per API key (by name) after auth; keyBy ip limits a flood of bad keys before auth', async (t) => {
  const auth = { apiKey: { keys: [{ name: 'alice', key: 'alice-key-0123456789' }, { name: 'alice', key: 'alice-key-rotated-0123' }, { name: 'bob', key: 'bob-key-0123456789ab' }] } }
  const apiRoutes: FastifyPluginAsync = async (app) => {
    app.get('/items', async (request) => ({ caller: request.identity?.id ?? null }))
    app.get('/public', { config: { auth: false } }, async () => ({ public: true }))
  }
  const { app } = await setup(t, { auth, rateLimit: { max: 2, keyBy: 'identity' } }, apiRoutes)
  const withKey = (key?: string, url = '/items'): Promise<LightMyRequestResponse> => get(app, url, { headers: key === undefined ? {} : { 'x-api-key': key } })
  assertCounted(await withKey('alice-key-0123456789'), 2, 1, 60)
  // Both of alice's keys (rotation) are one identity, one count.
  assertCounted(await withKey('alice-key-rotated-0123'), 2, 0, 60)
  assertLimited(await withKey('alice-key-0123456789'), '/items', 60, 2)
  const bob = await withKey('bob-key-0123456789ab')
  assertCounted(bob, 2, 1, 60)
  assert.deepEqual(bob.json(), { caller: 'bob' })
  // Refused by auth (counted by address: see the next test); anonymous callers of a public route count by address.
  assert.equal((await get(app, '/items', { headers: { 'x-api-key': 'wrong-key-0123456789' }, remoteAddress: '198.51.100.9' })).statusCode, 401)
  assertCounted(await withKey(undefined, '/public'), 2, 1, 60)
  assertCounted(await withKey(undefined, '/public'), 2, 0, 60)
  assertLimited(await withKey(undefined, '/public'), '/public', 60, 2)

  const { app: byAddress } = await setup(t, { auth, rateLimit: { max: 3 } }, apiRoutes)
  for (let i = 0; i < 3; i++) assert.equal((await get(byAddress, '/items', { headers: { 'x-api-key': `guess-${i}-0123456789` } })).statusCode, 401)
  assertLimited(await get(byAddress, '/items', { headers: { 'x-api-key': 'guess-4-0123456789' } }), '/items', 60, 3)
  assertLimited(await get(byAddress, '/items', { headers: { 'x-api-key': 'alice-key-0123456789' } }), '/items', 60, 3)
})

test('keyBy identity: requests auth refuses (bad keys, bad tokens, none) count by address, and an address over the limit is refused before auth', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_700_000_000_000 })
  const auth = { apiKey: { keys: [{ name: 'alice', key: 'alice-key-0123456789' }] } }
  const { app } = await setup(t, { auth, rateLimit: { max: 3, keyBy: 'identity', allowList: ['192.0.2.9'] } }, async (app) => {
    app.get('/items', async () => ({ items: [] }))
    app.get('/public', { config: { auth: false } }, async () => ({ public: true }))
  })
  const attempt = (key: string | undefined, remoteAddress = '198.51.100.1'): Promise<LightMyRequestResponse> =>
    get(app, '/items', { remoteAddress, headers: key === undefined ? {} : { 'x-api-key': key } })
  assert.equal((await attempt('guess-0-0123456789')).statusCode, 401)
  assert.equal((await attempt(undefined)).statusCode, 401)
  assert.equal((await get(app, '/items', { remoteAddress: '198.51.100.1', headers: { authorization: 'Bearer x' } })).statusCode, 401)
  // Three failures: the address is refused before auth, whatever it sends, until the window ends.
  assertLimited(await attempt('guess-1-0123456789'), '/items', 60, 3)
  assertLimited(await attempt('alice-key-0123456789'), '/items', 60, 3)
  // The same count as the address's anonymous requests on public routes.
  assertLimited(await get(app, '/public', { remoteAddress: '198.51.100.1' }), '/public', 60, 3)
  // Other addresses, alice's own count and allowed addresses are untouched.
  assertCounted(await attempt('alice-key-0123456789', '198.51.100.2'), 3, 2, 60)
  for (let i = 0; i < 5; i++) assert.equal((await attempt('guess-2-0123456789', '192.0.2.9')).statusCode, 401)
  assertUnlimited(await attempt('alice-key-0123456789', '192.0.2.9'))
  t.mock.timers.tick(30_000)
  assertLimited(await attempt(undefined), '/items', 30, 3)
  t.mock.timers.tick(30_000)
  assertCounted(await attempt('alice-key-0123456789'), 3, 2, 60)
})

test('keyBy identity: a 401 or 403 of the handler\'s own counts once, by the check that let the request in', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 3, keyBy: 'identity' } }, async (app) => {
    app.get('/forbidden', async () => { throw Object.assign(new Error('not yours'), { statusCode: 403 }) })
    app.get('/items', async () => ({ items: [] }))
  })
  for (const remaining of ['2', '1', '0']) {
    const res = await get(app, '/forbidden', { remoteAddress: '198.51.100.1' })
    assert.equal(res.statusCode, 403, res.body)
    assert.equal(res.headers['x-ratelimit-remaining'], remaining)
  }
  assertLimited(await get(app, '/items', { remoteAddress: '198.51.100.1' }), '/items', 60, 3)
})

test('keyBy header:<name>: per value, case-insensitive name; without the header, by address; long values hashed', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 1, keyBy: 'header:X-Tenant' } })
  assertCounted(await get(app, '/items', { headers: { 'x-tenant': 'acme' } }), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { 'x-tenant': 'acme' } }), '/items', 60, 1)
  assertCounted(await get(app, '/items', { headers: { 'x-tenant': 'globex' } }), 1, 0, 60)
  const long = 'k'.repeat(5000)
  assertCounted(await get(app, '/items', { headers: { 'x-tenant': long } }), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { 'x-tenant': long } }), '/items', 60, 1)
  // A value that looks like an address is not the address's count.
  assertCounted(await get(app, '/items', { headers: { 'x-tenant': '127.0.0.1' } }), 1, 0, 60)
  assertCounted(await get(app, '/items'), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { 'x-tenant': '' } }), '/items', 60, 1)
})

test('keyBy cookie:<name>: per value (quoted or not, among other cookies); without the cookie, by address', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 1, keyBy: 'cookie:sid' } })
  assertCounted(await get(app, '/items', { headers: { cookie: 'theme=dark; sid=abc; lang=en' } }), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { cookie: 'sid="abc"' } }), '/items', 60, 1)
  assertCounted(await get(app, '/items', { headers: { cookie: 'xsid=abc; sid=def' } }), 1, 0, 60)
  assertCounted(await get(app, '/items', { headers: { cookie: 'theme=dark' } }), 1, 0, 60)
  assertLimited(await get(app, '/items'), '/items', 60, 1)
  assert.equal(cookieValue('a=1;sid=  x  ;b=2', 'sid'), 'x')
  assert.equal(cookieValue('sidx=1; sid', 'sid'), undefined)
  assert.equal(cookieValue('sid=', 'sid'), undefined)
})

test('allowList: addresses, CIDR ranges (IPv4-mapped too) and key values are never limited', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 1, keyBy: 'identity', allowList: ['10.0.0.0/8', '2001:db8::7', 'apiKey:batch', '::ffff:192.0.2.50', '2001:db8:ff::/48'] } }, identityFromHeader)
  for (let i = 0; i < 3; i++) {
    assertUnlimited(await get(app, '/items', { remoteAddress: '192.0.2.50' }))
    assertUnlimited(await get(app, '/items', { remoteAddress: '2001:db8:ff:1::1' }))
    assertUnlimited(await get(app, '/items', { remoteAddress: '10.1.2.3' }))
    assertUnlimited(await get(app, '/items', { remoteAddress: '::ffff:10.9.9.9' }))
    assertUnlimited(await get(app, '/items', { remoteAddress: '2001:db8::7' }))
    assertUnlimited(await get(app, '/items', { headers: { 'x-user': 'key-batch' } }))
  }
  assertCounted(await get(app, '/items', { headers: { 'x-user': 'batch' } }), 1, 0, 60)
  assertLimited(await get(app, '/items', { headers: { 'x-user': 'batch' } }), '/items', 60, 1)
  assertCounted(await get(app, '/items', { remoteAddress: '11.0.0.1' }), 1, 0, 60)
  assertLimited(await get(app, '/items', { remoteAddress: '11.0.0.1' }), '/items', 60, 1)
  for (const outside of ['9.255.255.255', '192.0.2.51', '2001:db8:fe::1', '2001:db8::8']) assertCounted(await get(app, '/items', { remoteAddress: outside }), 1, 0, 60)
})

test('allowList: an allowed identity (apiKey:..., jwt:...) sent as a header or cookie value leaves no header- or cookie-keyed limit', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 1, keyBy: 'identity', allowList: ['apiKey:batch', 'jwt:svc', 'gateway-7'] } }, async (app) => {
    await identityFromHeader(app, {})
    app.get('/by-header', { config: { rateLimit: { keyBy: 'header:x-client' } } }, async () => ({ ok: true }))
    app.get('/by-cookie', { config: { rateLimit: { keyBy: 'cookie:client' } } }, async () => ({ ok: true }))
  })
  for (let i = 0; i < 3; i++) {
    assertUnlimited(await get(app, '/items', { headers: { 'x-user': 'key-batch' } }))
    assertUnlimited(await get(app, '/items', { headers: { 'x-user': 'svc' } }))
    assertUnlimited(await get(app, '/by-header', { headers: { 'x-client': 'gateway-7' } }))
  }
  for (const [url, headers] of [['/by-header', { 'x-client': 'apiKey:batch' }], ['/by-cookie', { cookie: 'client=jwt:svc' }]] as const) {
    assertCounted(await get(app, url, { headers }), 1, 0, 60)
    assertLimited(await get(app, url, { headers }), url, 60, 1)
  }
})

test('ipv4Number parses dotted quads only', () => {
  assert.deepEqual(['0.0.0.0', '10.1.2.3', '255.255.255.255', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', 'a.b.c.d', ''].map(ipv4Number),
    [0, 167838211, 4294967295, -1, -1, -1, -1, -1, -1])
})

test('IPv6 clients count per /64 network (ipv6Subnet); ::ffff:1.2.3.4 counts as 1.2.3.4', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 2 } })
  assertCounted(await get(app, '/items', { remoteAddress: '2001:db8:1:2::1' }), 2, 1, 60)
  assertCounted(await get(app, '/items', { remoteAddress: '2001:db8:1:2:ffff:ffff:ffff:fffe' }), 2, 0, 60)
  assertLimited(await get(app, '/items', { remoteAddress: '2001:0db8:0001:0002::9' }), '/items', 60, 2)
  assertCounted(await get(app, '/items', { remoteAddress: '2001:db8:1:3::1' }), 2, 1, 60)
  assertCounted(await get(app, '/items', { remoteAddress: '192.0.2.1' }), 2, 1, 60)
  assertCounted(await get(app, '/items', { remoteAddress: '::ffff:192.0.2.1' }), 2, 0, 60)
  assertLimited(await get(app, '/items', { remoteAddress: '192.0.2.1' }), '/items', 60, 2)

  const { app: each } = await setup(t, { rateLimit: { max: 1, ipv6Subnet: 128 } })
  assertCounted(await get(each, '/items', { remoteAddress: '2001:db8:1:2::1' }), 1, 0, 60)
  assertCounted(await get(each, '/items', { remoteAddress: '2001:db8:1:2::2' }), 1, 0, 60)
  assertLimited(await get(each, '/items', { remoteAddress: '2001:db8:1:2::1' }), '/items', 60, 1)
})

/** Requests over a real socket, each on a connection of its own. */
async function fetchAll (url: string, forwardedFor: Array<string | undefined>): Promise<Array<{ status: number, remaining: string | null, ip: string }>> {
  const out = []
  for (const xff of forwardedFor) {
    const res = await fetch(url, { headers: { connection: 'close', ...(xff === undefined ? {} : { 'x-forwarded-for': xff }) } })
    const body = await res.json() as { ip?: string }
    out.push({ status: res.status, remaining: res.headers.get('x-ratelimit-remaining'), ip: body.ip ?? '' })
  }
  return out
}

test('without trustProxy a forged X-Forwarded-For changes nothing, and the unset trustProxy is warned about once (real socket)', async (t) => {
  const { app, logs } = await setup(t, { rateLimit: { max: 2 } })
  const { url } = await listen(app)
  const results = await fetchAll(`${url}/ip`, ['203.0.113.1', '203.0.113.2', '203.0.113.3', undefined])
  assert.deepEqual(results.map((r) => [r.status, r.remaining]), [[200, '1'], [200, '0'], [429, '0'], [429, '0']])
  assert.deepEqual(results.slice(0, 2).map((r) => r.ip), ['127.0.0.1', '127.0.0.1'])
  const warnings = logs.filter((l) => l.level === 40 && /X-Forwarded-For|trustProxy/i.test(l.msg))
  assert.equal(warnings.length, 1, JSON.stringify(warnings))
  assert.equal(warnings[0].header, 'x-forwarded-for')
  assert.match(warnings[0].msg, /server\.trustProxy is not set/)
})

test('trustProxy as proxy CIDRs: the first untrusted address from the right is the client; no warning (real socket)', async (t) => {
  const { app, logs } = await setup(t, { server: { trustProxy: ['127.0.0.0/8', '10.0.0.0/8'] }, rateLimit: { max: 1 } })
  const { url } = await listen(app)
  const results = await fetchAll(`${url}/ip`, ['198.51.100.7, 10.0.0.1', '198.51.100.7, 10.0.0.2', '198.51.100.8, 10.9.9.9', '10.0.0.3', 'forged, 198.51.100.9', '198.51.100.9'])
  assert.deepEqual(results.map((r) => [r.status, r.remaining]), [[200, '0'], [429, '0'], [200, '0'], [200, '0'], [200, '0'], [429, '0']])
  assert.deepEqual([results[0].ip, results[2].ip, results[3].ip, results[4].ip], ['198.51.100.7', '198.51.100.8', '10.0.0.3', '198.51.100.9'])
  assert.equal(logs.filter((l) => /trustProxy/.test(l.msg ?? '')).length, 0)
})

test('trustProxy as a hop count (one proxy): each forwarded client counts alone, IPv6 ones by /64, a forged extra hop changes nothing (real socket)', async (t) => {
  // Fastify 5.12 turns a plain hop count into "trust nothing"; a hop count is this function.
  const app = Fastify({ ...spikardFastifyOptions({ server: { logger: { level: 'silent' } } }), trustProxy: (_address: string, hop: number) => hop < 1 })
  t.after(() => app.close())
  await app.register(spikard, { rateLimit: { max: 1 } })
  app.get('/ip', async (request) => ({ ip: request.ip }))
  const { url } = await listen(app)
  const results = await fetchAll(`${url}/ip`, ['203.0.113.1', '203.0.113.2', '198.51.100.66, 203.0.113.1', '2001:db8:a:b::1', '2001:db8:a:b:c::2', '2001:db8:a:c::1'])
  assert.deepEqual(results.map((r) => [r.status, r.remaining]), [[200, '0'], [200, '0'], [429, '0'], [200, '0'], [429, '0'], [200, '0']])
  assert.deepEqual([results[0].ip, results[1].ip, results[3].ip], ['203.0.113.1', '203.0.113.2', '2001:db8:a:b::1'])
})

test('trustProxy: true and forged "addresses" of any length: each counted apart under a short key, none kept in a memo', async (t) => {
  // request.ip is what X-Forwarded-For says, up to Node's 16 KiB header limit: kept as it
  // is, 10,000 counts of a limit held 160 MiB. A key of at most 64 characters, and the
  // allow-list's IPv6 memo never sees such text.
  const require = createRequire(import.meta.url)
  const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as { prototype: { incr: (key: string, ...rest: unknown[]) => void } }
  const incr = LocalStore.prototype.incr
  const keys: string[] = []
  t.mock.method(LocalStore.prototype, 'incr', function (this: unknown, key: string, ...rest: unknown[]) {
    keys.push(key)
    incr.call(this, key, ...rest)
  })
  const check = t.mock.method(BlockList.prototype, 'check')
  const { app } = await setup(t, { server: { trustProxy: true }, rateLimit: { max: 1, allowList: ['2001:db8::/32'] } })
  const forged = (name: string): { headers: Record<string, string> } => ({ headers: { 'x-forwarded-for': `${name}:${'f'.repeat(8000)}` } })
  assertCounted(await get(app, '/items', forged('a')), 1, 0, 60)
  assertLimited(await get(app, '/items', forged('a')), '/items', 60, 1)
  assertCounted(await get(app, '/items', forged('b')), 1, 0, 60)
  assertUnlimited(await get(app, '/items', { headers: { 'x-forwarded-for': '2001:db8:1::1' } }))
  assert.equal(keys.length, 3)
  assert.ok(keys.every((key) => key.length <= 64), `key lengths ${keys.map((key) => key.length).join(', ')}`)
  assert.equal(new Set(keys).size, 2)
  assert.deepEqual(check.mock.calls.map((call) => call.arguments[0]), ['2001:db8:1::1'])
})

test('proxy headers from a peer trustProxy does not trust are ignored and warned about once (real socket)', async (t) => {
  const { app, logs } = await setup(t, { server: { trustProxy: ['10.0.0.0/8'] }, rateLimit: { max: 1 } })
  const { url } = await listen(app)
  const results = await fetchAll(`${url}/ip`, ['203.0.113.1', '203.0.113.2'])
  assert.deepEqual(results.map((r) => [r.status, r.remaining]), [[200, '0'], [429, '0']])
  const warnings = logs.filter((l) => l.level === 40 && /trustProxy/.test(l.msg))
  assert.equal(warnings.length, 1)
  assert.match(warnings[0].msg, /server\.trustProxy does not trust the peer/)
})

test('on a dual-stack listener an IPv4 client (::ffff:127.0.0.1) counts as 127.0.0.1 (real socket)', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 1, allowList: ['127.0.0.1'] } })
  await app.listen({ host: '::', port: 0 })
  const { port } = app.server.address() as { port: number }
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/ip`, { headers: { connection: 'close' } })
    assert.equal(res.status, 200)
    assert.deepEqual(await res.json(), { ip: '::ffff:127.0.0.1' })
    assert.equal(res.headers.get('x-ratelimit-limit'), null)
  }
  const v6 = await fetchAll(`http://[::1]:${port}/ip`, [undefined, undefined])
  assert.deepEqual(v6.map((r) => [r.status, r.remaining]), [[200, '0'], [429, '0']])
})

test('headers: ietf sends RateLimit-Policy and RateLimit (policy "route" for a route\'s own limit); false sends none but Retry-After', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 2, headers: 'ietf' } })
  const first = await get(app, '/items')
  assert.deepEqual([first.headers['ratelimit-policy'], first.headers.ratelimit, first.headers['x-ratelimit-limit']], ['"default";q=2;w=60', '"default";r=1;t=60', undefined])
  await get(app, '/items')
  const over = await get(app, '/items')
  assertLimited(over, '/items', 60)
  assert.deepEqual([over.headers['ratelimit-policy'], over.headers.ratelimit], ['"default";q=2;w=60', '"default";r=0;t=60'])
  assert.equal((await get(app, '/own')).headers.ratelimit, '"route";r=1;t=60')
  assert.equal((await get(app, '/own')).headers['ratelimit-policy'], '"route";q=2;w=60')

  const { app: quiet } = await setup(t, { rateLimit: { max: 1, headers: false } })
  assertUnlimited(await get(quiet, '/items'))
  const limited = await get(quiet, '/items')
  assertLimited(limited, '/items', 60)
  assert.equal(limited.headers['x-ratelimit-limit'], undefined)
})

test('max 0 refuses every request (it never means unlimited), globally and on a route', async (t) => {
  const { app } = await setup(t, { rateLimit: { max: 0 } })
  assertLimited(await get(app, '/items'), '/items', 60, 0)
  const { app: route } = await setup(t, { rateLimit: true }, async (app) => {
    app.post('/closed', { config: { rateLimit: { max: 0 } } }, async () => ({ never: true }))
  })
  assertLimited(await route.inject({ method: 'POST', url: '/closed' }), '/closed', 60, 0)
})

test('invalid options fail at createServer and at ready(), naming the key', async () => {
  const cases: Array<[unknown, string]> = [
    [{ max: 'ten' }, 'rateLimit.max: expected an integer >= 0, found "ten"'],
    [{ max: -1 }, 'rateLimit.max: expected an integer >= 0, found -1'],
    [{ timeWindow: '500ms' }, 'rateLimit.timeWindow: expected a duration of at least 1s (milliseconds, or a string such as "30s", "1m", "1h"), found "500ms"'],
    [{ timeWindow: 0 }, 'rateLimit.timeWindow: expected a duration of at least 1s (milliseconds, or a string such as "30s", "1m", "1h"), found 0'],
    // Larger, Redis's script would format it as 1e+17 and leave the key without expiry: its client refused for ever.
    [{ timeWindow: 1e17 }, 'rateLimit.timeWindow: must not exceed 9007199254740991 ms (about 104249991 days), found 100000000000000000 ms'],
    [{ keyBy: 'header:' }, 'rateLimit.keyBy: expected "ip", "identity", "header:<name>" or "cookie:<name>", found "header:"'],
    [{ keyBy: 'user' }, 'rateLimit.keyBy: expected "ip", "identity", "header:<name>" or "cookie:<name>", found "user"'],
    [{ headers: 'draft' }, 'rateLimit.headers: expected "x-ratelimit", "ietf" or false, found "draft"'],
    [{ ipv6Subnet: 0 }, 'rateLimit.ipv6Subnet: expected an integer >= 32 and <= 128, found 0'],
    [{ onStoreError: 'ignore' }, 'rateLimit.onStoreError: expected "allow" or "reject", found "ignore"'],
    [{ redis: 'localhost:6379' }, 'rateLimit.redis: expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS), found a string (not shown: it may hold a secret)'],
    // A database that is not a number: ioredis would send SELECT NaN, an unhandled rejection that takes the process down.
    [{ redis: 'redis://127.0.0.1:6379/cache' }, 'rateLimit.redis: expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS), found one whose database (after the host) is not a number'],
    [{ redis: 'redis://127.0.0.1:6379/?db=one' }, 'rateLimit.redis: expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS), found one whose database (after the host) is not a number'],
    [{ allowList: ['10.0.0.256'] }, 'rateLimit.allowList[0]: expected an IP address, a CIDR range (10.0.0.0/8) or a key, found "10.0.0.256"'],
    [{ allowList: ['ok', '10.0.0.0/33'] }, 'rateLimit.allowList[1]: expected an IP address, a CIDR range (10.0.0.0/8) or a key, found "10.0.0.0/33"'],
    [{ maxx: 5 }, 'rateLimit.maxx: unknown key (did you mean "max"?)']
  ]
  for (const [rateLimit, problem] of cases) await assertOptionsRefused('rateLimit', rateLimit, [problem])
  // The URL is never echoed: it may hold a password.
  await assert.rejects(createServer({ server: { logger: { level: 'silent' } }, rateLimit: { redis: 'redis://:s3cret@' } }),
    (error: SpikardConfigError) => error.problems[0].startsWith('rateLimit.redis: expected a Redis URL') && !error.message.includes('s3cret'))
})

test('an invalid config.rateLimit on a route fails at ready(), naming the route and the key', async (t) => {
  const cases: Array<[unknown, string]> = [
    [{ max: 'ten' }, 'config.rateLimit.max: expected an integer >= 0, found "ten"'],
    [{ timeWindow: '10ms' }, 'config.rateLimit.timeWindow: expected a duration of at least 1s (milliseconds, or a string such as "30s", "1m", "1h"), found "10ms"'],
    [{ keyBy: 'cookie:' }, 'config.rateLimit.keyBy: expected "ip", "identity", "header:<name>" or "cookie:<name>", found "cookie:"'],
    [{ hook: 'preHandler' }, 'config.rateLimit.hook: unknown key'],
    [{ groupId: 'x', max: 1 }, 'config.rateLimit.groupId: unknown key'],
    ['yes', 'config.rateLimit: expected false, true or an object ({ max, timeWindow, keyBy }), found "yes"'],
    [0, 'config.rateLimit: expected false, true or an object ({ max, timeWindow, keyBy }), found 0']
  ]
  for (const [setting, problem] of cases) {
    await assert.rejects(createServer({ server: { logger: { level: 'silent' } }, rateLimit: true }, {}).then(async (app) => {
      t.after(() => app.close())
      app.get('/bad', { config: { rateLimit: setting as never } }, async () => 'never')
      await app.ready()
    }), (error: SpikardConfigError) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, [problem])
      assert.match(error.message, /^Invalid spikard route GET \/bad:\n/)
      return true
    }, problem)
  }
})

test('an invalid config.rateLimit on a route registered before spikard fails at ready() too, naming the route: not a 500 at each request', async () => {
  const cases: Array<[unknown, string]> = [
    [{ max: 'ten' }, 'config.rateLimit.max: expected an integer >= 0, found "ten"'],
    ['yes', 'config.rateLimit: expected false, true or an object ({ max, timeWindow, keyBy }), found "yes"']
  ]
  for (const [setting, problem] of cases) {
    for (const prefix of ['', '/v1']) {
      const app = Fastify({ logger: false })
      app.register(async (child) => { child.get('/bad', { config: { rateLimit: setting as never } }, async () => 'never') }, { prefix })
      app.register(spikard, { rateLimit: true })
      await assert.rejects(async () => { await app.ready() }, (error: unknown) => {
        assert.ok(error instanceof SpikardConfigError, String(error))
        assert.deepEqual(error.problems, [problem])
        assert.equal(error.message, `Invalid spikard route GET ${prefix}/bad:\n  - ${problem}`)
        return true
      }, problem)
      await app.close()
    }
  }
  // Off, a route registered before spikard asking for a limit of its own is refused too.
  const app = Fastify({ logger: false })
  app.get('/own', { config: { rateLimit: { max: 2 } } }, async () => 'own')
  app.register(spikard, {})
  await assert.rejects(async () => { await app.ready() }, (error: SpikardConfigError) => {
    assert.deepEqual(error.problems, ['route GET /own: config.rateLimit is set but the rateLimit feature is off; configure rateLimit or remove config.rateLimit'])
    return true
  })
  await app.close()
})

test('routes registered before spikard are limited too: at the root, in a prefixed plugin, and without await', async (t) => {
  const app = Fastify(spikardFastifyOptions({ server: { logger: { level: 'silent' } } }))
  t.after(() => app.close())
  app.get('/early', async () => 'early')
  app.get('/early-open', { config: { rateLimit: false } }, async () => 'open')
  app.get('/early-own', { config: { rateLimit: { max: 2 } } }, async () => 'own')
  await app.register(async (v1) => { v1.post('/orders', async () => 'x') }, { prefix: '/v1' })
  // The classic: register without await, then a route.
  app.register(spikard, { requestId: true, rateLimit: { max: 1 } })
  app.get('/late', async () => 'late')
  await app.register(async (api) => { api.get('/', async () => 'api') }, { prefix: '/api' })
  // One global count per client: each route from a client of its own.
  for (const [i, url] of ['/early', '/late', '/api/'].entries()) {
    const remoteAddress = `198.51.100.${i + 1}`
    assertCounted(await get(app, url, { remoteAddress }), 1, 0, 60)
    const limited = await get(app, url, { remoteAddress })
    // The early route keeps the error handler it was registered with (Fastify's).
    if (url === '/early') assert.deepEqual([limited.statusCode, limited.headers['retry-after']], [429, '60'])
    else assertLimited(limited, url, 60, 1)
  }
  assert.equal((await app.inject({ method: 'POST', url: '/v1/orders', remoteAddress: '198.51.100.10' })).statusCode, 200)
  assert.equal((await app.inject({ method: 'POST', url: '/v1/orders', remoteAddress: '198.51.100.10' })).statusCode, 429)
  // Their config is read on their first request: opted out, or a limit of their own.
  for (let i = 0; i < 3; i++) assertUnlimited(await get(app, '/early-open'))
  assertCounted(await get(app, '/early-own'), 2, 1, 60)
  assertCounted(await get(app, '/early-own'), 2, 0, 60)
  assert.equal((await get(app, '/early-own')).statusCode, 429)
})

test('routes spikard registered before the rate limiter (health, auth) get their limit too', async (t) => {
  const app = Fastify(spikardFastifyOptions({ server: { logger: { level: 'silent' } } }))
  t.after(() => app.close())
  await app.register(spikard, { requestId: true, health: true })
  app.get('/between', async () => ({ between: true }))
  await app.register(rateLimitPlugin, { max: 1 })
  app.get('/after', async () => ({ after: true }))
  assertCounted(await get(app, '/between'), 1, 0, 60)
  assertLimited(await get(app, '/after'), '/after', 60, 1)
  assertLimited(await get(app, '/between'), '/between', 60, 1)
  assertUnlimited(await get(app, '/livez'))
})

test('spikard check shows each route\'s limit', () => {
  const global = { max: 100, timeWindow: 60_000, keyBy: 'ip' as const }
  assert.equal(describeRouteLimit(undefined, global), '100/1m')
  assert.equal(describeRouteLimit(true, global), '100/1m')
  assert.equal(describeRouteLimit(false, global), 'off')
  assert.equal(describeRouteLimit(undefined, false), 'off')
  assert.equal(describeRouteLimit({ max: 5, timeWindow: '30s' }, global), '5/30s own')
  assert.equal(describeRouteLimit({ keyBy: 'identity', timeWindow: 3_600_000 }, global), '100/1h by identity own')
  assert.equal(describeRouteLimit(undefined, { ...global, keyBy: 'header:x-api-key', timeWindow: 90_000 }), '100/90s by header:x-api-key')
  assert.deepEqual([formatDuration(1500), formatDuration(1000), formatDuration(120_000)], ['1500ms', '1s', '2m'])
})

test('the Redis outage: after one failed command the next request asks again at once; after two in a row, one request a second; counting resumes when one succeeds', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 })
  const lines: string[] = []
  const log = { error: (_o: unknown, msg: string) => { lines.push(msg) }, info: (_o: unknown, msg: string) => { lines.push(msg) } }
  const outage = new Outage(log as unknown as FastifyBaseLogger, 'reject')
  const timeout = Object.assign(new Error('Command timed out'), { code: 'ETIMEDOUT' })
  assert.equal(outage.skip(), false)
  // One command timed out (a blip): the next request is sent to Redis, the ones meanwhile are not.
  outage.failed(timeout)
  assert.equal(outage.skip(), false)
  assert.equal(outage.skip(), true)
  // That one failed too: a hung Redis. One request a second from now.
  outage.failed(timeout)
  assert.equal(outage.skip(), true)
  t.mock.timers.tick(PROBE_INTERVAL - 1)
  assert.equal(outage.skip(), true)
  t.mock.timers.tick(1)
  assert.equal(outage.skip(), false)
  assert.equal(outage.skip(), true)
  outage.recovered()
  assert.equal(outage.skip(), false)
  assert.equal(outage.skip(), false)
  // The count of failures in a row starts over: one more blip is not an outage of a second.
  outage.failed(timeout)
  assert.equal(outage.skip(), false)
  assert.deepEqual(lines, ['rate-limit store unreachable: requests are answered 503 until it is back', 'rate-limit store reachable again', 'rate-limit store unreachable: requests are answered 503 until it is back'])
})
