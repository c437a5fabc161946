/**
 * startupSummary(): the startup line's record (features on with their key settings, features
 * off) and its warnings, one per risky choice, each caused by exactly the option named.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startupSummary, type ServerFacts } from '../src/summary.js'
import { resolveSpikardOptions, type SpikardOptions } from '../src/options.js'
import { build, listen } from './helpers.js'

const FACTS: ServerFacts = { trustProxy: false, bodyLimit: 1024 * 1024, logLevel: 'info' }
const KEY = 'k3y-0f-at-least-16-chars'
/** Directories that exist, for static mounts. */
const TEST_DIR = dirname(fileURLToPath(import.meta.url))
const FIXTURES_DIR = join(TEST_DIR, 'fixtures')

/** The warnings of `options` (and `facts` over the safe FACTS). */
function warningsOf (options: SpikardOptions, facts: ServerFacts = {}): string[] {
  return startupSummary(resolveSpikardOptions(options), { ...FACTS, ...facts }).warnings
}

/** API-key auth with rate limiting on, so neither warns about the other. */
const AUTH: SpikardOptions = { auth: { apiKey: { keys: [KEY] } }, rateLimit: true }

describe('startupSummary', () => {
  it('defaults: every default feature on with its settings, the others off, no warning', () => {
    assert.deepEqual(startupSummary(resolveSpikardOptions({}), FACTS), {
      record: {
        features: {
          openapi: 'json=/openapi.json yaml=/openapi.yaml docs=/docs redoc=/redoc',
          asyncapi: 'json=/asyncapi.json yaml=/asyncapi.yaml docs=/asyncapi',
          requestId: 'header=x-request-id',
          logging: 'level=info',
          shutdown: 'timeout=30s signals=on',
          tasks: 'concurrency=10 maxQueued=1000 timeout=30s retries=0',
          health: 'liveness=/livez readiness=/readyz',
          timeout: 'handler=30s headers=10s request=1m keepAlive=72s',
          bodyLimit: 'max=1mb decode=on',
          stream: 'on',
          sse: 'keepAlive=15s maxConnections=10000 maxBuffered=4mb',
          websocket: 'origins=default heartbeat=30s maxConnections=10000 maxPayload=1mb maxBuffered=4mb',
          compression: 'br,gzip threshold=1kb'
        },
        off: ['requestContext', 'cors', 'rateLimit', 'auth', 'static']
      },
      warnings: []
    })
    // Without facts (an instance whose trustProxy is unknown) nothing is guessed either.
    assert.deepEqual(startupSummary(resolveSpikardOptions({})).warnings, [])
  })

  it('features keep registration order; shorthands and `true` show their settings; a feature without settings says on', () => {
    const { record } = startupSummary(resolveSpikardOptions({
      requestContext: true,
      bodyLimit: '512kb',
      timeout: '10s',
      shutdown: '20s',
      logging: false,
      cors: 'https://app.example',
      rateLimit: 50,
      auth: { jwt: { secret: 'x'.repeat(32) } },
      stream: '5m',
      sse: { keepAlive: '30s' },
      static: [{ root: FIXTURES_DIR, prefix: '/assets', immutable: true }, { root: TEST_DIR }]
    }), FACTS)
    assert.deepEqual(record, {
      features: {
        openapi: 'json=/openapi.json yaml=/openapi.yaml docs=/docs redoc=/redoc',
        asyncapi: 'json=/asyncapi.json yaml=/asyncapi.yaml docs=/asyncapi',
        requestContext: 'on',
        requestId: 'header=x-request-id',
        cors: 'origin=https://app.example maxAge=600s',
        shutdown: 'timeout=20s signals=on',
        tasks: 'concurrency=10 maxQueued=1000 timeout=30s retries=0',
        health: 'liveness=/livez readiness=/readyz',
        timeout: 'handler=10s headers=10s request=1m keepAlive=72s',
        rateLimit: '50/1m by ip store=memory',
        auth: 'jwt(HS256)',
        bodyLimit: 'max=512kb decode=on',
        stream: 'idleTimeout=5m',
        sse: 'keepAlive=30s maxConnections=10000 maxBuffered=4mb',
        websocket: 'origins=default heartbeat=30s maxConnections=10000 maxPayload=1mb maxBuffered=4mb',
        static: `/assets=${FIXTURES_DIR} /=${TEST_DIR}`,
        compression: 'br,gzip threshold=1kb'
      },
      off: ['logging']
    })
    assert.deepEqual(Object.keys(record.features),
      ['openapi', 'asyncapi', 'requestContext', 'requestId', 'cors', 'shutdown', 'tasks', 'health', 'timeout', 'rateLimit', 'auth', 'bodyLimit', 'stream', 'sse', 'websocket', 'static', 'compression'])
  })

  describe('one warning per risky choice, caused by the option it names', () => {
    const cases: Array<[string, SpikardOptions, ServerFacts, string]> = [
      ['rate limiting off while auth is on', { auth: { apiKey: { keys: [KEY] } } }, {},
        'rateLimit is off while auth is on: API keys and tokens can be guessed at full speed; turn rate limiting on (rateLimit: 100)'],
      ['trustProxy: true', {}, { trustProxy: true },
        'server.trustProxy is true: any client can forge X-Forwarded-For and so choose its own address, in the logs and for rate limits; ' +
        'list your proxies\' addresses (server.trustProxy: 10.0.0.0/8) or give their hop count instead'],
      ['API keys accepted in the query string', { ...AUTH, auth: { apiKey: { keys: [KEY], query: 'api_key', header: 'x-key' } } }, {},
        'auth.apiKey.query is "api_key": API keys in URLs end up in browser histories and proxy and server logs; ' +
        'have clients send the x-key header and set auth.apiKey.query to false'],
      ['body limit off', { bodyLimit: false }, {},
        'bodyLimit is off: only Fastify\'s own limit (1mb) applies, to the bytes received, and compressed bodies are not decoded under a limit; turn it on (bodyLimit: 1mb)'],
      ['handler timeout off (timeout: false)', { timeout: false }, {},
        'timeout is off: a handler that never answers holds its connection and memory until the client gives up, and slow clients get Node\'s lax defaults; turn it on (timeout: 30s)'],
      ['handler timeout off (timeout.handler: 0)', { timeout: { handler: 0 } }, {},
        'timeout.handler is 0: a handler that never answers holds its connection and memory until the client gives up; set one (timeout.handler: 30s)'],
      ['handler timeout off (the shorthand timeout: 0)', { timeout: 0 }, {},
        'timeout.handler is 0: a handler that never answers holds its connection and memory until the client gives up; set one (timeout.handler: 30s)'],
      ['a handler timeout answered 408', { timeout: { status: 408 } }, {},
        'timeout.status is 408: browsers resend a request answered 408 on a reused connection, so a slow handler with side effects (a POST) runs again; use 503 (the default) or 504'],
      ['no headers timeout', { timeout: { headers: 0 } }, {},
        'timeout.headers is 0: a client sending its headers a byte at a time holds a connection open forever (slowloris); set one (timeout.headers: 10s)'],
      ['no request timeout', { timeout: { request: '0s' } }, {},
        'timeout.request is 0: a client sending its request a byte at a time holds a connection open forever (slowloris); set one (timeout.request: 60s)'],
      ['a pluginTimeout shorter than the shutdown budget (your own Fastify instance)', {}, { pluginTimeout: 10_000 },
        'Fastify\'s pluginTimeout (10s) is shorter than shutdown.timeout (30s): app.close() gives up on the drain at 10s ("Plugin did not start in time"); ' +
        'create Fastify with the options of spikardFastifyOptions(), or a pluginTimeout above the budget'],
      ['Fastify answering requests itself during app.close() (your own Fastify instance)', {}, { return503OnClosing: true },
        'Fastify\'s return503OnClosing is on: from the moment app.close() begins, Fastify answers every request itself with a plain JSON 503 (liveness included), ' +
        'so shutdown.preCloseDelay serves nothing and the 503s are not problem details; create Fastify with the options of spikardFastifyOptions(), or return503OnClosing: false'],
      ['shutdown off', { shutdown: false }, {},
        'shutdown is off: a SIGTERM (every deploy) is not turned into a graceful shutdown: readiness does not turn 503 first and in-flight requests get no time budget; ' +
        'turn it on (shutdown: 30s)'],
      ['a rate limit keyed by a header without auth', { rateLimit: { keyBy: 'header:x-client-id' } }, {},
        'rateLimit.keyBy is header:x-client-id: the client chooses that value and gets a fresh count by sending a new one each time; key by ip, unless a gateway in front sets or checks it'],
      ['a rate limit keyed by a cookie with auth', { ...AUTH, rateLimit: { keyBy: 'cookie:session' } }, {},
        'rateLimit.keyBy is cookie:session: the client chooses that value and gets a fresh count by sending a new one each time; ' +
        'key by identity (the authenticated caller), unless a gateway in front sets or checks it'],
      ['a rate limit keyed by identity without auth', { rateLimit: { keyBy: 'identity' } }, {},
        'rateLimit.keyBy is identity but auth is off: no request has an identity, so every count is by address; configure auth or key by ip'],
      ['rateLimit.max: 0', { rateLimit: 0 }, {},
        'rateLimit.max is 0: every request is refused with 429 (0 is not "unlimited"); set a limit, or turn rate limiting off'],
      ['server log level debug', {}, { logLevel: 'debug' },
        'server.logger.level is debug: debug lines carry request details and cost throughput; use info in production'],
      ['server log level trace', { logging: { level: 'trace' } }, { logLevel: 'trace' },
        'server.logger.level is trace: trace lines carry request details and cost throughput; use info in production'],
      ['server log level silent', {}, { logLevel: 'silent' },
        'server.logger.level is silent: errors, warnings and access lines are all dropped; use info in production'],
      ['an access line below the server level', { logging: { level: 'debug' } }, {},
        'logging.level is debug, below server.logger.level (info): no access line is written; set logging.level to info or higher'],
      ['JWTs without exp', { ...AUTH, auth: { jwt: { secret: 'x'.repeat(32), requiredClaims: ['sub'] } } }, {},
        'auth.jwt.requiredClaims leaves out exp: a token without an expiry stays valid forever once issued; keep exp in the list'],
      ['a JWKS without an audience', { ...AUTH, auth: { jwt: { jwksUrl: 'https://idp.example/jwks.json', issuer: 'https://idp.example/' } } }, {},
        'auth.jwt.audience is empty: any token your identity provider signs, for any service, is accepted; set auth.jwt.audience to this API\'s audience'],
      ['a large leeway', { ...AUTH, auth: { jwt: { secret: 'x'.repeat(32), leeway: '10m' } } }, {},
        'auth.jwt.leeway is 10m: tokens stay valid that long after they expire; clocks need seconds, not minutes (leeway: 30s)'],
      ['brotli at quality 11', { compression: { brotliQuality: 11 } }, {},
        'compression.brotliQuality is 11: each response costs 60 to 100 times the CPU of quality 4 (some 50 ms for 50 kB of JSON), ' +
        'so a few clients can saturate the server; use 4 to 6 for dynamic responses']
    ]
    for (const [name, options, facts, warning] of cases) {
      it(name, () => assert.deepEqual(warningsOf(options, facts), [warning]))
    }

    it('the safe side of each: no warning', () => {
      const safe: Array<[SpikardOptions, ServerFacts]> = [
        [AUTH, {}],
        [{}, { trustProxy: 1 }],
        [{}, { trustProxy: '10.0.0.0/8' }],
        [{}, { trustProxy: ['10.0.0.1', '10.0.0.2'] }],
        [{ timeout: { handler: '5s', headers: '1s', request: '5s' } }, {}],
        [{ rateLimit: { keyBy: 'ip' } }, {}],
        [{ ...AUTH, rateLimit: { keyBy: 'identity' } }, {}],
        [{ logging: { level: 'warn' } }, { logLevel: 'warn' }],
        [{ logging: { level: 'warn' } }, { logLevel: 'info' }],
        [{ ...AUTH, auth: { jwt: { jwksUrl: 'https://idp.example/jwks.json', audience: 'orders-api', leeway: '5m' } } }, {}],
        [{ compression: { brotliQuality: 9 } }, {}],
        [{ compression: { encodings: ['gzip'], brotliQuality: 11 } }, {}],
        [{ shutdown: '8s' }, { pluginTimeout: 10_000 }],
        [{}, { pluginTimeout: 0 }],
        [{}, { return503OnClosing: false }]
      ]
      for (const [options, facts] of safe) assert.deepEqual(warningsOf(options, facts), [], JSON.stringify([options, facts]))
    })

    it('several risky choices: every warning, in a stable order', () => {
      assert.deepEqual(warningsOf({ auth: { apiKey: { keys: [KEY], query: 'key' } }, bodyLimit: false, shutdown: false }, { trustProxy: true }).map((w) => w.split(' ')[0]),
        ['server.trustProxy', 'rateLimit', 'auth.apiKey.query', 'bodyLimit', 'shutdown'])
    })
  })

  it('no secret appears in the record or the warnings', () => {
    const jwtSecret = 'jwt-secret-of-at-least-thirty-two-bytes!'
    const rotated = 'second-jwt-secret-for-rotation-32-bytes+'
    const apiKey = 'api-key-literal-0123456789'
    const namedKey = 'named-api-key-abcdefghijkl'
    const password = 'Pa55w0rd-in-the-url'
    const options = resolveSpikardOptions({
      auth: {
        jwt: { secret: [jwtSecret, { kid: 'old', key: rotated }] },
        apiKey: { keys: [apiKey, { name: 'ci', key: namedKey }], query: 'api_key' }
      },
      rateLimit: { redis: `redis://spikard:${password}@redis.internal:6379/2`, keyBy: 'header:x-tenant' }
    })
    const summary = startupSummary(options, { ...FACTS, trustProxy: true, logLevel: 'debug' })
    // The record says what is configured, and how, without the values.
    assert.equal(summary.record.features.auth, 'jwt(HS256) apiKey(2 keys, header=x-api-key, query=api_key)')
    assert.equal(summary.record.features.rateLimit, '100/1m by header:x-tenant store=redis')
    assert.equal(summary.warnings.length, 4)
    const text = JSON.stringify(summary)
    for (const secret of [jwtSecret, rotated, apiKey, namedKey, password, 'redis.internal', 'redis://']) {
      assert.ok(!text.includes(secret), `${secret} in ${text}`)
    }
  })
})

describe('the startup line', () => {
  it('is logged once the server listens on a real socket, with one warn line per risky choice; not before', async (t) => {
    const { app, logs } = await build({ server: { trustProxy: true, logger: { level: 'info' } }, bodyLimit: false })
    t.after(() => app.close())
    await app.ready()
    assert.equal(logs.filter((l) => l.msg === 'spikard features').length, 0)
    await listen(app)
    const lines = logs.filter((l) => l.msg === 'spikard features')
    assert.equal(lines.length, 1)
    const expected = startupSummary(app.spikard.options, { trustProxy: true, bodyLimit: app.initialConfig.bodyLimit, logLevel: 'info' })
    assert.deepStrictEqual({ features: lines[0].features, off: lines[0].off }, expected.record)
    assert.ok(expected.warnings.length >= 2)
    assert.deepStrictEqual(logs.filter((l) => l.level === 40).map((l) => l.msg), expected.warnings)
  })
})
