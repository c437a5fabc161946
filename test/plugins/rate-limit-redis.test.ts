/**
 * Rate limiting on a real redis-server (test/redis.ts starts one on a free port): two
 * instances sharing each count, what is kept in Redis, the client closed on shutdown, and
 * Redis stopped mid-test under both outage policies: no crash, no unhandled error, no
 * driver message in a response or on stderr, the outage logged once a minute, counting
 * back when Redis is. Skipped, saying how to install it, where redis-server is missing
 * (never under CI=true).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { FastifyInstance, FastifyPluginAsync, LightMyRequestResponse } from 'fastify'
import type { CreateServerConfig } from '../../src/server.js'
import { build, type TestApp } from '../helpers.js'
import { redisSkip, startRedis, type RedisServer } from '../redis.js'

const skip = redisSkip()
const redis = skip === false ? await startRedis() : undefined as unknown as RedisServer

/** A plain client of the test's own, to look at what Redis holds. */
function adminClient (t: TestContext): Redis {
  const admin = new Redis(redis.url)
  t.after(() => admin.quit())
  return admin
}

/** Connections the rate limiter has open (they are named). */
async function limiterConnections (admin: Redis): Promise<number> {
  return String(await admin.client('LIST')).split('\n').filter((line) => line.includes('name=spikard-rate-limit')).length
}

const TYPE = 'https://spikard.dev/errors/'
const OUTAGE = /rate-limit store unreachable/

const routes: FastifyPluginAsync = async (app) => {
  app.addHook('onRequest', async (request) => {
    const key = request.headers['x-api-key']
    if (typeof key === 'string') (request as { identity?: unknown }).identity = { scheme: 'apiKey', id: key }
  })
  app.get('/items', async () => ({ items: [] }))
  app.get('/reports', { config: { rateLimit: { keyBy: 'identity', max: 2 } } }, async () => ({ reports: [] }))
}

let prefixes = 0
/** An app on the test Redis, with a key prefix of the test's own unless given. */
async function setup (t: TestContext, rateLimit: Record<string, unknown>, config: CreateServerConfig = {}): Promise<TestApp> {
  const built = await build({ requestId: true, ...config, rateLimit: { redis: redis.url, redisPrefix: `t${++prefixes}:`, ...rateLimit } }, routes)
  t.after(() => built.app.close())
  return built
}

/** Unhandled errors and stderr noise from the driver fail the test that caused them. */
function watchForLeaks (t: TestContext): () => void {
  const unhandled: unknown[] = []
  const record = (error: unknown): void => { unhandled.push(error) }
  process.on('unhandledRejection', record)
  process.on('uncaughtException', record)
  const consoleError = t.mock.method(console, 'error')
  t.after(() => {
    process.off('unhandledRejection', record)
    process.off('uncaughtException', record)
  })
  return () => {
    assert.deepEqual(unhandled, [])
    // ioredis prints "[ioredis] Unhandled error event" when nobody listens to its errors.
    const noise = consoleError.mock.calls.map((c) => c.arguments.map(String).join(' ')).filter((text) => /ioredis|redis|ECONNREFUSED/i.test(text))
    assert.deepEqual(noise, [])
  }
}

function remaining (res: LightMyRequestResponse): string | undefined {
  return res.headers['x-ratelimit-remaining'] as string | undefined
}

/** Requests /items until one is counted again (Redis back and the client reconnected). */
async function untilCounted (app: FastifyInstance): Promise<LightMyRequestResponse> {
  for (let i = 0; i < 100; i++) {
    const res = await app.inject('/items')
    if (res.headers['x-ratelimit-limit'] !== undefined) return res
    await sleep(50)
  }
  throw new Error('the limit never came back')
}

