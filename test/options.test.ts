import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import spikard, { SpikardConfigError, parseDuration, parseSize, resolveSpikardOptions } from '../src/index.js'
import { Duration, Size, validate } from '../src/schema.js'
import { Type } from '@sinclair/typebox'
import { resolveConfig } from '../src/config/schema.js'
import { refusal as problems } from './helpers.js'

test('durations: milliseconds or strings with ms, s, m, h', () => {
  assert.equal(parseDuration(250), 250)
  assert.equal(parseDuration('500ms'), 500)
  assert.equal(parseDuration('30s'), 30_000)
  assert.equal(parseDuration('1.5s'), 1500)
  assert.equal(parseDuration('1m'), 60_000)
  assert.equal(parseDuration('2h'), 7_200_000)
  const schema = Type.Object({ t: Duration({ description: 'x', default: '30s' }) })
  assert.deepEqual(validate(schema, {}), { t: 30_000 })
  assert.deepEqual(validate(schema, { t: '2m' }), { t: 120_000 })
  assert.deepEqual(problems(() => validate(schema, { t: 'soon' })),
    ['t: expected a duration (milliseconds, or a string such as "500ms", "30s", "1m"), found "soon"'])
  assert.deepEqual(problems(() => validate(schema, { t: -5 })).length, 1)
})

test('a duration longer than a timer can wait (2^31-1 ms) is refused for every timer; a rate-limit window may be longer', () => {
  // Node would fire such a timer after 1 ms: a ping every millisecond, every stream cut at once.
  assert.deepEqual(problems(() => resolveSpikardOptions({
    websocket: { heartbeat: '600h' }, stream: { idleTimeout: 2 ** 31 }, tasks: { retryDelay: '25000h' }, timeout: { keepAlive: '600h' }
  })), [
    'tasks.retryDelay: must not exceed 2147483647 ms (about 24 days), found 90000000000 ms',
    'timeout.keepAlive: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms',
    'stream.idleTimeout: must not exceed 2147483647 ms (about 24 days), found 2147483648 ms',
    'websocket.heartbeat: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms'
  ])
  assert.equal(resolveSpikardOptions({ websocket: { heartbeat: 2 ** 31 - 1 } }).websocket !== false, true)
  // A feature's duration shorthand says the same, not "expected ... a duration, found "600h"".
  assert.deepEqual(problems(() => resolveSpikardOptions({ timeout: '600h', stream: 2 ** 31, shutdown: '2147483.648s' })), [
    'shutdown: must not exceed 2147483647 ms (about 24 days), found 2147483648 ms',
    'timeout: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms',
    'stream: must not exceed 2147483647 ms (about 24 days), found 2147483648 ms'
  ])
  assert.equal((resolveSpikardOptions({ timeout: '2147483647ms' }).timeout as { handler: number }).handler, 2 ** 31 - 1)
  const { rateLimit } = resolveSpikardOptions({ rateLimit: { max: 1000, timeWindow: '720h' } })
  assert.equal(rateLimit !== false && rateLimit.timeWindow, 2_592_000_000)
})

test('sizes: bytes or strings with b, kb, mb, gb (binary units)', () => {
  assert.equal(parseSize(10), 10)
  assert.equal(parseSize('512kb'), 524_288)
  assert.equal(parseSize('1mb'), 1_048_576)
  assert.equal(parseSize('1MB'), 1_048_576)
  const schema = Type.Object({ s: Size({ description: 'x', default: '1mb' }) })
  assert.deepEqual(validate(schema, {}), { s: 1_048_576 })
  assert.deepEqual(problems(() => validate(schema, { s: '1 tb' })),
    ['s: expected a size (bytes, or a string such as "512kb", "1mb"), found "1 tb"'])
})

