/**
 * The test client, `spikard/testing`, tested with itself: apps built from options, from a
 * Fastify instance and from a config file (the demo's); every HTTP method and request
 * option over inject(); JSON, text and problem bodies with their failure messages; JWTs
 * (HS from the config, RS and ES from a private key) and API keys the app accepts; event
 * streams and streamed bodies over a real socket; and a close that names what was left open.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { get, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { createTestClient, createTestApp, type TestClient } from '../src/testing/index.js'
import { EventStreamParser, type TestSseEvent } from '../src/testing/sockets.js'
import spikard from '../src/spikard.js'

/** What the /later route's tasks finished, in order. */
const done: number[] = []

const SECRET = 'a-test-secret-of-at-least-32-bytes-0123456789'
const API_KEY = 'test-api-key-0123456789abcdef'

async function routes (app: FastifyInstance): Promise<void> {
  app.route({
    method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/echo',
    config: { auth: false },
    handler: async (request) => ({ method: request.method, query: request.query, body: request.body ?? null, cookie: request.headers.cookie ?? null, custom: request.headers['x-custom'] ?? null })
  })
  app.get('/text', { config: { auth: false } }, async (_request, reply) => reply.type('text/plain').send('plain words'))
  app.post('/later', { config: { auth: false } }, async (request) => {
    const { ms } = request.body as { ms: number }
    request.tasks.add(async function later (ctx) { await setTimeout(ms, undefined, { signal: ctx.signal }).catch(() => {}); done.push(ms) })
    return { queued: true }
  })
  app.get('/me', async (request) => ({ identity: request.identity, claims: request.user }))
  app.get('/numbers', { config: { auth: false } }, async function * () {
    for (let i = 1; i <= 3; i++) yield `${i}\n`
  })
  app.get('/events', { sse: true, config: { auth: false } }, async (request, reply) => {
    await reply.sse.send({ id: '1', event: 'greeting', data: { hello: 'world' } })
    await reply.sse.send({ id: '2', data: 'two\nlines' })
    await reply.sse.send({ data: `resumed after ${String(request.headers['last-event-id'] ?? 'nothing')}`, retry: 500 })
    reply.sse.close()
  })
  app.get('/ws', {
    websocket: true,
    config: { auth: false, websocket: { receive: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } } }
  }, (socket) => {
    socket.on('message', (data) => { socket.sendJson({ echoed: (JSON.parse(data.toString()) as { text: string }).text }) })
  })
  app.get('/ws-private', { websocket: true }, (socket) => { socket.sendJson({ hello: 'member' }) })
  app.get('/forever', { sse: true, config: { auth: false } }, async (_request, reply) => {
    reply.sse.keepAlive()
    await reply.sse.send({ data: 'open' })
  })
}

const { privateKey: rsaPrivate, publicKey: rsaPublic } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const { privateKey: ecPrivate, publicKey: ecPublic } = generateKeyPairSync('ec', { namedCurve: 'P-256' })

async function setup (t: { after: (fn: () => Promise<void>) => void }): Promise<TestClient> {
  const client = await createTestClient({
    auth: {
      jwt: { algorithms: ['HS256', 'RS256', 'ES256'], secret: SECRET, publicKey: [rsaPublic.export({ type: 'spki', format: 'pem' }).toString(), ecPublic.export({ type: 'spki', format: 'pem' }).toString()], audience: 'tests', issuer: 'me' },
      apiKey: { keys: [{ name: 'ci', key: API_KEY }, { name: 'hashed', sha256: 'a'.repeat(64) }] }
    },
    app: routes
  })
  t.after(async () => await client.close())
  return client
}