test('two instances on one Redis share each count: the global one and a route\'s own', { skip }, async (t) => {
  const rateLimit = { max: 3, redisPrefix: 'shared:' }
  const { app: a } = await setup(t, rateLimit)
  const { app: b } = await setup(t, rateLimit)
  assert.equal(remaining(await a.inject('/items')), '2')
  assert.equal(remaining(await b.inject('/items')), '1')
  assert.equal(remaining(await a.inject('/items')), '0')
  const over = await b.inject('/items')
  assert.equal(over.statusCode, 429)
  assert.equal(over.json().detail, 'Rate limit exceeded, retry in 60 seconds')
  assert.equal(over.headers['retry-after'], '60')
  assert.equal((await a.inject('/items')).statusCode, 429)

  const as = (app: FastifyInstance, key: string): Promise<LightMyRequestResponse> => app.inject({ url: '/reports', headers: { 'x-api-key': key } })
  assert.equal(remaining(await a.inject({ url: '/reports', headers: { 'x-api-key': 'k1' } })), '1')
  assert.equal(remaining(await as(b, 'k1')), '0')
  assert.equal((await as(a, 'k1')).statusCode, 429)
  assert.equal((await as(b, 'k1')).statusCode, 429)
  assert.equal(remaining(await as(b, 'k2')), '1')
})

test('what Redis holds: keys under the prefix, header values as their SHA-256, a TTL of the window', { skip }, async (t) => {
  const admin = adminClient(t)
  const { app } = await setup(t, { max: 5, keyBy: 'header:x-api-key', redisPrefix: 'svc-a:', timeWindow: '30s' })
  const { app: other } = await setup(t, { max: 5, keyBy: 'header:x-api-key', redisPrefix: 'svc-b:' })
  await app.inject({ url: '/items', headers: { 'x-api-key': 'sk_live_secret' } })
  await app.inject({ url: '/items', headers: { 'x-api-key': 'sk_live_secret' } })
  assert.equal(remaining(await other.inject({ url: '/items', headers: { 'x-api-key': 'sk_live_secret' } })), '4')
  await app.inject('/items')
  const keys = (await admin.keys('svc-a:*')).sort()
  assert.deepEqual(keys, ['svc-a:global:127.0.0.1', 'svc-a:global:header:#' + (await sha256('sk_live_secret'))])
  assert.equal(await admin.get(keys[1]), '2')
  const ttl = await admin.pttl(keys[1])
  assert.ok(ttl > 29_000 && ttl <= 30_000, String(ttl))
  assert.ok(!(await admin.keys('*')).some((k) => k.includes('sk_live_secret')))
})

test('routes told apart by a constraint count apart, as in memory: each has keys of its own', { skip }, async (t) => {
  const admin = adminClient(t)
  const { app } = await build({ rateLimit: { redis: redis.url, redisPrefix: 'versions:' } }, async (app) => {
    app.get('/multi', { constraints: { version: '1.0.0' }, config: { rateLimit: { max: 2 } } }, async () => 'v1')
    app.get('/multi', { constraints: { version: '2.0.0' }, config: { rateLimit: { max: 2 } } }, async () => 'v2')
  })
  t.after(() => app.close())
  const get = (version: string): Promise<LightMyRequestResponse> => app.inject({ url: '/multi', headers: { 'accept-version': version } })
  assert.deepEqual([remaining(await get('1.0.0')), remaining(await get('2.0.0')), remaining(await get('1.0.0')), remaining(await get('2.0.0'))], ['1', '1', '0', '0'])
  assert.equal((await get('1.0.0')).statusCode, 429)
  assert.deepEqual((await admin.keys('versions:route:*')).sort(), [
    'versions:route:GET /multi version=1.0.0:127.0.0.1',
    'versions:route:GET /multi version=2.0.0:127.0.0.1'
  ])
})

async function sha256 (text: string): Promise<string> {
  const { createHash } = await import('node:crypto')
  return createHash('sha256').update(text).digest('base64url')
}

