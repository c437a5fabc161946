/**
 * Request ids: off by default; on, a well-formed incoming id is reused, anything else is
 * replaced with a UUID v4 and never reflected; the id is echoed on every response (errors
 * included) and carried by every log line of the request.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import { requestContext } from '@fastify/request-context'
import spikard from '../../src/spikard.js'
import { createServer, type CreateServerConfig } from '../../src/server.js'
import { resolveSpikardOptions } from '../../src/options.js'
import { resolveConfig } from '../../src/config/schema.js'
import { assertOptionsRefused, build, listen, rawRequest, refusal, UUID, type TestApp } from '../helpers.js'
import { uuid } from '../../plugins/request-id/uuid.js'

/** Reads the id from the request context, in an async function the handler awaits. */
async function idFromContext (): Promise<string | undefined> {
  await sleep(5)
  return requestContext.get('requestId')
}

const routes: FastifyPluginAsync = async (app) => {
  app.get('/id', async (request) => ({ id: request.id }))
  app.get('/logs', async (request) => {
    request.log.info('from request.log')
    requestContext.get('log')?.info('from requestContext log')
    const fromContext = await idFromContext()
    requestContext.get('log')?.info({ fromContext }, 'after await')
    return { id: request.id, fromContext }
  })
  app.get('/boom', async () => { throw new Error('kaput') })
  app.post('/validated', {
    schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } }
  }, async (request) => request.body)
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build(config, routes)
  t.after(() => built.app.close())
  return built
}

/** The response carries a fresh UUID (not `incoming`), the same id the handler saw. */
function assertFreshId (res: { headers: Record<string, unknown>, json: () => any, body: string }, incoming: string, header = 'x-request-id'): string {
  const id = res.headers[header]
  assert.equal(typeof id, 'string', `${header} header`)
  assert.match(id as string, UUID)
  assert.notEqual(id, incoming)
  assert.deepStrictEqual(res.json(), { id })
  if (incoming.length >= 3) {
    assert.ok(!JSON.stringify(res.headers).includes(incoming), `the incoming id ${JSON.stringify(incoming)} is reflected in the headers`)
    assert.ok(!res.body.includes(incoming), 'the incoming id is reflected in the body')
  }
  return id as string
}

// ---------------------------------------------------------------------------------------

test('false: no x-request-id header, Fastify\'s own ids in problem bodies and log lines', async (t) => {
  const { app, logs } = await setup(t, { logging: true, requestId: false })
  const notFound = await app.inject({ url: '/nowhere', headers: { 'x-request-id': 'client-chosen-id' } })
  assert.equal(notFound.statusCode, 404)
  assert.equal(notFound.headers['x-request-id'], undefined)
  assert.deepStrictEqual(notFound.json(), {
    type: 'https://spikard.dev/errors/not-found',
    title: 'Not Found',
    status: 404,
    detail: 'No route matches GET /nowhere',
    instance: '/nowhere',
    requestId: 'req-1'
  })

  const ok = await app.inject({ url: '/id', headers: { 'x-request-id': 'client-chosen-id' } })
  assert.equal(ok.statusCode, 200)
  assert.equal(ok.headers['x-request-id'], undefined)
  assert.deepStrictEqual(ok.json(), { id: 'req-2' })

  assert.deepStrictEqual(logs.map((l) => [l.msg, l.reqId]), [['request completed', 'req-1'], ['request completed', 'req-2']])
})

test('true: a well-formed incoming id is reused and echoed', async (t) => {
  const { app } = await setup(t, { requestId: true })
  for (const incoming of ['abc', 'trace-42', 'Ab.9_z:Q-1', '0af7651916cd43dd8448eb211c80319c', '6f1f5b0e-6b2a-4c8e-9a51-1d1f0c0b8f1a']) {
    const res = await app.inject({ url: '/id', headers: { 'x-request-id': incoming } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['x-request-id'], incoming)
    assert.deepStrictEqual(res.json(), { id: incoming })
  }
})

test('true: a missing id is generated as a UUID v4, a new one per request', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const first = await app.inject({ url: '/id' })
  const second = await app.inject({ url: '/id' })
  const a = assertFreshId(first, '')
  const b = assertFreshId(second, '')
  assert.notEqual(a, b)
})