test('every method, with query, headers, a JSON or raw body and cookies, over inject()', async (t) => {
  const client = await setup(t)
  const got = await client.get('/echo', { query: { q: 'a b', tags: ['x', 'y'] }, headers: { 'x-custom': 'yes' }, cookies: { session: 's1' } })
  assert.equal(got.status, 200)
  assert.deepEqual(got.json(), { method: 'GET', query: { q: 'a b', tags: ['x', 'y'] }, body: null, cookie: 'session=s1', custom: 'yes' })
  for (const method of ['post', 'put', 'patch', 'delete'] as const) {
    const res = await client[method]('/echo', { json: { n: 1 } })
    assert.deepEqual(res.json<{ method: string, body: unknown }>().body, { n: 1 }, method)
    assert.equal(res.json<{ method: string }>().method, method.toUpperCase())
  }
  const raw = await client.post('/echo', { body: '{"raw":true}', headers: { 'content-type': 'application/json' } })
  assert.deepEqual(raw.json<{ body: unknown }>().body, { raw: true })
  // Both: which one was meant cannot be told, so neither is sent.
  for (const [json, body] of [[{ n: 1 }, '{"raw":true}'], [null, Buffer.from('x')], [0, '']] as const) {
    await assert.rejects(client.post('/echo', { json, body }), { name: 'TypeError', message: 'POST /echo: options.json and options.body are both set; pass one (json is sent as JSON, body as it is)' })
  }
  await assert.rejects(client.withHeaders({ 'x-custom': 'yes' }).request('PUT', '/echo', { json: {}, body: '{}' }), { name: 'TypeError', message: /^PUT \/echo: options\.json and options\.body are both set/ })
  // An absent one is no conflict.
  assert.deepEqual((await client.post('/echo', { json: { n: 2 }, body: undefined })).json<{ body: unknown }>().body, { n: 2 })
  assert.equal((await client.options('/echo')).json<{ method: string }>().method, 'OPTIONS')
  const head = await client.head('/text')
  assert.equal(head.status, 200)
  assert.equal(head.text(), '')
  assert.equal((await client.get('/text')).text(), 'plain words')
})

test('response headers as a real Node client reads them: set-cookie always a list, a repeated header joined, or its first kept', async (t) => {
  const client = await createTestClient({
    app: async (app) => {
      app.get('/headers', async (_request, reply) => {
        reply.header('set-cookie', 'sid=1; HttpOnly')
        reply.raw.setHeader('x-many', ['a', 'b'])
        reply.raw.setHeader('location', ['/first', '/second'])
        return 'ok'
      })
    }
  })
  t.after(async () => await client.close())
  const expected = { 'set-cookie': ['sid=1; HttpOnly'], 'x-many': 'a, b', location: '/first' }
  // The same route read by node:http over a real socket.
  await client.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = client.app.server.address() as { port: number }
  const real = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/headers', agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.headers)) }).on('error', reject)
  })
  const injected = (await client.get('/headers')).headers
  for (const [name, value] of Object.entries(expected)) {
    assert.deepStrictEqual(real[name], value, `real socket: ${name}`)
    assert.deepStrictEqual(injected[name], value, `test client: ${name}`)
  }
})

test('json with a Content-Type of the test\'s own, in any case, from headers or withHeaders: that one is sent', async (t) => {
  const client = await createTestClient({
    app: async (app) => {
      app.addContentTypeParser('application/merge-patch+json', { parseAs: 'string' }, (_request, body, done) => { done(null, JSON.parse(body as string)) })
      app.patch('/item', async (request) => ({ type: request.headers['content-type'], body: request.body }))
    }
  })
  t.after(async () => await client.close())
  const patch = { name: null }
  for (const name of ['content-type', 'Content-Type', 'CONTENT-TYPE']) {
    const direct = await client.patch('/item', { json: patch, headers: { [name]: 'application/merge-patch+json' } })
    assert.deepEqual(direct.json(), { type: 'application/merge-patch+json', body: patch }, name)
    const derived = await client.withHeaders({ [name]: 'application/merge-patch+json' }).patch('/item', { json: patch })
    assert.deepEqual(derived.json(), { type: 'application/merge-patch+json', body: patch }, `withHeaders ${name}`)
  }
  assert.equal((await client.patch('/item', { json: patch })).json<{ type: string }>().type, 'application/json')
})

test('json() and problem() say what came back when the body is not what they read', async (t) => {
  const client = await setup(t)
  const text = await client.get('/text')
  assert.throws(() => text.json(), { message: 'GET /text: expected a JSON body, got "plain words" (status 200, content-type text/plain)' })
  assert.throws(() => text.problem(), { message: 'GET /text: expected application/problem+json, got text/plain (status 200): "plain words"' })
  const missing = await client.get('/nowhere')
  assert.equal(missing.status, 404)
  assert.deepEqual({ ...missing.problem(), requestId: undefined }, {
    type: 'https://spikard.dev/errors/not-found',
    title: 'Not Found',
    status: 404,
    detail: 'No route matches GET /nowhere',
    instance: '/nowhere',
    requestId: undefined
  })
})