/** Every feature with its defaults, as `register(spikard)` alone resolves them (outside production). */
const DEFAULTS = {
  openapi: { json: '/openapi.json', yaml: '/openapi.yaml', docs: '/docs', redoc: '/redoc', info: {}, servers: [], tags: [], auth: false },
  asyncapi: { json: '/asyncapi.json', yaml: '/asyncapi.yaml', docs: '/asyncapi', info: {}, servers: [], tags: [], auth: false },
  requestContext: false,
  requestId: { header: 'x-request-id', trustIncoming: true },
  logging: { level: 'info', headers: false, redactHeaders: [], redactQuery: [] },
  cors: false,
  shutdown: resolveSpikardOptions({ shutdown: true }).shutdown,
  tasks: { concurrency: 10, maxQueued: 1000, timeout: 30_000, retries: 0, retryDelay: 1000 },
  health: { liveness: '/livez', readiness: '/readyz' },
  timeout: resolveSpikardOptions({ timeout: true }).timeout,
  rateLimit: false,
  auth: false,
  bodyLimit: { max: 1_048_576, decode: true },
  stream: { idleTimeout: 0 },
  sse: { keepAlive: 15_000, maxConnections: 10_000, maxBuffered: 4 * 1024 * 1024, shutdownEvent: { event: 'shutdown', data: 'server shutting down', retry: 1000 } },
  websocket: { origins: [], heartbeat: 30_000, maxConnections: 10_000, maxPayload: 1_048_576, maxBuffered: 4_194_304 },
  static: false,
  compression: { encodings: ['br', 'gzip'], threshold: 1024, brotliQuality: 4, gzipLevel: 6 }
}

test('absent, a feature takes its default state: production features on, auth, cors, rateLimit, requestContext and static off', () => {
  assert.deepEqual(resolveSpikardOptions({}), DEFAULTS)
  assert.deepEqual(resolveSpikardOptions(undefined), DEFAULTS)
  const off = Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, false]))
  assert.deepEqual(resolveSpikardOptions(off), off)
  assert.equal(typeof DEFAULTS.shutdown, 'object')
  assert.equal(typeof DEFAULTS.timeout, 'object')
})