test('an id of exactly 128 characters is accepted; 129 is replaced', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const max = 'a'.repeat(64) + 'B'.repeat(63) + '9'
  assert.equal(max.length, 128)
  const accepted = await app.inject({ url: '/id', headers: { 'x-request-id': max } })
  assert.equal(accepted.headers['x-request-id'], max)
  assert.deepStrictEqual(accepted.json(), { id: max })

  const tooLong = max + 'c'
  assert.equal(tooLong.length, 129)
  assertFreshId(await app.inject({ url: '/id', headers: { 'x-request-id': tooLong } }), tooLong)
})

test('malformed incoming ids are replaced with a fresh UUID and never reflected', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const malformed = [
    'has spaces in it',
    '<script>alert(1)</script>',
    '"quoted"',
    'abc%0d%0aset-cookie:%20pwned=1',
    'id;drop=1',
    'a/b/c',
    'café-id',
    '\u{1F600}-emoji-id',
    ''
  ]
  for (const incoming of malformed) {
    const res = await app.inject({ url: '/id', headers: { 'x-request-id': incoming } })
    assert.equal(res.statusCode, 200, JSON.stringify(incoming))
    assertFreshId(res, incoming)
    assert.equal(res.headers['set-cookie'], undefined)
  }
})

// ---------------------------------------------------------------------------------------
// Raw sockets: header bytes that inject() would normalise away.

function get (headerLines: string): string {
  return `GET /id HTTP/1.1\r\nHost: localhost\r\n${headerLines}Connection: close\r\n\r\n`
}

test('socket: duplicated x-request-id lines are replaced, neither value reflected', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const { port } = await listen(app)
  const res = await rawRequest(port, get('X-Request-Id: first-id\r\nX-Request-Id: second-id\r\n'))
  assert.equal(res.status, 200)
  assert.equal(res.all['x-request-id'].length, 1)
  const [id] = res.all['x-request-id']
  assert.match(id, UUID)
  assert.deepStrictEqual(JSON.parse(res.body), { id })
  assert.ok(!JSON.stringify(res).includes('first-id') && !JSON.stringify(res).includes('second-id'))
})

test('socket: non-ASCII bytes in the id are replaced', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const { port } = await listen(app)
  const res = await rawRequest(port, get('X-Request-Id: id-\xe9\xff-x\r\n'))
  assert.equal(res.status, 200)
  const [id] = res.all['x-request-id']
  assert.match(id, UUID)
  assert.deepStrictEqual(JSON.parse(res.body), { id })
})

test('socket: CR/LF smuggled into the id never splits the response', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const { port } = await listen(app)

  // A bare CR or LF inside the value: Node's parser refuses the request; the problem response carries a fresh id.
  for (const value of ['evil\rSet-Cookie: pwned=1', 'evil\nSet-Cookie: pwned=1']) {
    const res = await rawRequest(port, get(`X-Request-Id: ${value}\r\n`))
    assert.equal(res.status, 400, JSON.stringify(value))
    assert.equal(res.headers['set-cookie'], undefined)
    const [id] = res.all['x-request-id']
    assert.match(id, UUID)
    assert.equal(JSON.parse(res.body).requestId, id)
    assert.ok(!JSON.stringify(res).includes('evil'), JSON.stringify(res))
  }

  // A full CRLF only ends the header line: the rest is a request header of its own, never a response header.
  const res = await rawRequest(port, get('X-Request-Id: evil\r\nSet-Cookie: pwned=1\r\n'))
  assert.equal(res.status, 200)
  assert.equal(res.headers['set-cookie'], undefined)
  assert.deepStrictEqual(res.all['x-request-id'], ['evil'])
})

// ---------------------------------------------------------------------------------------