test('withJwt: a token the app accepts, HS from the configured secret or RS/ES from a private key, with iat, exp, aud and iss filled in', async (t) => {
  const client = await setup(t)
  assert.equal((await client.get('/me')).status, 401)
  const before = Math.floor(Date.now() / 1000)
  const me = await client.withJwt({ sub: 'ada', role: 'admin' }).get('/me')
  assert.equal(me.status, 200)
  const { claims } = me.json<{ claims: Record<string, unknown> }>()
  assert.deepEqual({ ...claims, iat: undefined, exp: undefined }, { sub: 'ada', role: 'admin', aud: 'tests', iss: 'me', iat: undefined, exp: undefined })
  assert.ok((claims.iat as number) >= before && (claims.exp as number) === (claims.iat as number) + 3600)
  // Claims the test sets win: an expired token is refused.
  assert.equal((await client.withJwt({ sub: 'ada', exp: before - 60 }).get('/me')).status, 401)
  assert.equal((await client.withJwt({ sub: 'rs' }, { privateKey: rsaPrivate.export({ type: 'pkcs8', format: 'pem' }).toString() }).get('/me')).status, 200)
  assert.equal((await client.withJwt({ sub: 'es' }, { privateKey: ecPrivate }).get('/me')).status, 200)
  assert.throws(() => client.withJwt({}, { algorithm: 'HS512' }), { message: 'withJwt(): no algorithm for this key among auth.jwt.algorithms (HS256, RS256, ES256): HS512 is not one of them' })
})

test('withApiKey: the first configured key in the configured header, or the one given; withHeaders adds to every request', async (t) => {
  const client = await setup(t)
  const me = await client.withApiKey().get('/me')
  assert.equal(me.status, 200)
  assert.deepEqual(me.json<{ identity: unknown }>().identity, { scheme: 'apiKey', id: 'ci' })
  assert.equal((await client.withApiKey('not-a-configured-key-000000').get('/me')).status, 401)
  const both = client.withApiKey().withHeaders({ 'x-custom': 'kept' })
  assert.equal((await both.get('/echo')).json<{ custom: string }>().custom, 'kept')
  assert.equal((await both.get('/me')).status, 200)
})