test('NODE_ENV=production turns openapi and asyncapi off when their key is absent, and only then; in code and in a config file', (t) => {
  const nodeEnv = process.env.NODE_ENV
  t.after(() => {
    if (nodeEnv === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = nodeEnv
  })
  process.env.NODE_ENV = 'development'
  const config = resolveConfig({})
  assert.deepEqual(config.openapi, DEFAULTS.openapi)
  assert.deepEqual(config.asyncapi, DEFAULTS.asyncapi)
  process.env.NODE_ENV = 'production'
  // Absent: off, and nothing else changes.
  assert.deepEqual(resolveSpikardOptions({}), { ...DEFAULTS, openapi: false, asyncapi: false })
  assert.deepEqual(resolveConfig({}), { ...config, openapi: false, asyncapi: false })
  // Set: as given, on with its defaults or its options; each independently of the other.
  assert.deepEqual(resolveSpikardOptions({ openapi: true }).openapi, DEFAULTS.openapi)
  assert.deepEqual(resolveConfig({ openapi: true }).openapi, DEFAULTS.openapi)
  assert.deepEqual(resolveConfig({ openapi: 'true' }, { coerce: true }).openapi, DEFAULTS.openapi)
  assert.deepEqual(resolveSpikardOptions({ openapi: { docs: false } }).openapi, { ...DEFAULTS.openapi, docs: false })
  assert.equal(resolveSpikardOptions({ openapi: false }).openapi, false)
  assert.equal(resolveSpikardOptions({ openapi: true }).asyncapi, false)
  assert.deepEqual(resolveSpikardOptions({ asyncapi: true }).asyncapi, DEFAULTS.asyncapi)
  assert.equal(resolveSpikardOptions({ asyncapi: true }).openapi, false)
  assert.deepEqual(resolveConfig({ asyncapi: true }).asyncapi, DEFAULTS.asyncapi)
  assert.deepEqual(resolveConfig({ asyncapi: 'true' }, { coerce: true }).asyncapi, DEFAULTS.asyncapi)
  assert.deepEqual(resolveSpikardOptions({ asyncapi: { docs: false } }).asyncapi, { ...DEFAULTS.asyncapi, docs: false })
  assert.equal(resolveSpikardOptions({ asyncapi: false }).asyncapi, false)
  // Read when options are resolved, not once: outside production the default is on again.
  process.env.NODE_ENV = 'development'
  assert.deepEqual(resolveSpikardOptions({}).openapi, DEFAULTS.openapi)
  assert.deepEqual(resolveSpikardOptions({}).asyncapi, DEFAULTS.asyncapi)
})

test('a scalar sets a feature\'s main option, the others keep their defaults: bodyLimit, timeout, shutdown, rateLimit', () => {
  const o = resolveSpikardOptions({ bodyLimit: '512kb', timeout: '10s', shutdown: '20s', rateLimit: 50 })
  assert.deepEqual(o.bodyLimit, { max: 524_288, decode: true })
  assert.deepEqual(o.timeout, { ...(DEFAULTS.timeout as object), handler: 10_000 })
  assert.deepEqual(o.shutdown, { ...(DEFAULTS.shutdown as object), timeout: 20_000 })
  assert.deepEqual(o.rateLimit, { ...(resolveSpikardOptions({ rateLimit: true }).rateLimit as object), max: 50 })
  // Objects keep working, and a bad scalar names what it would have set.
  assert.deepEqual(resolveSpikardOptions({ bodyLimit: { max: '2mb' } }).bodyLimit, { max: 2_097_152, decode: true })
  assert.deepEqual(problems(() => resolveSpikardOptions({ bodyLimit: 'huge', timeout: 'soon' })), [
    'timeout: expected true, false, an options object or a duration (milliseconds, or a string such as "500ms", "30s", "1m") (its handler), found "soon"',
    'bodyLimit: expected true, false, an options object or a size (bytes, or a string such as "512kb", "1mb") of at least 1 byte (its max), found "huge"'
  ])
  // Features without a shorthand take no scalar.
  assert.deepEqual(problems(() => resolveSpikardOptions({ health: '/health' })), ['health: expected true, false or an options object, found "/health"'])
})

test('a feature is off when false, on with defaults when true, on with options when an object', () => {
  assert.deepEqual(resolveSpikardOptions({ requestId: true, logging: false }).requestId, { header: 'x-request-id', trustIncoming: true })
  assert.deepEqual(resolveSpikardOptions({ requestId: { header: 'x-trace' } }).requestId, { header: 'x-trace', trustIncoming: true })
  assert.deepEqual(resolveSpikardOptions({ logging: { level: 'debug' } }).logging, { level: 'debug', headers: false, redactHeaders: [], redactQuery: [] })
})

test('bad options list every problem with its key path, what was expected and what was found', () => {
  assert.deepEqual(problems(() => resolveSpikardOptions({ requestId: { hedaer: 'x' }, loging: true, logging: 'yes' })), [
    'loging: unknown key (did you mean "logging"?)',
    'requestId.hedaer: unknown key (did you mean "header"?)',
    'logging: expected true, false or an options object, found "yes"'
  ])
  assert.deepEqual(problems(() => resolveSpikardOptions({ logging: { level: 'loud', redactQuery: [1] } })), [
    'logging.level: expected "fatal", "error", "warn", "info", "debug", "trace" or "silent", found "loud"',
    'logging.redactQuery[0]: expected a string, found 1'
  ])
  assert.deepEqual(problems(() => resolveSpikardOptions({ zzzzzz: 1 })), ['zzzzzz: unknown key'])
  assert.deepEqual(problems(() => resolveSpikardOptions([])), ['(root): expected an object, found []'])
})

test('a map of names (Type.Record) checks each key and each value; objects told apart by a literal key report the branch the value names', () => {
  const Pet = Type.Union([
    Type.Object({ kind: Type.Literal('cat'), lives: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
    Type.Object({ kind: Type.Literal('dog'), breed: Type.String() }, { additionalProperties: false })
  ], { expected: 'a pet' })
  const Pets = Type.Record(Type.String({ pattern: '^[a-z]+$' }), Pet, { expectedKey: 'a lowercase name' })
  const pets = { tom: { kind: 'cat', lives: 9 }, rex: { kind: 'dog', breed: 'boxer' } }
  assert.deepEqual(validate(Pets, pets), pets)
  assert.deepEqual(problems(() => validate(Pets, { Tom: { kind: 'cat', lives: 9 }, felix: { kind: 'cat', lives: 0 }, rex: { kind: 'dog', bred: 'boxer' }, nemo: { kind: 'fish' }, x: 'cat' }, { path: 'pets' })), [
    'pets.Tom: expected a lowercase name as the key',
    'pets.felix.lives: expected an integer >= 1, found 0',
    'pets.rex.bred: unknown key (did you mean "breed"?)',
    'pets.rex.breed: required, expected a string',
    'pets.nemo: expected a pet, found {"kind":"fish"}',
    'pets.x: expected a pet, found "cat"'
  ])
  assert.deepEqual(problems(() => validate(Pets, [])), ['(root): expected an object of pets, found []'])
  // An own key only: a prototype's is no name of the map.
  assert.deepEqual(Object.keys(validate(Type.Record(Type.String(), Type.String()), JSON.parse('{"__proto__": "x"}') as object)), ['__proto__'])
})

test('strings are coerced to the expected type only when asked (config files), never for options in code', () => {
  const config = resolveConfig({ server: { port: '9000', logger: { pretty: 'true' } }, requestId: 'false' }, { coerce: true })
  assert.equal(config.server.port, 9000)
  assert.equal(config.server.logger.pretty, true)
  assert.equal(config.requestId, false)
  assert.deepEqual(problems(() => resolveConfig({ server: { port: '9000' } })), ['server.port: expected an integer >= 0 and <= 65535, found "9000"'])
  assert.deepEqual(problems(() => resolveConfig({ server: { port: '80a' } }, { coerce: true })), ['server.port: expected an integer >= 0 and <= 65535, found "80a"'])
})

test('options passed in code fail at ready() with the key path', async () => {
  const app = Fastify()
  app.register(spikard, { requestId: { trustIncoming: 'yes' } } as never)
  await assert.rejects(async () => await app.ready(), (error: Error) => {
    assert.ok(error instanceof SpikardConfigError)
    assert.match(error.message, /requestId\.trustIncoming: expected true or false, found "yes"/)
    return true
  })
})

test('resolved options are visible on the instance, defaults filled in', async () => {
  const app = Fastify()
  await app.register(spikard, { requestId: true })
  assert.deepEqual(app.spikard.options, DEFAULTS)
  await app.close()
})

test('a malformed secret is described in the problem, never echoed (HMAC secrets, API keys, the Redis URL)', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ auth: { jwt: { secret: [{ kid: 'k1', kye: 'hs-secret-value-0123456789abcdef' }] } } }, /^auth\.jwt\.secret: expected .*, found a list \(not shown: it may hold a secret\)$/],
    [{ auth: { jwt: { secret: 1234567890123456 } } }, /^auth\.jwt\.secret: expected a secret, or a list of secrets and \{ kid, key \} objects, found a number \(not shown: it may hold a secret\)$/],
    [{ auth: { apiKey: { keys: 'api-key-value-0123456789' } } }, /^auth\.apiKey\.keys: expected .*, found a string \(not shown: it may hold a secret\)$/],
    [{ rateLimit: { redis: 'http://user:redis-password-value@host:6379' } }, /^rateLimit\.redis: expected a Redis URL .*, found a string \(not shown: it may hold a secret\)$/]
  ]
  for (const [options, expected] of cases) {
    const found = problems(() => resolveSpikardOptions(options))
    assert.equal(found.length, 1, JSON.stringify(found))
    assert.match(found[0], expected)
    assert.doesNotMatch(found[0], /value|1234567890/)
  }
  // Elsewhere the value is still shown, which is what makes the message useful.
  assert.throws(() => resolveSpikardOptions({ rateLimit: { max: 'ten' } }), /rateLimit\.max: expected .*, found "ten"/)
})