test('custom header: read and echoed under that name (case-insensitively), x-request-id ignored', async (t) => {
  const { app } = await setup(t, { requestId: { header: 'X-Correlation-Id' } })
  const reused = await app.inject({ url: '/id', headers: { 'x-correlation-id': 'corr-1', 'x-request-id': 'other-1' } })
  assert.equal(reused.headers['x-correlation-id'], 'corr-1')
  assert.equal(reused.headers['x-request-id'], undefined)
  assert.deepStrictEqual(reused.json(), { id: 'corr-1' })

  const onlyDefault = await app.inject({ url: '/id', headers: { 'x-request-id': 'other-2' } })
  assertFreshId(onlyDefault, 'other-2', 'x-correlation-id')
  assert.equal(onlyDefault.headers['x-request-id'], undefined)

  assertFreshId(await app.inject({ url: '/id', headers: { 'x-correlation-id': 'not ok' } }), 'not ok', 'x-correlation-id')

  // Requests rejected before routing echo the custom header too.
  const badUrl = await app.inject({ url: '/%zz', headers: { 'x-correlation-id': 'corr-2' } })
  assert.equal(badUrl.statusCode, 400)
  assert.equal(badUrl.headers['x-correlation-id'], 'corr-2')
  assert.equal(badUrl.json().requestId, 'corr-2')
})

test('trustIncoming: false always generates, even for a well-formed incoming id', async (t) => {
  const { app } = await setup(t, { requestId: { trustIncoming: false } })
  assertFreshId(await app.inject({ url: '/id', headers: { 'x-request-id': 'trace-42' } }), 'trace-42')
  assertFreshId(await app.inject({ url: '/id' }), '')
})

test('echoed on error responses (404, 500, 422, 400 bad URL), equal to the problem requestId', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const cases = [
    { url: '/nowhere', method: 'GET' as const, status: 404 },
    { url: '/boom', method: 'GET' as const, status: 500 },
    { url: '/validated', method: 'POST' as const, status: 422, payload: { nickname: 'x' } },
    { url: '/%zz', method: 'GET' as const, status: 400 }
  ]
  for (const { url, method, status, payload } of cases) {
    const reused = await app.inject({ url, method, payload, headers: { 'x-request-id': `trace-${status}` } })
    assert.equal(reused.statusCode, status, url)
    assert.equal(reused.headers['x-request-id'], `trace-${status}`, url)
    assert.equal(reused.json().requestId, `trace-${status}`, url)

    const generated = await app.inject({ url, method, payload })
    assert.equal(generated.statusCode, status, url)
    assert.match(generated.headers['x-request-id'] as string, UUID)
    assert.equal(generated.json().requestId, generated.headers['x-request-id'], url)
  }
})

test('the id is on every log line of the request: access line, request.log, requestContext log, after an await', async (t) => {
  const { app, logs } = await setup(t, { requestContext: true, requestId: true, logging: true })
  const res = await app.inject({ url: '/logs', headers: { 'x-request-id': 'trace-logs' } })
  assert.equal(res.statusCode, 200)
  assert.deepStrictEqual(res.json(), { id: 'trace-logs', fromContext: 'trace-logs' })
  assert.deepStrictEqual(logs.map((l) => [l.msg, l.reqId]), [
    ['from request.log', 'trace-logs'],
    ['from requestContext log', 'trace-logs'],
    ['after await', 'trace-logs'],
    ['request completed', 'trace-logs']
  ])
  assert.equal(logs[2].fromContext, 'trace-logs')

  // A generated id, and concurrent requests do not see each other's context.
  logs.length = 0
  const [a, b] = await Promise.all([app.inject({ url: '/logs' }), app.inject({ url: '/logs' })])
  for (const r of [a, b]) {
    const id = r.headers['x-request-id'] as string
    assert.match(id, UUID)
    assert.deepStrictEqual(r.json(), { id, fromContext: id })
    assert.equal(logs.filter((l) => l.reqId === id).length, 4)
  }
  assert.notEqual(a.headers['x-request-id'], b.headers['x-request-id'])
  assert.equal(logs.length, 8)

  // The failure line of a 500 carries the id as well.
  logs.length = 0
  const boom = await app.inject({ url: '/boom', headers: { 'x-request-id': 'trace-boom' } })
  assert.equal(boom.statusCode, 500)
  assert.deepStrictEqual(logs.map((l) => [l.msg, l.reqId]), [['request failed', 'trace-boom'], ['request completed', 'trace-boom']])
})

// ---------------------------------------------------------------------------------------

const invalid: Array<{ options: unknown, problems: string[] }> = [
  {
    options: { header: 'bad header' },
    problems: ['requestId.header: expected a header name, found "bad header"']
  },
  { options: { trustIncoming: 'yes' }, problems: ['requestId.trustIncoming: expected true or false, found "yes"'] },
  { options: { headr: 'x-id' }, problems: ['requestId.headr: unknown key (did you mean "header"?)'] },
  { options: 'on', problems: ['requestId: expected true, false or an options object, found "on"'] }
]