test('a header no real client would send (CR or LF in its value, a name that is not a token) is refused as Node\'s client refuses it', async (t) => {
  const client = await setup(t)
  const badValue = { name: 'TypeError', code: 'ERR_INVALID_CHAR', message: 'Invalid character in header content ["x-custom"]' }
  await assert.rejects(client.get('/echo', { headers: { 'x-custom': 'yes\r\nx-injected: 1' } }), badValue)
  await assert.rejects(client.post('/echo', { json: {}, headers: { 'x-custom': 'a\nb' } }), badValue)
  await assert.rejects(client.withHeaders({ 'x-custom': 'nul\u0000' }).get('/echo'), badValue)
  await assert.rejects(client.get('/echo', { headers: { 'x-custom': 'euro \u20ac' } }), badValue)
  for (const name of ['x custom', 'x-custom\r\nx-injected', 'x:custom', '']) {
    await assert.rejects(client.get('/echo', { headers: { [name]: 'yes' } }), { name: 'TypeError', code: 'ERR_INVALID_HTTP_TOKEN', message: /^Header name must be a valid HTTP token \[/ }, name)
  }
  // A tab and Latin-1 are fine, as they are for a real client.
  assert.equal((await client.get('/echo', { headers: { 'x-custom': 'caf\u00e9\tok' } })).json<{ custom: string }>().custom, 'caf\u00e9\tok')
})

test('credential helpers fail clearly when the app has no such auth', async (t) => {
  const client = await createTestClient({ app: routes })
  t.after(async () => await client.close())
  assert.throws(() => client.withJwt(), { message: 'the app has no auth configured (the auth feature is off)' })
  const keysOnly = await createTestClient({ auth: { apiKey: { keys: [{ name: 'h', sha256: 'b'.repeat(64) }] } } })
  t.after(async () => await keysOnly.close())
  assert.throws(() => keysOnly.withJwt(), { message: 'withJwt(): the app does not accept JWTs (auth.jwt is not configured)' })
  assert.throws(() => keysOnly.withApiKey(), { message: 'withApiKey(): every configured key is given by its sha256; pass the key itself: withApiKey(key)' })
})

test('sse(): events over a real socket, parsed as EventSource does, with Last-Event-ID sent', async (t) => {
  const client = await setup(t)
  const events = await client.sse('/events', { headers: { 'last-event-id': '7' } })
  assert.equal(events.status, 200)
  assert.equal(events.headers['cache-control'], 'no-cache')
  assert.deepEqual(await events.next(), { event: 'greeting', data: '{"hello":"world"}', id: '1' })
  assert.deepEqual(await events.next(), { event: 'message', data: 'two\nlines', id: '2' })
  assert.deepEqual(await events.next(), { event: 'message', data: 'resumed after 7', id: '2', retry: 500 })
  await events.ended
  await assert.rejects(events.next(), { message: 'event stream /events: the stream ended before the next event' })
  await assert.rejects(client.sse('/text'), { message: 'event stream /text: expected a 200 text/event-stream, got 200 text/plain: plain words' })
})

test('next() rejects after its timeout; close() ends the stream from the client side', async (t) => {
  const client = await setup(t)
  const events = await client.sse('/forever')
  assert.equal((await events.next()).data, 'open')
  await assert.rejects(events.next({ timeout: 50 }), { message: 'event stream /forever: nothing arrived within 50 ms' })
  events.close()
  await events.ended
})

test('ws(), sse() and stream() reject after their timeout when the app never answers the upgrade or sends the head, and close what they opened', async () => {
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  const client = await createTestClient({
    app: async (app) => {
      app.addHook('onRequest', async (request) => { if (request.url.startsWith('/hang')) await held })
      app.get('/hang/ws', { websocket: true }, (socket) => { socket.close() })
      app.get('/hang/sse', { sse: true }, async (_request, reply) => { await reply.sse.send({ data: 'x' }) })
      app.get('/hang/stream', async () => 'x')
    }
  })
  try {
    await assert.rejects(client.ws('/hang/ws', { timeout: 100 }), { message: 'WebSocket /hang/ws: the upgrade\'s answer: nothing within 100 ms' })
    await assert.rejects(client.sse('/hang/sse', { timeout: 100 }), { message: 'event stream /hang/sse: the response\'s head: nothing within 100 ms' })
    await assert.rejects(client.stream('/hang/stream', { timeout: 100 }), { message: 'stream /hang/stream: the response\'s head: nothing within 100 ms' })
  } finally {
    release()
  }
  // Nothing left open: close() has nothing to name.
  await client.close()
})

test('sse() on a route that answers another stream, one that never ends: rejects within its timeout, naming what it got, and closes it', { timeout: 5000 }, async () => {
  const client = await createTestClient({
    app: async (app) => {
      app.get('/ndjson', async (_request, reply) => reply.type('application/x-ndjson').send(Readable.from((async function * () {
        for (;;) { yield '{}\n'; await setTimeout(20) }
      })())))
    }
  })
  try {
    // The timeout bounds the response's head too: 2 s, so a loaded machine still sends it in time.
    await assert.rejects(client.sse('/ndjson', { timeout: 2000 }), { message: 'event stream /ndjson: expected a 200 text/event-stream, got 200 application/x-ndjson, whose body: nothing within 2000 ms' })
  } finally {
    // Nothing left open: close() has nothing to name.
    await client.close()
  }
})

test('stream(): the body chunk by chunk over a real socket; a break ends the request', async (t) => {
  const client = await setup(t)
  const stream = await client.stream('/numbers')
  assert.equal(stream.status, 200)
  const chunks: string[] = []
  for await (const chunk of stream) chunks.push(chunk.toString())
  assert.equal(chunks.join(''), '1\n2\n3\n')
  const early = await client.stream('/numbers')
  const iterator = early[Symbol.asyncIterator]()
  assert.equal((await iterator.next()).value?.toString().startsWith('1'), true)
  await iterator.return?.()
})

test('close() fails, naming them, when streams the test opened are still open, and closes them', async () => {
  const client = await createTestClient({ app: routes })
  const events = await client.sse('/forever')
  await events.next()
  await assert.rejects(client.close(), { message: 'client.close(): still open, closed now: event stream /forever; close them in the test' })
  await events.ended
})

test('built from a Fastify instance, and from a config file as spikard start builds it (the demo)', async (t) => {
  const app = Fastify()
  await app.register(spikard)
  await app.register(routes)
  const fromApp = await createTestClient(app)
  t.after(async () => await fromApp.close())
  assert.equal(fromApp.app, app)
  assert.equal((await fromApp.get('/text')).text(), 'plain words')

  const demo = await createTestClient(join(import.meta.dirname, '..', 'examples', 'spikard.config.yaml'))
  t.after(async () => await demo.close())
  assert.equal((await demo.get('/hello')).json<{ hello: string }>().hello, 'world')
  assert.equal((await demo.get('/me')).problem().status, 401)
  assert.equal((await demo.withJwt({ sub: 'demo-user' }).get('/me')).status, 200)
  assert.equal((await demo.withApiKey().get('/reports')).status, 200)
  const ticks = await demo.sse('/ticks')
  // The first tick comes a second after the stream opens: more than the default 2 s to wait.
  assert.equal((await ticks.next({ timeout: 10_000 })).event, 'tick')
  ticks.close()
})

test('anything but a config file path, spikard\'s options or a Fastify instance is refused at once with a TypeError, as are options of the wrong kind', async () => {
  const expected = 'createTestClient(source): expected a config file path (a string), spikard\'s options (an object) or a Fastify instance, found'
  for (const [source, found] of [[42, '42'], [null, 'null'], [true, 'true'], [[], 'a list'], [routes, 'a function'], [Symbol('app'), 'a symbol'], [new Map([['app', routes]]), 'a Map']] as const) {
    await assert.rejects(createTestClient(source as never), { name: 'TypeError', message: `${expected} ${found}` })
  }
  await assert.rejects(createTestClient({}, 42 as never), { name: 'TypeError', message: 'createTestClient(source, options): expected an object ({ logLevel, baseDir }), found 42' })
  await assert.rejects(createTestClient({}, { baseDir: 1 } as never), { name: 'TypeError', message: 'createTestClient(source, options): options.baseDir: expected a string, found 1' })
  await assert.rejects(createTestClient({}, { logLevel: ['info'] } as never), { name: 'TypeError', message: 'createTestClient(source, options): options.logLevel: expected a string, found a list' })
})

test('createTestApp (deprecated) still gives the app, not yet ready, its logger silenced', async (t) => {
  const app = await createTestApp({ requestId: true })
  t.after(async () => await app.close())
  app.get('/late', async () => ({ ok: true }))
  assert.equal(app.log.level, 'silent')
  assert.deepEqual((await app.inject('/late')).json(), { ok: true })
})

test('the event-stream parser: CR, LF and CRLF line ends (split across chunks too), comments, an id with NUL ignored, retry digits only', () => {
  const events: TestSseEvent[] = []
  const parser = new EventStreamParser((event) => events.push(event))
  parser.write(': a comment\r\ndata: a\r')
  parser.write('\ndata:b\rid: 1\n\nevent: named\ndata\nretry: 12x\n\n')
  parser.write('id: bad\0id\ndata: kept id\nretry: 250\r\r')
  parser.write('event: no data\n\ndata: last\r', true)
  assert.deepEqual(events, [
    { event: 'message', data: 'a\nb', id: '1' },
    { event: 'named', data: '', id: '1' },
    { event: 'message', data: 'kept id', id: '1', retry: 250 }
  ])
})

test('ws(): JSON messages over a real socket, error frames parsed, credentials on the upgrade, close codes', async (t) => {
  const client = await setup(t)
  const ws = await client.ws('/ws')
  ws.send({ text: 'hi' })
  assert.deepEqual(await ws.next(), { echoed: 'hi' })
  ws.send('not json')
  assert.equal((await ws.next<{ status: number }>()).status, 400)
  await assert.rejects(ws.next({ timeout: 50 }), { message: 'WebSocket /ws: nothing arrived within 50 ms' })
  assert.deepEqual(await ws.close(), { code: 1005, reason: '' })
  await assert.rejects(ws.next(), { message: 'WebSocket /ws: closed (1005) before the next message' })

  await assert.rejects(client.ws('/ws-private'), (error: Error) => error.message.startsWith('WebSocket /ws-private: the upgrade was answered 401: {"type":"https://spikard.dev/errors/'))
  const member = await client.withApiKey().ws('/ws-private')
  assert.deepEqual(await member.next(), { hello: 'member' })
  assert.deepEqual(await member.close(1000, 'done'), { code: 1000, reason: 'done' })
})

test('close() names a WebSocket the test left open', async () => {
  const client = await createTestClient({ app: routes })
  await client.ws('/ws')
  await assert.rejects(client.close(), { message: 'client.close(): still open, closed now: WebSocket /ws; close them in the test' })
})

test('tasks.drain() waits for the background tasks, fails naming what is left after its timeout, and says when the app has none', async (t) => {
  const client = await setup(t)
  done.length = 0
  // Both run at once: the later, shorter one finishes first. 400 ms apart, not 40: the second
  // task starts a request later than the first, which a loaded machine can delay.
  await client.post('/later', { json: { ms: 400 } })
  await client.post('/later', { json: { ms: 10 } })
  await client.tasks.drain()
  assert.deepEqual(done, [10, 400])
  await client.post('/later', { json: { ms: 2000 } })
  await assert.rejects(client.tasks.drain({ timeout: 50 }), { message: 'client.tasks.drain(): 1 running and 0 queued after 50 ms' })
  const none = await createTestClient({ tasks: false, app: async () => {} })
  t.after(async () => await none.close())
  await assert.rejects(none.tasks.drain(), { message: 'client.tasks.drain(): the app has no background tasks (the tasks feature is off)' })
})

test('a client leaves the process\'s signals and uncaught errors alone (shutdown.signals off), whatever the shutdown options', async (t) => {
  const events = ['SIGTERM', 'SIGINT', 'uncaughtException', 'unhandledRejection'] as const
  const before = events.map((e) => process.listenerCount(e))
  for (const shutdown of [undefined, true, '2s', { timeout: '3s', signals: true }]) {
    const client = await createTestClient({ shutdown } as Parameters<typeof createTestClient>[0])
    t.after(() => client.close())
    assert.deepStrictEqual(events.map((e) => process.listenerCount(e)), before, `shutdown: ${JSON.stringify(shutdown)}`)
  }
  const timed = await createTestClient({ shutdown: '2s' })
  t.after(() => timed.close())
  assert.match((await timed.get('/health/live')).headers['content-type'] as string, /json/)
})

test('after close(), every method says the client is closed; a request still in flight then fails, naming it; close() again does nothing', async () => {
  let entered: () => void = () => {}
  const handlerEntered = new Promise<void>((resolve) => { entered = resolve })
  const client = await createTestClient({
    timeout: '10s',
    app: async (app) => {
      app.get('/slow', async () => { entered(); await setTimeout(5000); return { late: true } })
      app.get('/sse', { sse: true }, async (_request, reply) => { await reply.sse.send({ data: 'x' }) })
    }
  })
  const slow = client.get('/slow')
  await handlerEntered
  const started = Date.now()
  const failed = assert.rejects(slow, { message: 'GET /slow: client.close() was called before it was answered' })
  await client.close()
  await failed
  assert.ok(Date.now() - started < 3000)
  await assert.rejects(client.get('/slow'), { message: 'GET /slow: the client is closed (client.close() was called)' })
  await assert.rejects(client.sse('/sse'), { message: 'sse /sse: the client is closed (client.close() was called)' })
  await assert.rejects(client.ws('/ws'), { message: 'ws /ws: the client is closed (client.close() was called)' })
  await assert.rejects(client.stream('/s'), { message: 'stream /s: the client is closed (client.close() was called)' })
  // Not "drained": the close cancelled whatever tasks were left.
  await assert.rejects(client.tasks.drain(), { message: 'client.tasks.drain(): the client is closed (client.close() was called)' })
  await client.close()
  assert.equal(client.app.server.listening, false)
})
