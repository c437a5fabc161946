/**
 * Health probes: on by default, `/livez` and `/readyz` answer `200 {"status":"ok"}`,
 * at configurable paths or not at all, out of the access log and marked public; from the
 * moment shutdown begins readiness answers a 503 problem while liveness stays 200.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type LightMyRequestResponse } from 'fastify'
import spikard from '../../src/spikard.js'
import { SpikardConfigError } from '../../src/errors.js'
import { resolveSpikardOptions } from '../../src/options.js'
import { resolveConfig } from '../../src/config/schema.js'
import type { CreateServerConfig } from '../../src/server.js'
import { assertOptionsRefused, build, listen, refusal, UUID, withTimeout, type TestApp } from '../helpers.js'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/hello', async () => ({ hello: 'world' }))
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build(config, routes)
  t.after(() => built.app.close())
  return built
}

const OK = { status: 'ok' }

function assertOk (res: LightMyRequestResponse, where: string): void {
  assert.equal(res.statusCode, 200, `${where}: ${res.body}`)
  assert.match(String(res.headers['content-type']), /^application\/json; charset=utf-8$/, where)
  assert.equal(res.body, '{"status":"ok"}', where)
  assert.equal(res.headers['cache-control'], 'no-store', where)
}

async function assertNotFound (app: FastifyInstance, url: string): Promise<void> {
  const res = await app.inject({ url })
  assert.equal(res.statusCode, 404, `${url}: ${res.body}`)
  assert.equal(res.json().type, 'https://spikard.dev/errors/not-found', url)
}

function assertShuttingDown (status: number, contentType: string | null, body: any, url: string): void {
  assert.equal(status, 503)
  assert.match(String(contentType), /^application\/problem\+json(;|$)/)
  assert.equal(typeof body.requestId, 'string')
  assert.deepStrictEqual(body, {
    type: 'https://spikard.dev/errors/shutting-down',
    title: 'Service Unavailable',
    status: 503,
    detail: 'The server is shutting down; retry on another instance',
    instance: url,
    requestId: body.requestId
  })
}

// ---------------------------------------------------------------------------------------

test('false: no probe routes', async (t) => {
  // openapi and asyncapi off too: their docs routes would be listed beside /hello.
  const { app } = await setup(t, { health: false, openapi: false, asyncapi: false })
  await assertNotFound(app, '/livez')
  await assertNotFound(app, '/readyz')
  assert.deepStrictEqual(app.spikard.routes.map((r) => r.url), ['/hello', '/hello'])
})

test('true: /livez and /readyz answer 200 {"status":"ok"}, to GET and HEAD', async (t) => {
  const { app } = await setup(t, { requestId: true, health: true })
  assert.deepStrictEqual(app.spikard.options.health, { liveness: '/livez', readiness: '/readyz' })
  for (const url of ['/livez', '/readyz']) {
    const res = await app.inject({ url })
    assertOk(res, url)
    assert.match(String(res.headers['x-request-id']), UUID, 'other features still apply')
    const head = await app.inject({ method: 'HEAD', url })
    assert.equal(head.statusCode, 200, `HEAD ${url}`)
    assert.equal(head.body, '')
    assert.equal(head.headers['cache-control'], 'no-store', `HEAD ${url}`)
    const post = await app.inject({ method: 'POST', url })
    assert.equal(post.statusCode, 405, `POST ${url}`)
  }
})

test('custom paths: served there, and nothing at the defaults', async (t) => {
  const { app } = await setup(t, { health: { liveness: '/health/live', readiness: '/health/ready' } })
  assertOk(await app.inject({ url: '/health/live' }), '/health/live')
  assertOk(await app.inject({ url: '/health/ready' }), '/health/ready')
  await assertNotFound(app, '/livez')
  await assertNotFound(app, '/readyz')
})

test('false removes a route: liveness only, readiness only, neither', async (t) => {
  const liveOnly = await setup(t, { health: { readiness: false } })
  assertOk(await liveOnly.app.inject({ url: '/livez' }), 'liveness only')
  await assertNotFound(liveOnly.app, '/readyz')

  const readyOnly = await setup(t, { health: { liveness: false, readiness: '/ready' } })
  assertOk(await readyOnly.app.inject({ url: '/ready' }), 'readiness only')
  await assertNotFound(readyOnly.app, '/livez')
  await assertNotFound(readyOnly.app, '/readyz')

  const neither = await setup(t, { health: { liveness: false, readiness: false }, openapi: false, asyncapi: false })
  await assertNotFound(neither.app, '/livez')
  await assertNotFound(neither.app, '/readyz')
  assert.deepStrictEqual(neither.app.spikard.routes.map((r) => r.url), ['/hello', '/hello'])
})

test('the probes are not in the access log, and are marked public for auth, rate limits and shutdown', async (t) => {
  const { app, logs } = await setup(t, { requestId: true, logging: true, health: true })
  for (const url of ['/livez', '/readyz', '/livez']) assertOk(await app.inject({ url }), url)
  const hello = await app.inject({ url: '/hello' })
  assert.equal(hello.statusCode, 200)
  assert.deepStrictEqual(logs.filter((l) => l.msg === 'request completed').map((l) => l.path), ['/hello'])

  const probes = app.spikard.routes.filter((r) => r.url === '/livez' || r.url === '/readyz')
  assert.deepStrictEqual(probes.map((r) => [r.method, r.url]), [['GET', '/livez'], ['HEAD', '/livez'], ['GET', '/readyz'], ['HEAD', '/readyz']])
  for (const route of probes) assert.deepStrictEqual(route.config, { logging: false, auth: false, rateLimit: false, shutdown: false }, route.url)
})

test('readiness answers a 503 problem as soon as shutdown begins; liveness stays 200', async (t) => {
  // The pre-close delay is the window for the five requests below (the listener closes after
  // it): 2 s, not 600 ms, so a loaded machine still makes them there.
  const { app } = await setup(t, { requestId: true, health: true, shutdown: { preCloseDelay: '2s', timeout: '5s', signals: false } })
  const { url } = await listen(app)
  assert.equal((await fetch(`${url}/readyz`)).status, 200, 'ready before')

  const closed = app.close()
  await withTimeout((async () => { while (app.spikard.phase === 'serving') await new Promise((resolve) => setImmediate(resolve)) })(), 1000, 'shutdown to begin')

  const ready = await fetch(`${url}/readyz`)
  const problem = await ready.json()
  assertShuttingDown(ready.status, ready.headers.get('content-type'), problem, '/readyz')
  assert.equal(ready.headers.get('connection'), 'close')
  assert.equal(ready.headers.get('x-request-id'), problem.requestId)
  // No cache between a load balancer and the server may keep an answer, either way.
  assert.equal(ready.headers.get('cache-control'), 'no-store')
  const readyHead = await fetch(`${url}/readyz`, { method: 'HEAD' })
  assert.equal(readyHead.status, 503)
  assert.equal(readyHead.headers.get('cache-control'), 'no-store')

  const live = await fetch(`${url}/livez`)
  assert.equal(live.status, 200)
  assert.equal(live.headers.get('cache-control'), 'no-store')
  assert.equal(live.headers.get('connection'), 'close')
  assert.deepStrictEqual(await live.json(), OK)

  const hello = await fetch(`${url}/hello`)
  assert.equal(hello.status, 200, 'the pre-close delay still serves')
  await withTimeout(closed, 10_000, 'close')
  assert.equal(app.spikard.phase, 'closed')
})

test('without the shutdown feature, readiness answers 503 once app.close() begins (drain hooks still run)', async (t) => {
  const { app } = await setup(t, { health: true, shutdown: false })
  const { url } = await listen(app)
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  let drained = false
  app.spikard.onDrain('hold', async ({ remainingMs }) => {
    assert.ok(remainingMs > 29_000 && remainingMs <= 30_000, `remainingMs ${remainingMs}: the default budget`)
    await held
    drained = true
  })
  const closed = app.close()
  try {
    await withTimeout((async () => { while (app.spikard.phase === 'serving') await new Promise((resolve) => setTimeout(resolve, 5)) })(), 1000, 'close to begin')
    assert.equal(app.spikard.phase, 'closing')
    const ready = await fetch(`${url}/readyz`)
    assertShuttingDown(ready.status, ready.headers.get('content-type'), await ready.json(), '/readyz')
    const live = await fetch(`${url}/livez`)
    assert.equal(live.status, 200)
    assert.deepStrictEqual(await live.json(), OK)
  } finally {
    release()
  }
  await withTimeout(closed, 5000, 'close')
  assert.equal(drained, true)
})

test('invalid options fail at createServer and at ready(), naming health.<key>', async () => {
  const PATH = 'expected a literal path starting with "/" (no ":", "*", "?", "#", "%", spaces or "//"), or false'
  const cases: Array<{ health: unknown, problems: string[] }> = [
    { health: { liveness: 'livez' }, problems: [`health.liveness: ${PATH}, found "livez"`] },
    { health: { liveness: 42 }, problems: [`health.liveness: ${PATH}, found 42`] },
    { health: { readiness: true }, problems: [`health.readiness: ${PATH}, found true`] },
    // Nothing, a route parameter, a wildcard, an empty segment, a space, a query, a fragment or
    // a percent-encoding (the router matches the decoded path): no probe could answer there.
    ...['', '/x/:id', '/x/*', '//x', '/a b', '/x?y=1', '/x#y', '/health%20z'].map((path) => ({ health: { liveness: path }, problems: [`health.liveness: ${PATH}, found ${JSON.stringify(path)}`] })),
    { health: { readines: '/r' }, problems: ['health.readines: unknown key (did you mean "readiness"?)'] },
    { health: 'yes', problems: ['health: expected true, false or an options object, found "yes"'] },
    { health: { liveness: '/health', readiness: '/health' }, problems: ['health.readiness: /health is health.liveness already; give each its own path'] }
  ]
  for (const { health, problems } of cases) await assertOptionsRefused('health', health, problems)
})

test('two of spikard\'s own routes at one path are refused at startup, naming both options, in code and in a config file', async (t) => {
  assert.deepEqual(refusal(() => resolveSpikardOptions({ openapi: { json: '/livez' }, asyncapi: { docs: '/docs' } })), [
    'asyncapi.docs: /docs is openapi.docs already; give each its own path',
    'health.liveness: /livez is openapi.json already; give each its own path'
  ])
  // The same from a config file; and a route that is off frees its path.
  assert.deepEqual(refusal(() => resolveConfig({ openapi: { yaml: '/readyz' } })), ['health.readiness: /readyz is openapi.yaml already; give each its own path'])
  assert.equal(resolveConfig({ openapi: { yaml: '/readyz' }, health: { readiness: false } }).health !== false, true)
  const app = Fastify()
  t.after(() => app.close())
  app.register(spikard, { openapi: { json: '/livez' }, shutdown: { signals: false } })
  await assert.rejects(async () => { await app.ready() }, /health\.liveness: \/livez is openapi\.json already/)
})

test('a route of yours at a probe\'s path is refused at startup, naming both, whether registered before or after spikard', async (t) => {
  const refused = (option: string, path: string, route: string) => (error: unknown): true => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.deepStrictEqual(error.problems, [`${option}: ${path} is spikard's ${option === 'health.liveness' ? 'liveness' : 'readiness'} probe, and ${route} is registered there too; move that route, or set ${option} to another path (or false)`])
    return true
  }
  const before = Fastify()
  t.after(() => before.close())
  before.get('/livez', async () => 'mine')
  before.register(spikard, { shutdown: { signals: false } })
  await assert.rejects(async () => { await before.ready() }, refused('health.liveness', '/livez', 'your route GET /livez (registered before spikard)'))

  // Any method, not only the probe's GET: a POST /readyz of yours would be a second route there.
  const otherMethod = Fastify()
  t.after(() => otherMethod.close())
  otherMethod.register(async (child) => { child.post('/readyz', async () => 'mine') })
  otherMethod.register(spikard, { shutdown: { signals: false } })
  await assert.rejects(async () => { await otherMethod.ready() }, refused('health.readiness', '/readyz', 'your route POST /readyz (registered before spikard)'))

  const after = Fastify()
  t.after(() => after.close())
  await after.register(spikard, { shutdown: { signals: false }, health: { readiness: '/ready' } })
  assert.throws(() => after.post('/ready', async () => 'mine'), refused('health.readiness', '/ready', 'your route POST /ready'))

  // spikard in a prefixed plugin serves its probes under the prefix: a route there is refused,
  // before or after spikard, and one at the unprefixed path elsewhere is not in the way.
  const prefixed = Fastify()
  t.after(() => prefixed.close())
  prefixed.post('/livez', async () => 'mine, at the root')
  await prefixed.register(async (api) => {
    await api.register(spikard, { shutdown: { signals: false } })
    assert.throws(() => api.post('/livez', async () => 'mine'), refused('health.liveness', '/api/livez', 'your route POST /api/livez'))
  }, { prefix: '/api' })
  assertOk(await prefixed.inject('/api/livez'), '/api/livez')
  assert.equal((await prefixed.inject({ method: 'POST', url: '/livez' })).body, 'mine, at the root')
  const prefixedBefore = Fastify()
  t.after(() => prefixedBefore.close())
  prefixedBefore.register(async (api) => {
    api.put('/readyz', async () => 'mine')
    api.register(spikard, { shutdown: { signals: false } })
  }, { prefix: '/api' })
  await assert.rejects(async () => { await prefixedBefore.ready() }, refused('health.readiness', '/api/readyz', 'your route PUT /api/readyz (registered before spikard)'))

  // A probe moved elsewhere, or switched off, frees the path.
  const moved = Fastify()
  t.after(() => moved.close())
  await moved.register(spikard, { shutdown: { signals: false }, health: { liveness: '/healthz' } })
  moved.get('/livez', async () => 'mine')
  assert.equal((await moved.inject('/livez')).body, 'mine')
})