test('invalid options fail at createServer and at ready(), naming the key path', async () => {
  for (const { options, problems } of invalid) await assertOptionsRefused('requestId', options, problems)
})

test('the API key\'s header as the request id\'s (case-insensitively) is refused at startup, naming both keys, in code and in a config file', async () => {
  const KEY = 'key-' + 'k'.repeat(28)
  const clash = (header: string): string => `requestId.header: ${header} is auth.apiKey.header too: a client's API key would become its request id, sent back on every response and logged unmasked; give each its own header`
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ requestId: { header: 'X-Api-Key' }, auth: { apiKey: { keys: [KEY] } } }, clash('X-Api-Key')],
    [{ auth: { apiKey: { keys: [KEY], header: 'X-Request-ID' } } }, clash('x-request-id')],
    [{ requestId: { header: 'x-client-key', trustIncoming: false }, auth: { jwt: { secret: 's'.repeat(32) }, apiKey: { keys: [KEY], header: 'X-Client-Key' } } }, clash('x-client-key')]
  ]
  for (const [options, problem] of cases) {
    assert.deepEqual(refusal(() => resolveSpikardOptions(options)), [problem])
    assert.deepEqual(refusal(() => resolveConfig(options)), [problem])
    await assert.rejects(createServer({ ...options, server: { logger: { level: 'silent' } } } as CreateServerConfig), { problems: [problem] })
    const app = Fastify()
    app.register(spikard, options)
    await assert.rejects(async () => { await app.ready() }, (error: unknown) => {
      assert.ok(error instanceof Error)
      assert.equal(error.message, `Invalid spikard options:\n  - ${problem}`)
      return true
    })
    await app.close()
  }
  // Request ids off, or each on its own header: nothing to clash with.
  for (const options of [{ requestId: false, auth: { apiKey: { keys: [KEY], header: 'x-request-id' } } }, { requestId: { header: 'x-correlation-id' }, auth: { apiKey: { keys: [KEY] } } }]) {
    assert.doesNotThrow(() => resolveSpikardOptions(options))
  }
})

test('a header that carries secrets (one the logs mask) as the request id\'s is refused at startup, in code and in a config file', async () => {
  const refused = (header: string): string => `requestId.header: ${header} carries secrets (the logs mask it): its value would become the request id, sent back on every response and logged unmasked; choose another header`
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ requestId: { header: 'Authorization' } }, refused('Authorization')],
    [{ requestId: { header: 'cookie' } }, refused('cookie')],
    [{ requestId: { header: 'x-api-key' } }, refused('x-api-key')],
    [{ requestId: { header: 'X-Auth-Token' } }, refused('X-Auth-Token')],
    [{ requestId: { header: 'x-trace' }, logging: { redactHeaders: ['X-Trace'] } }, refused('x-trace')]
  ]
  for (const [options, problem] of cases) {
    assert.deepEqual(refusal(() => resolveSpikardOptions(options)), [problem])
    assert.deepEqual(refusal(() => resolveConfig(options)), [problem])
    await assert.rejects(createServer({ ...options, server: { logger: { level: 'silent' } } } as CreateServerConfig), { problems: [problem] })
  }
  for (const header of ['x-correlation-id', 'traceparent', 'x-amzn-trace-id']) assert.doesNotThrow(() => resolveSpikardOptions({ requestId: { header } }))
})

test('spikard on a user-made Fastify with requestIdHeader set fails at ready() with a clear message', async () => {
  const app = Fastify({ requestIdHeader: 'x-request-id' })
  try {
    app.register(spikard, { requestId: true })
    await assert.rejects(async () => { await app.ready() }, (error: unknown) => {
      assert.ok(error instanceof Error)
      assert.equal(error.message,
        'requestId: Fastify was created with requestIdHeader "x-request-id"; remove it and set requestId.header instead, so malformed ids are replaced')
      return true
    })
  } finally {
    await app.close()
  }

  // The same instance without spikard's request ids is fine.
  const off = Fastify({ requestIdHeader: 'x-request-id' })
  try {
    off.register(spikard, { requestId: false, shutdown: { signals: false } })
    await off.ready()
  } finally {
    await off.close()
  }
})