test('Redis stopped mid-test, onStoreError allow: requests pass unlimited, the outage is logged once, nothing of the driver reaches a client; counting resumes when Redis is back', { skip }, async (t) => {
  const leaks = watchForLeaks(t)
  const { app, logs } = await setup(t, { max: 2 })
  assert.equal(remaining(await app.inject('/items')), '1')
  await redis.stop()
  try {
    for (let i = 0; i < 5; i++) {
      const res = await app.inject('/items')
      assert.equal(res.statusCode, 200)
      assert.deepEqual(res.json(), { items: [] })
      assert.equal(res.headers['x-ratelimit-limit'], undefined)
      assert.equal(res.headers['retry-after'], undefined)
      assert.equal((await app.inject({ url: '/reports', headers: { 'x-api-key': 'k' } })).statusCode, 200)
    }
    await sleep(300) // reconnection attempts fail meanwhile, and are not logged again
  } finally {
    await redis.start()
  }
  const outages = logs.filter((l) => OUTAGE.test(l.msg))
  assert.equal(outages.length, 1, JSON.stringify(outages))
  assert.equal(outages[0].level, 50)
  assert.match(outages[0].msg, /requests pass unlimited until it is back/)
  assert.equal(outages[0].store, 'redis')
  const back = await untilCounted(app)
  assert.equal(back.statusCode, 200)
  assert.equal(logs.filter((l) => l.msg === 'rate-limit store reachable again').length, 1)
  // A restarted Redis has forgotten the counts; the limit holds again from here.
  assert.equal(remaining(await app.inject('/items')), String(Number(remaining(back)) - 1))
  for (let i = 0; i < 2; i++) await app.inject('/items')
  assert.equal((await app.inject('/items')).statusCode, 429)
  leaks()
})

test('Redis stopped mid-test, onStoreError reject: a 503 problem without the driver\'s message; counting resumes when Redis is back', { skip }, async (t) => {
  const leaks = watchForLeaks(t)
  const { app, logs } = await setup(t, { max: 5, onStoreError: 'reject' })
  assert.equal(remaining(await app.inject('/items')), '4')
  await redis.stop()
  try {
    for (const url of ['/items', '/reports', '/nope']) {
      const res = await app.inject({ url, headers: { 'x-api-key': 'k' } })
      assert.equal(res.statusCode, 503)
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
      assert.deepEqual(res.json(), {
        type: TYPE + 'rate-limit-unavailable',
        title: 'Service Unavailable',
        status: 503,
        detail: 'The rate limit cannot be checked right now; retry shortly',
        instance: url,
        requestId: res.headers['x-request-id']
      })
      assert.doesNotMatch(res.body, /enableOfflineQueue|ECONNREFUSED|Stream|ioredis|Connection/i)
    }
  } finally {
    await redis.start()
  }
  const outages = logs.filter((l) => OUTAGE.test(l.msg))
  assert.equal(outages.length, 1)
  assert.match(outages[0].msg, /requests are answered 503 until it is back/)
  assert.equal((await untilCounted(app)).statusCode, 200)
  leaks()
})

test('Redis hung with its connection open: past two failed commands, one a second asks it, the other requests get the policy at once; counting resumes', { skip }, async (t) => {
  const leaks = watchForLeaks(t)
  const { app, logs } = await setup(t, { max: 1000, redisTimeout: '200ms' })
  const admin = adminClient(t)
  assert.equal(remaining(await app.inject('/items')), '999')
  const prefix = `t${prefixes}:`
  redis.pause()
  let elapsed: number
  try {
    // Each of these used to wait redisTimeout and leave its command queued in the client
    // until Redis answered: 40 requests, 8 s, and 40 INCRs run late.
    const start = Date.now()
    for (let i = 0; i < 40; i++) {
      const res = await app.inject('/items')
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['x-ratelimit-limit'], undefined)
    }
    elapsed = Date.now() - start
  } finally {
    redis.resume()
  }
  assert.ok(elapsed < 2000, `40 requests took ${elapsed} ms`)
  await sleep(100)
  // The one before the pause, and those sent meanwhile: the first two (after one failure the
  // next request asks at once), then one a second at most.
  const counted = Number(await admin.get(`${prefix}global:127.0.0.1`))
  assert.ok(counted >= 3 && counted <= 3 + Math.ceil(elapsed / 1000), `${counted} INCRs reached Redis`)
  assert.equal(logs.filter((l) => OUTAGE.test(l.msg)).length, 1)
  assert.equal((await untilCounted(app)).statusCode, 200)
  assert.equal(logs.filter((l) => l.msg === 'rate-limit store reachable again').length, 1)
  leaks()
})