test('spikard on a user-made Fastify without requestIdHeader: ids validated and echoed', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  app.register(spikard, { requestId: true })
  app.register(routes)
  const reused = await app.inject({ url: '/id', headers: { 'x-request-id': 'trace-own' } })
  assert.equal(reused.headers['x-request-id'], 'trace-own')
  assert.deepStrictEqual(reused.json(), { id: 'trace-own' })
  assertFreshId(await app.inject({ url: '/id', headers: { 'x-request-id': '<b>x</b>' } }), '<b>x</b>')
})

test('your own genReqId (the Fastify option, or setGenReqId before spikard) makes the ids spikard would make a UUID for; a well-formed incoming id still comes first', async (t) => {
  let made = 0
  const mine = function (this: unknown) { return `mine-${++made}` }
  const byOption = Fastify({ genReqId: mine })
  const bySetter = Fastify().setGenReqId(mine)
  for (const app of [byOption, bySetter]) {
    made = 0
    t.after(() => app.close())
    app.register(spikard, { requestId: true, shutdown: { signals: false } })
    app.register(routes)
    const fresh = await app.inject('/id')
    assert.deepStrictEqual([fresh.headers['x-request-id'], fresh.json()], ['mine-1', { id: 'mine-1' }])
    const reused = await app.inject({ url: '/id', headers: { 'x-request-id': 'trace-own' } })
    assert.deepStrictEqual([reused.headers['x-request-id'], reused.json()], ['trace-own', { id: 'trace-own' }])
    const replaced = await app.inject({ url: '/id', headers: { 'x-request-id': '<b>x</b>' } })
    assert.deepStrictEqual([replaced.headers['x-request-id'], replaced.json()], ['mine-2', { id: 'mine-2' }])
    // Problems carry it too.
    const missing = await app.inject('/nowhere')
    assert.deepStrictEqual([missing.headers['x-request-id'], missing.json().requestId], ['mine-3', 'mine-3'])
  }
  // trustIncoming: false: yours, always.
  const always = Fastify({ genReqId: () => 'always-mine' })
  t.after(() => always.close())
  always.register(spikard, { requestId: { trustIncoming: false }, shutdown: { signals: false } })
  always.register(routes)
  const ignored = await always.inject({ url: '/id', headers: { 'x-request-id': 'trace-own' } })
  assert.deepStrictEqual([ignored.headers['x-request-id'], ignored.json()], ['always-mine', { id: 'always-mine' }])
  // Without one of yours: UUIDs, not Fastify's counter.
  const plain = Fastify()
  t.after(() => plain.close())
  plain.register(spikard, { requestId: true, shutdown: { signals: false } })
  plain.register(routes)
  assert.match((await plain.inject('/id')).json().id, UUID)
})

test('an onRequest hook of yours added before spikard throws: its problem carries the id header too', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  // Added before spikard, it runs before spikard's own onRequest hooks.
  app.addHook('onRequest', async (request) => {
    if (request.url === '/thrown') throw Object.assign(new Error('Not for you'), { statusCode: 403 })
  })
  app.register(spikard, { requestId: { header: 'X-Trace-Id' }, shutdown: { signals: false } })
  app.get('/thrown', async () => 'never')
  const thrown = await app.inject({ url: '/thrown', headers: { 'x-trace-id': 'trace-2' } })
  assert.equal(thrown.statusCode, 403)
  assert.equal(thrown.headers['x-trace-id'], 'trace-2')
  assert.equal(thrown.json().requestId, 'trace-2')
})

test('generated ids are random version 4 UUIDs, all different, across refills of the entropy pool', () => {
  const ids = new Set<string>()
  // Every hex digit shows up in every random position over this many ids, and the version
  // and variant digits are the only fixed ones.
  const seen = Array.from({ length: 36 }, () => new Set<string>())
  for (let i = 0; i < 5000; i++) {
    const id = uuid()
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    ids.add(id)
    for (let c = 0; c < 36; c++) seen[c].add(id[c])
  }
  assert.equal(ids.size, 5000)
  const sizes = seen.map((s) => s.size)
  assert.deepEqual(sizes, [...'xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx'].map((c) => c === 'x' ? 16 : c === '8' ? 4 : 1))
})