test('the outage is logged at most once a minute, with the failures in between counted', { skip }, async (t) => {
  const leaks = watchForLeaks(t)
  const { app, logs } = await setup(t, { max: 5 })
  await app.inject('/items')
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
  await redis.stop()
  try {
    for (let i = 0; i < 3; i++) await app.inject('/items')
    t.mock.timers.tick(59_000)
    await app.inject('/items')
    assert.equal(logs.filter((l) => OUTAGE.test(l.msg)).length, 1)
    t.mock.timers.tick(1000)
    await app.inject('/items')
  } finally {
    await redis.start()
  }
  const outages = logs.filter((l) => OUTAGE.test(l.msg))
  assert.equal(outages.length, 2)
  assert.ok(outages[1].failuresSinceLastReport >= 3, String(outages[1].failuresSinceLastReport))
  assert.ok(outages[1].downForMs >= 60_000, String(outages[1].downForMs))
  t.mock.timers.reset()
  await untilCounted(app)
  leaks()
})

test('Redis unreachable at startup: ready() does not fail, the outage is logged, the policy applies', { skip }, async (t) => {
  const leaks = watchForLeaks(t)
  const nowhere = 'redis://127.0.0.1:1'
  const start = Date.now()
  const { app, logs } = await setup(t, { redis: nowhere, onStoreError: 'reject' })
  await app.ready()
  assert.ok(Date.now() - start < 2000, 'startup waited for Redis too long')
  assert.equal((await app.inject('/items')).statusCode, 503)
  const { app: allow } = await setup(t, { redis: nowhere })
  assert.equal((await allow.inject('/items')).statusCode, 200)
  assert.equal(logs.filter((l) => OUTAGE.test(l.msg)).length, 1)
  leaks()
})

test('Redis unreachable: app.close() leaves no timer behind (spikard check and openapi exit at once)', async () => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const { app } = await build({ rateLimit: { redis: 'redis://127.0.0.1:1' } }, routes)
  await app.ready()
  await app.close()
  await sleep(50)
  // ioredis's disconnect() waits disconnectTimeout (2 s by default) for a socket that closed already.
  assert.ok(timers() <= before, `${timers() - before} more timers after close()`)
})

test('the Redis client is closed on app.close()', { skip }, async (t) => {
  const admin = adminClient(t)
  const ours = async (): Promise<number> => await limiterConnections(admin)
  const before = await ours()
  const { app } = await build({ rateLimit: { redis: redis.url } }, routes)
  await app.ready()
  await app.inject('/items')
  assert.equal(await ours(), before + 1)
  await app.close()
  for (let i = 0; i < 20 && await ours() > before; i++) await sleep(25)
  assert.equal(await ours(), before)
})

test('startup refused (an invalid route limit) with Redis configured: the client is closed too', { skip }, async (t) => {
  const admin = adminClient(t)
  const ours = async (): Promise<number> => await limiterConnections(admin)
  const before = await ours()
  await assert.rejects(build({ rateLimit: { redis: redis.url } }, async (app) => {
    app.get('/bad', { config: { rateLimit: { max: 'ten' } as never } }, async () => 'never')
  }), /config\.rateLimit\.max: expected an integer >= 0, found "ten"/)
  for (let i = 0; i < 20 && await ours() > before; i++) await sleep(25)
  assert.equal(await ours(), before)
})
