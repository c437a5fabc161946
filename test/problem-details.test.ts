/**
 * RFC 9457 problem details: every error response, from routing, body parsing, validation,
 * handlers and the HTTP parser itself, is application/problem+json with exactly
 * type, title, status, detail, instance and requestId (plus `errors` for a 422; no
 * `instance` when Node's HTTP parser rejected the request before it had a path).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type LightMyRequestResponse } from 'fastify'
import spikard from '../src/index.js'
import { build, listen, rawRequest, until, UUID, type RawResponse, type TestApp } from './helpers.js'

const TYPE = 'https://spikard.dev/errors/'
const PROBLEM_JSON = 'application/problem+json; charset=utf-8'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/ok', async () => ({ ok: true }))
  app.get('/items/:id', async (request) => request.params)
  app.put('/items/:id', async (request) => request.params)
  app.post('/json', async (request) => request.body)
  app.post('/small', { bodyLimit: 10 }, async (request) => request.body)
  app.post('/users', {
    schema: {
      body: {
        type: 'object',
        required: ['name', 'address'],
        properties: {
          name: { type: 'string', minLength: 1 },
          age: { type: 'integer', minimum: 0 },
          email: { type: 'string', format: 'email' },
          address: {
            type: 'object',
            required: ['zip'],
            properties: { zip: { type: 'string', pattern: '^[0-9]{5}$' }, city: { type: 'string' } }
          }
        }
      }
    }
  }, async (request) => request.body)
  app.get('/search', {
    schema: {
      querystring: {
        type: 'object',
        required: ['q'],
        properties: { q: { type: 'string', minLength: 2 }, page: { type: 'integer', minimum: 1 } }
      }
    }
  }, async (request) => request.query)
  app.get('/orders/:orderId', {
    schema: { params: { type: 'object', properties: { orderId: { type: 'integer' } } } }
  }, async (request) => request.params)
  app.get('/conflict', async () => {
    throw Object.assign(new Error('A user named "ada" already exists'), { statusCode: 409 })
  })
  app.get('/slow-down', async () => {
    throw Object.assign(new Error('Try again in 5 seconds'), { statusCode: 429, headers: { 'retry-after': '5' } })
  })
  // As Fastify reads them: `status` where `statusCode` is absent, and a status the route set before throwing.
  app.get('/status-alias', async () => {
    throw Object.assign(new Error('That export was deleted'), { status: 410 })
  })
  app.get('/code-then-throw', async (_request, reply) => {
    reply.code(409)
    throw new Error('Order 7 already exists')
  })
  app.get('/5xx-then-throw', async (_request, reply) => {
    reply.code(502)
    throw new Error('upstream at 10.0.0.7 said no')
  })
  // A header copied from the request, CR/LF included: Node refuses it as the response is written.
  app.get('/download', async (request, reply) => {
    reply.header('content-disposition', `attachment; filename="${(request.query as { name: string }).name}"`)
    return { ok: true }
  })
  app.get('/crash', async () => {
    throw new Error('connection to db-7 refused: password=hunter2')
  })
  // The same header, set before the route throws: a 4xx error, and any other.
  app.get('/download-gone', async (request, reply) => {
    reply.header('content-disposition', `attachment; filename="${(request.query as { name: string }).name}"`)
    reply.header('etag', '"export-7"').header('last-modified', 'Mon, 07 Dec 2026 10:00:00 GMT').header('content-language', 'en').header('cache-control', 'private').header('x-export', '7')
    throw Object.assign(new Error('That export was deleted'), { statusCode: 410 })
  })
  app.get('/download-crash', async (request, reply) => {
    reply.header('content-disposition', `attachment; filename="${(request.query as { name: string }).name}"`)
    reply.header('etag', '"export-7"').header('last-modified', 'Mon, 07 Dec 2026 10:00:00 GMT').header('content-language', 'en').header('cache-control', 'private').header('x-export', '7')
    throw new Error('connection to db-7 refused')
  })
  app.get('/throw-string', async () => {
    // eslint-disable-next-line no-throw-literal
    throw 'a bare string'
  })
  app.get('/throw-undefined', async () => {
    // eslint-disable-next-line no-throw-literal
    throw undefined
  })
  app.get('/upstream', async () => {
    throw Object.assign(new Error('upstream said: internal token sk_live_TOPSECRET'), {
      statusCode: 503,
      headers: { 'x-upstream-secret': 'sk_live_TOPSECRET' }
    })
  })
}

async function setup (t: TestContext): Promise<TestApp> {
  const built = await build({ requestId: true }, routes)
  t.after(() => built.app.close())
  return built
}

/** The problem body every error response must carry, with the request id taken from the response header. */
function expectProblem (res: LightMyRequestResponse, status: number, problem: { type: string, title: string, detail: string, instance: string, errors?: unknown[] }): void {
  const id = res.headers['x-request-id']
  assert.equal(typeof id, 'string', 'x-request-id header')
  assert.match(id as string, UUID)
  assert.equal(res.statusCode, status)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.deepStrictEqual(res.json(), {
    type: TYPE + problem.type,
    title: problem.title,
    status,
    detail: problem.detail,
    instance: problem.instance,
    requestId: id,
    ...(problem.errors === undefined ? {} : { errors: problem.errors })
  })
}

/** The server still answers a good request after an error. */
async function assertStillServing (app: FastifyInstance): Promise<void> {
  const res = await app.inject({ url: '/ok' })
  assert.equal(res.statusCode, 200)
  assert.deepStrictEqual(res.json(), { ok: true })
}

test('unknown route: 404 not-found; detail and instance never include the query string', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ url: '/nowhere?token=abc&page=2' })
  expectProblem(res, 404, { type: 'not-found', title: 'Not Found', detail: 'No route matches GET /nowhere', instance: '/nowhere' })
  assert.equal(res.headers.allow, undefined)
  assert.ok(!res.body.includes('token'), res.body)
  await assertStillServing(app)
})

test('routes registered before spikard, in the app or in a plugin, answer their errors as problems too (auth\'s 401 included); an error handler of the app\'s own, on a plugin or a route, is kept', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  const teapot = async (): Promise<never> => { throw Object.assign(new Error('short and stout'), { statusCode: 418 }) }
  app.get('/early', teapot)
  app.get('/early-own', { errorHandler: (_error, _request, reply) => { void reply.code(418).send('route handler') } }, teapot)
  await app.register(async (child) => {
    child.get('/early', teapot)
    child.get('/private', async () => 'secret')
  }, { prefix: '/child' })
  await app.register(async (child) => {
    child.setErrorHandler((_error, _request, reply) => { void reply.code(418).send('plugin handler') })
    child.get('/early', teapot)
  }, { prefix: '/own' })
  await app.register(spikard, { shutdown: { signals: false }, auth: { apiKey: { keys: ['k'.repeat(32)] } } })
  app.get('/later', teapot)
  const key = { 'x-api-key': 'k'.repeat(32) }
  for (const url of ['/early', '/child/early', '/later']) {
    const res = await app.inject({ url, headers: key })
    assert.equal(res.statusCode, 418, url)
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', url)
    assert.deepEqual({ ...res.json<Record<string, unknown>>(), requestId: undefined }, { type: 'https://spikard.dev/errors/i-m-a-teapot', title: 'I\'m a Teapot', status: 418, detail: 'short and stout', instance: url, requestId: undefined }, url)
  }
  const unauthorized = await app.inject('/child/private')
  assert.equal(unauthorized.statusCode, 401)
  assert.equal(unauthorized.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.equal((await app.inject({ url: '/early-own', headers: key })).body, 'route handler')
  assert.equal((await app.inject({ url: '/own/early', headers: key })).body, 'plugin handler')
})

test('wrong method on an existing path: 405 with Allow', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'GET', url: '/json' })
  expectProblem(res, 405, {
    type: 'method-not-allowed', title: 'Method Not Allowed', detail: 'GET is not allowed on /json; allowed: POST', instance: '/json'
  })
  assert.equal(res.headers.allow, 'POST')
  await assertStillServing(app)
})

test('a route whose handler calls reply.callNotFound(): 404, not a 405 naming the methods of its own path', async (t) => {
  for (const routerOptions of [{}, { ignoreTrailingSlash: true }]) {
    const app = Fastify({ routerOptions })
    t.after(() => app.close())
    await app.register(spikard, { requestId: true })
    app.get('/files/*', async (_request, reply) => reply.callNotFound())
    app.delete('/other', async () => ({ ok: true }))
    const res = await app.inject({ url: '/files/missing.txt' })
    expectProblem(res, 404, { type: 'not-found', title: 'Not Found', detail: 'No route matches GET /files/missing.txt', instance: '/files/missing.txt' })
    assert.equal(res.headers.allow, undefined)
    // The router's own options (routerOptions, Fastify 5's place for them) decide which paths exist.
    const slash = await app.inject({ method: 'GET', url: '/other/' })
    assert.equal(slash.statusCode, 'ignoreTrailingSlash' in routerOptions ? 405 : 404, JSON.stringify(routerOptions))
  }
})

test('a not-found handler of the app\'s own, set after spikard or before, replaces the problem 404 as it replaces Fastify\'s default; the features still run', async (t) => {
  for (const when of ['after', 'before', 'in an unprefixed plugin'] as const) {
    const app = Fastify()
    t.after(() => app.close())
    const mine = (app: FastifyInstance): void => {
      app.setNotFoundHandler((request, reply) => reply.code(404).type('text/plain').send(`no ${request.url}`))
    }
    if (when === 'before') mine(app)
    await app.register(spikard, { requestId: true })
    if (when === 'after') {
      mine(app)
      // Fastify's protection stands for the app's own handlers: a second one at that prefix is refused.
      assert.throws(() => { mine(app) }, /Not found handler already set/)
    }
    if (when === 'in an unprefixed plugin') await app.register(async (child) => { mine(child) })
    const res = await app.inject({ url: '/nowhere' })
    assert.equal(res.statusCode, 404, when)
    assert.equal(res.body, 'no /nowhere', when)
    assert.match(String(res.headers['x-request-id']), UUID, when)
  }
})

test('wrong method on a route with a path parameter: 405 with every allowed method, query string left out', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'DELETE', url: '/items/42?force=1' })
  expectProblem(res, 405, {
    type: 'method-not-allowed',
    title: 'Method Not Allowed',
    detail: 'DELETE is not allowed on /items/42; allowed: GET, HEAD, PUT',
    instance: '/items/42'
  })
  assert.equal(res.headers.allow, 'GET, HEAD, PUT')
  await assertStillServing(app)
})

test('malformed JSON body: 400 malformed-body', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'application/json' }, payload: '{"a": ' })
  expectProblem(res, 400, { type: 'malformed-body', title: 'Bad Request', detail: 'The request body is not valid JSON', instance: '/json' })
  await assertStillServing(app)
})

test('empty body with a JSON content type: 400 malformed-body', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'application/json' }, payload: '' })
  expectProblem(res, 400, { type: 'malformed-body', title: 'Bad Request', detail: 'The request body is not valid JSON: it is empty', instance: '/json' })
  await assertStillServing(app)
})

test('unsupported content type: 415', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'POST', url: '/json', headers: { 'content-type': 'application/xml' }, payload: '<a/>' })
  expectProblem(res, 415, {
    type: 'unsupported-media-type',
    title: 'Unsupported Media Type',
    detail: 'Content-Type "application/xml" is not supported here',
    instance: '/json'
  })
  await assertStillServing(app)
})

test('body over the route bodyLimit: 413 naming the limit', async (t) => {
  const { app } = await setup(t)
  const ok = await app.inject({ method: 'POST', url: '/small', payload: { a: 1 } })
  assert.equal(ok.statusCode, 200, 'a body under the limit is accepted')
  const res = await app.inject({ method: 'POST', url: '/small', payload: { a: '0123456789' } })
  expectProblem(res, 413, {
    type: 'body-too-large', title: 'Content Too Large', detail: 'The request body exceeds the limit of 10 bytes', instance: '/small'
  })
  await assertStillServing(app)
})

test('body validation: 422 listing every offending field, nested ones as dotted paths', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({
    method: 'POST',
    url: '/users?debug=1',
    payload: { age: 'old', email: 'not-an-email', address: { zip: 'ABCDE' } }
  })
  expectProblem(res, 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request body failed validation',
    instance: '/users',
    errors: [
      { location: 'body', field: 'name', message: 'is required' },
      { location: 'body', field: 'age', message: 'must be integer' },
      { location: 'body', field: 'email', message: 'must match format "email"' },
      { location: 'body', field: 'address.zip', message: 'must match pattern "^[0-9]{5}$"' }
    ]
  })
  await assertStillServing(app)
})

test('body validation: a missing nested field is named by its full path', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ method: 'POST', url: '/users', payload: { name: 'Ada', address: { city: 'London' } } })
  expectProblem(res, 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request body failed validation',
    instance: '/users',
    errors: [{ location: 'body', field: 'address.zip', message: 'is required' }]
  })
})

test('query string validation: 422 with location querystring', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ url: '/search?q=a&page=0' })
  expectProblem(res, 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request query string failed validation',
    instance: '/search',
    errors: [
      { location: 'querystring', field: 'q', message: 'must NOT have fewer than 2 characters' },
      { location: 'querystring', field: 'page', message: 'must be >= 1' }
    ]
  })
  const missing = await app.inject({ url: '/search' })
  expectProblem(missing, 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request query string failed validation',
    instance: '/search',
    errors: [{ location: 'querystring', field: 'q', message: 'is required' }]
  })
  await assertStillServing(app)
})

test('path parameter validation: 422 with location params', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ url: '/orders/abc' })
  expectProblem(res, 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request params failed validation',
    instance: '/orders/abc',
    errors: [{ location: 'params', field: 'orderId', message: 'must be integer' }]
  })
  const ok = await app.inject({ url: '/orders/7' })
  assert.equal(ok.statusCode, 200)
  assert.deepStrictEqual(ok.json(), { orderId: 7 })
})

test('a handler error with a 4xx statusCode keeps its status, message and headers', async (t) => {
  const { app, logs } = await setup(t)
  const conflict = await app.inject({ url: '/conflict' })
  expectProblem(conflict, 409, { type: 'conflict', title: 'Conflict', detail: 'A user named "ada" already exists', instance: '/conflict' })

  const limited = await app.inject({ url: '/slow-down' })
  expectProblem(limited, 429, { type: 'too-many-requests', title: 'Too Many Requests', detail: 'Try again in 5 seconds', instance: '/slow-down' })
  assert.equal(limited.headers['retry-after'], '5')

  assert.deepStrictEqual(logs.filter((l) => l.level >= 50), [], 'client errors are not logged as failures')
  await assertStillServing(app)
})

test('a 4xx as Fastify reads it: an error\'s `status`, or the status the route set before it threw', async (t) => {
  const { app, logs } = await setup(t)
  expectProblem(await app.inject({ url: '/status-alias' }), 410, { type: 'gone', title: 'Gone', detail: 'That export was deleted', instance: '/status-alias' })
  expectProblem(await app.inject({ url: '/code-then-throw' }), 409, { type: 'conflict', title: 'Conflict', detail: 'Order 7 already exists', instance: '/code-then-throw' })
  assert.deepStrictEqual(logs.filter((l) => l.level >= 50), [], 'client errors are not logged as failures')
  // A 5xx set so is still a generic 500, its message only in the log.
  const failed = await app.inject({ url: '/5xx-then-throw' })
  expectProblem(failed, 500, { type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request', instance: '/5xx-then-throw' })
  assert.equal(logs.filter((l) => l.level === 50).at(-1)?.err.message, 'upstream at 10.0.0.7 said no')
})

test('a route that set its download\'s headers, then failed: the problem goes without them (a browser would save it as the file), with the route\'s others', async (t) => {
  const { app } = await setup(t)
  for (const [path, status] of [['/download-gone', 410], ['/download-crash', 500]] as const) {
    const res = await app.inject({ url: `${path}?name=report.csv` })
    assert.equal(res.statusCode, status)
    assert.equal(res.headers['content-type'], PROBLEM_JSON)
    for (const name of ['content-disposition', 'etag', 'last-modified', 'content-language']) assert.equal(res.headers[name], undefined, `${path}: ${name}`)
    assert.deepEqual([res.headers['cache-control'], res.headers['x-export']], ['private', '7'], path)
  }
})

test('a plain Error: 500 with the generic detail; the log gets the message and stack with the request id', async (t) => {
  const { app, logs } = await setup(t)
  const res = await app.inject({ url: '/crash' })
  expectProblem(res, 500, {
    type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request', instance: '/crash'
  })
  assert.ok(!res.body.includes('hunter2') && !res.body.includes('db-7'), res.body)

  const failures = logs.filter((l) => l.level === 50)
  assert.equal(failures.length, 1, JSON.stringify(logs))
  const [line] = failures
  assert.equal(line.reqId, res.headers['x-request-id'])
  assert.equal(line.msg, 'request failed')
  assert.equal(line.err.type, 'Error')
  assert.equal(line.err.message, 'connection to db-7 refused: password=hunter2')
  assert.match(line.err.stack, /^Error: connection to db-7 refused: password=hunter2\n\s+at .*problem-details\.test\.ts/)
  await assertStillServing(app)
})

test('a thrown string: 500 generic, logged, no crash', async (t) => {
  const { app, logs } = await setup(t)
  const res = await app.inject({ url: '/throw-string' })
  expectProblem(res, 500, {
    type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request', instance: '/throw-string'
  })
  const failures = logs.filter((l) => l.level === 50)
  assert.equal(failures.length, 1)
  assert.equal(failures[0].reqId, res.headers['x-request-id'])
  assert.equal(failures[0].err, 'a bare string')
  await assertStillServing(app)
})

test('a thrown undefined: 500 generic, logged, no crash', async (t) => {
  const { app, logs } = await setup(t)
  const res = await app.inject({ url: '/throw-undefined' })
  expectProblem(res, 500, {
    type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request', instance: '/throw-undefined'
  })
  const failures = logs.filter((l) => l.level === 50)
  assert.equal(failures.length, 1)
  assert.equal(failures[0].reqId, res.headers['x-request-id'])
  assert.equal(failures[0].msg, 'request failed')
  await assertStillServing(app)
})

test('a 5xx statusCode with a secret message: 500 generic, the secret only in the log', async (t) => {
  const { app, logs } = await setup(t)
  const res = await app.inject({ url: '/upstream' })
  expectProblem(res, 500, {
    type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request', instance: '/upstream'
  })
  assert.ok(!res.body.includes('TOPSECRET'), res.body)
  assert.ok(!JSON.stringify(res.headers).includes('TOPSECRET'), 'error headers of a 5xx are not sent')
  const failures = logs.filter((l) => l.level === 50)
  assert.equal(failures.length, 1)
  assert.equal(failures[0].reqId, res.headers['x-request-id'])
  assert.equal(failures[0].err.message, 'upstream said: internal token sk_live_TOPSECRET')
  await assertStillServing(app)
})

test('a malformed URL (FST_ERR_BAD_URL through frameworkErrors): 400 bad-request with the request id', async (t) => {
  const { app } = await setup(t)
  const res = await app.inject({ url: '/items/%zz?x=1' })
  expectProblem(res, 400, { type: 'bad-request', title: 'Bad Request', detail: 'The URL is not valid', instance: '/items/%zz' })
  await assertStillServing(app)
})

test('an over-long path parameter (FST_ERR_MAX_PARAM_LENGTH): 400 bad-request with the request id', async (t) => {
  const { app } = await setup(t)
  const long = 'x'.repeat(101)
  const res = await app.inject({ url: `/items/${long}` })
  expectProblem(res, 400, { type: 'bad-request', title: 'Bad Request', detail: 'A path parameter is too long', instance: `/items/${long}` })
  await assertStillServing(app)
})

// ---------------------------------------------------------------------------------------
// Real sockets: requests Node's HTTP parser or Fastify's router reject before any route.
// A request Node could not parse has no path, so its problem carries no `instance`.

async function listening (t: TestContext): Promise<{ app: FastifyInstance, port: number, url: string }> {
  const { app } = await setup(t)
  const { port, url } = await listen(app)
  return { app, port, url }
}

async function assertStillServingOverHttp (url: string): Promise<void> {
  const res = await fetch(`${url}/ok`)
  assert.equal(res.status, 200)
  assert.deepStrictEqual(await res.json(), { ok: true })
}

/** A problem Node's server wrote itself: its status line, a request id, `Connection: close`, an exact length, and the body. */
function assertSocketProblem (res: RawResponse, statusLine: string, problem: Record<string, unknown>): void {
  assert.equal(res.statusLine, statusLine)
  assert.equal(res.headers['content-type'], 'application/problem+json')
  assert.equal(res.headers.connection, 'close')
  assert.match(res.headers['x-request-id'], UUID)
  assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body))
  assert.deepStrictEqual(JSON.parse(res.body), { ...problem, requestId: res.headers['x-request-id'] })
}

test('socket: a malformed request line gets a 400 problem with a request id and Connection: close', async (t) => {
  const { port, url } = await listening(t)
  const res = await rawRequest(port, 'GARBAGE\r\n\r\n')
  assertSocketProblem(res, 'HTTP/1.1 400 Bad Request', { type: TYPE + 'bad-request', title: 'Bad Request', status: 400, detail: 'The request could not be parsed' })
  await assertStillServingOverHttp(url)
})

test('socket: garbage pipelined behind a response already streaming closes the connection; no problem lands inside that body', async (t) => {
  const { app } = await build({}, async (a) => {
    a.get('/drip', async () => Readable.from((async function * () {
      yield 'chunk1'
      await sleep(1000)
      yield 'chunk2'
    })()))
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const socket = connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  const closed = new Promise((resolve) => socket.once('close', resolve))
  socket.write('GET /drip HTTP/1.1\r\nHost: localhost\r\n\r\n')
  await until(() => received.includes('chunk1'), 'the first chunk')
  socket.write('GARBAGE\r\n\r\n')
  await closed
  assert.match(received, /^HTTP\/1\.1 200 OK\r\n/)
  assert.equal(received.split('HTTP/1.1 ').length, 2, received)
  assert.doesNotMatch(received, /problem\+json/)
})

test('socket: an Expect other than 100-continue gets a 417 problem with a request id and Connection: close, and a log line', async (t) => {
  const { app, logs } = await setup(t)
  const { port, url } = await listen(app)
  const res = await rawRequest(port, 'POST /echo?x=1 HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}')
  assertSocketProblem(res, 'HTTP/1.1 417 Expectation Failed', {
    type: TYPE + 'expectation-failed',
    title: 'Expectation Failed',
    status: 417,
    detail: 'Expect: "teapot" is not supported; send Expect: 100-continue, or no Expect header',
    instance: '/echo'
  })
  assert.deepEqual(logs.filter((l) => l.msg === 'request rejected').map((l) => [l.reqId, l.status, l.path, l.expect]), [[res.headers['x-request-id'], 417, '/echo', '"teapot"']])
  // A well-formed id of the client's is kept, as for any request.
  const kept = await rawRequest(port, 'POST /echo HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\nX-Request-Id: mine-9\r\nContent-Length: 2\r\n\r\n{}')
  assert.equal(kept.headers['x-request-id'], 'mine-9')
  assert.equal(JSON.parse(kept.body).requestId, 'mine-9')
  await assertStillServingOverHttp(url)
})

test('socket: an HTTP/1.1 request without Host gets a 400 problem with a request id, Connection: close and an access line; HTTP/1.0 without Host is served', async (t) => {
  const { app, logs } = await setup(t)
  const { port, url } = await listen(app)
  // Node's own check (requireHostHeader) would answer a bare 400: no body, no id, no log line.
  const res = await rawRequest(port, 'GET /ok?x=1 HTTP/1.1\r\n\r\n')
  assert.equal(res.statusLine, 'HTTP/1.1 400 Bad Request')
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.equal(res.headers.connection, 'close')
  assert.match(res.headers['x-request-id'], UUID)
  assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body))
  assert.deepStrictEqual(JSON.parse(res.body), {
    type: TYPE + 'bad-request', title: 'Bad Request', status: 400, detail: 'An HTTP/1.1 request must have a Host header', instance: '/ok', requestId: res.headers['x-request-id']
  })
  assert.deepEqual(logs.filter((l) => l.msg === 'request completed').map((l) => [l.reqId, l.method, l.path, l.status]), [[res.headers['x-request-id'], 'GET', '/ok', 400]])
  // Before any other check: an upgrade without Host, which Node never checked, is refused the same way.
  const upgrade = await rawRequest(port, 'GET /ok HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  assert.equal(upgrade.status, 400)
  assert.equal(JSON.parse(upgrade.body).detail, 'An HTTP/1.1 request must have a Host header')
  // HTTP/1.0 has no Host requirement (Node accepts it too).
  const old = await rawRequest(port, 'GET /ok HTTP/1.0\r\n\r\n')
  assert.equal(old.status, 200)
  assert.deepStrictEqual(JSON.parse(old.body), { ok: true })
  await assertStillServingOverHttp(url)
})

test('socket: the Host check on any instance spikard is registered on (one made without spikardFastifyOptions, as with https), unless its maker turned the check off', async (t) => {
  for (const [http, expected] of [[undefined, 400], [{ requireHostHeader: false }, 200]] as const) {
    const app = Fastify(http === undefined ? {} : { http })
    await app.register(spikard)
    app.get('/ok', async () => ({ ok: true }))
    t.after(() => app.close())
    const { port } = await listen(app)
    const res = await rawRequest(port, 'GET /ok HTTP/1.1\r\nConnection: close\r\n\r\n')
    assert.equal(res.status, expected, JSON.stringify(http))
    if (expected === 400) {
      assert.equal(res.headers['content-type'], PROBLEM_JSON)
      assert.equal(JSON.parse(res.body).detail, 'An HTTP/1.1 request must have a Host header')
    }
  }
})

test('socket: CONNECT gets a 501 problem with a request id and Connection: close, and a log line; the socket is closed', async (t) => {
  const { app, logs } = await setup(t)
  const { port, url } = await listen(app)
  // Node hands CONNECT to a 'connect' listener, and with none destroys the socket: no answer at all.
  const res = await rawRequest(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  assertSocketProblem(res, 'HTTP/1.1 501 Not Implemented', {
    type: TYPE + 'method-not-implemented',
    title: 'Not Implemented',
    status: 501,
    detail: 'CONNECT is not implemented by this server'
  })
  assert.deepEqual(logs.filter((l) => l.msg === 'request rejected').map((l) => [l.reqId, l.status, l.method, l.target]), [[res.headers['x-request-id'], 501, 'CONNECT', 'example.com:443']])
  // Bytes the client sends after it (a tunnel's first bytes) are discarded; a well-formed id of the client's is kept.
  const kept = await rawRequest(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nX-Request-Id: mine-7\r\n\r\n\x16\x03\x01\x00\x05hello')
  assert.equal(kept.status, 501)
  assert.equal(kept.headers['x-request-id'], 'mine-7')
  assert.equal(JSON.parse(kept.body).requestId, 'mine-7')
  // A client that keeps its side open (half-open) does not keep the server's socket.
  const halfOpen = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const open = async (): Promise<number> => await new Promise((resolve, reject) => app.server.getConnections((error, count) => { if (error === null) resolve(count); else reject(error) }))
  try {
    let answer = ''
    halfOpen.setEncoding('latin1').on('data', (chunk: string) => { answer += chunk })
    const ended = new Promise((resolve) => halfOpen.once('end', resolve))
    halfOpen.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
    await ended
    assert.match(answer, /^HTTP\/1\.1 501 Not Implemented\r\n/)
    for (let i = 0; i < 100 && await open() > 0; i++) await sleep(10)
    assert.equal(await open(), 0)
  } finally {
    halfOpen.destroy()
  }
  await assertStillServingOverHttp(url)
})

test('socket: a CONNECT behind a response not yet over closes the connection, without an answer inside that response; a CONNECT listener of the user\'s own has it', async (t) => {
  const { app } = await build({ requestId: true }, async (a) => {
    a.get('/slow', async () => { await sleep(200); return { slow: true } })
    a.get('/stream', async () => {
      let n = 0
      return new Readable({ read () { if (n++ === 0) this.push('first-part;'); else setTimeout(() => this.push(null), 300) } })
    })
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const exchange = async (first: string, second: string, gap: number): Promise<string> => await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
    socket.on('error', () => {}).on('close', () => resolve(received))
    socket.setTimeout(3000, () => { socket.destroy(); reject(new Error(`not closed: ${JSON.stringify(received)}`)) })
    socket.write(first)
    setTimeout(() => socket.write(second), gap)
  })
  const tunnel = 'CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n'
  // Pipelined behind a request still running: a 501 would be taken for that request's answer.
  assert.doesNotMatch(await exchange('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n', tunnel, 0), /501/)
  // Behind a response under way: it would land inside its body.
  const streamed = await exchange('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n', tunnel, 150)
  assert.match(streamed, /^HTTP\/1\.1 200 OK\r\n[\s\S]*first-part;/)
  assert.doesNotMatch(streamed, /501/)
  // On a connection of its own it is answered.
  assert.equal((await rawRequest(port, tunnel)).status, 501)
  // A server of the user's that tunnels keeps its CONNECT.
  app.server.on('connect', (_req, socket: import('node:stream').Duplex) => { socket.end('HTTP/1.1 200 Connection Established\r\n\r\n') })
  assert.equal((await rawRequest(port, tunnel)).statusLine, 'HTTP/1.1 200 Connection Established')
})

test('socket: a response header Node refuses (CR/LF from the request): a 500 problem without it, the header named at warn', async (t) => {
  const { app, logs } = await setup(t)
  const { url } = await listen(app)
  const res = await fetch(`${url}/download?name=${encodeURIComponent('a\r\nSet-Cookie: x=1')}`)
  assert.equal(res.status, 500)
  assert.equal(res.headers.get('content-type'), PROBLEM_JSON)
  assert.equal(res.headers.get('content-disposition'), null)
  assert.equal(res.headers.get('set-cookie'), null)
  const id = res.headers.get('x-request-id')
  assert.match(String(id), UUID)
  assert.deepStrictEqual(await res.json(), {
    type: TYPE + 'internal-error', title: 'Internal Server Error', status: 500, detail: 'The server failed to handle the request', instance: '/download', requestId: id
  })
  assert.deepEqual(logs.filter((l) => l.level === 40).map((l) => [l.reqId, l.dropped]), [[id, ['content-disposition']]])
  await assertStillServingOverHttp(url)
})

test('socket: a response header Node refuses, set before the route throws: the error\'s problem without it, the header named at warn', async (t) => {
  const { app, logs } = await setup(t)
  const { url } = await listen(app)
  const name = encodeURIComponent('a\r\nSet-Cookie: x=1')
  for (const [path, status, title, detail] of [
    ['/download-gone', 410, 'Gone', 'That export was deleted'],
    ['/download-crash', 500, 'Internal Server Error', 'The server failed to handle the request']
  ] as const) {
    const res = await fetch(`${url}${path}?name=${name}`)
    assert.equal(res.status, status, path)
    assert.equal(res.headers.get('content-type'), PROBLEM_JSON, path)
    assert.equal(res.headers.get('content-disposition'), null, path)
    assert.equal(res.headers.get('set-cookie'), null, path)
    const id = res.headers.get('x-request-id')
    assert.match(String(id), UUID)
    const body = await res.json() as { title: string, status: number, detail: string, requestId: string }
    assert.deepEqual([body.status, body.title, body.detail, body.requestId], [status, title, detail, id], path)
    assert.deepEqual(logs.filter((l) => l.level === 40 && l.reqId === id).map((l) => l.dropped), [['content-disposition']], path)
  }
  await assertStillServingOverHttp(url)
})

test('socket: headers over 16 KB get a 431 problem with a request id and Connection: close', async (t) => {
  const { port, url } = await listening(t)
  const res = await rawRequest(port, `GET /ok HTTP/1.1\r\nHost: localhost\r\nX-Padding: ${'a'.repeat(17 * 1024)}\r\n\r\n`)
  assertSocketProblem(res, 'HTTP/1.1 431 Request Header Fields Too Large', {
    type: TYPE + 'headers-too-large',
    title: 'Request Header Fields Too Large',
    status: 431,
    detail: 'The request headers are too large'
  })
  await assertStillServingOverHttp(url)
})

test('socket: a bad URL path (/%zz) gets a 400 problem with the request id header', async (t) => {
  const { port, url } = await listening(t)
  const res = await rawRequest(port, 'GET /%zz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  assert.equal(res.status, 400)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.match(res.headers['x-request-id'], UUID)
  assert.deepStrictEqual(JSON.parse(res.body), {
    type: TYPE + 'bad-request',
    title: 'Bad Request',
    status: 400,
    detail: 'The URL is not valid',
    instance: '/%zz',
    requestId: res.headers['x-request-id']
  })
  await assertStillServingOverHttp(url)
})

test('socket: a 404 over a real connection never echoes the query string', async (t) => {
  const { port } = await listening(t)
  const res = await rawRequest(port, 'GET /missing?api_key=abc123 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  assert.equal(res.status, 404)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  assert.deepStrictEqual(JSON.parse(res.body), {
    type: TYPE + 'not-found',
    title: 'Not Found',
    status: 404,
    detail: 'No route matches GET /missing',
    instance: '/missing',
    requestId: res.headers['x-request-id']
  })
})

// ---------------------------------------------------------------------------------------
// Hostile errors: whatever a route throws, the answer is a problem with the request id,
// and the error is logged. The handler itself must never throw.

/** Routes that throw what no well-behaved code would. */
const hostile: FastifyPluginAsync = async (app) => {
  app.get('/ok', async () => ({ ok: true }))
  const routes: Record<string, () => unknown> = {
    'validation-null': () => ({ validation: [null] }),
    'validation-odd': () => ({ validation: [{ instancePath: 7, message: { no: 1 }, keyword: 'required', params: null }, 'x'], validationContext: Symbol('where') }),
    'status-text': () => Object.assign(new Error('status is text'), { statusCode: 'teapot' }),
    'status-float': () => Object.assign(new Error('status is a fraction'), { statusCode: 404.5 }),
    'status-huge': () => Object.assign(new Error('status out of range'), { statusCode: 1e9 }),
    'status-symbol': () => Object.assign(new Error('status is a symbol'), { statusCode: Symbol('418') }),
    'spikard-code-bad-status': () => Object.assign(new Error('spikard code with a symbol status'), { code: 'SPK_ERR_NOT_FOUND', statusCode: Symbol('x') }),
    'message-object': () => ({ statusCode: 418, message: { toString () { throw new Error('no text') } } }),
    'code-symbol': () => Object.assign(new Error('a symbol code'), { statusCode: 409, code: Symbol('SPK_ERR_NOT_FOUND') }),
    frozen: () => Object.freeze(Object.assign(new Error('frozen conflict'), { statusCode: 409 })),
    'throwing-getters': () => ({
      get statusCode (): number { throw new Error('getter statusCode') },
      get message (): string { throw new Error('getter message') },
      get validation (): unknown { throw new Error('getter validation') }
    }),
    revoked: () => {
      const { proxy, revoke } = Proxy.revocable({}, {})
      revoke()
      return proxy
    },
    null: () => null,
    symbol: () => Symbol('thrown'),
    'crlf-headers': () => Object.assign(new Error('header injection'), {
      statusCode: 400,
      headers: { 'x-evil': 'a\r\nSet-Cookie: pwned=1', 'bad name': 'v', 'x-undefined': undefined, 'x-list': ['a', 'b\nc'], 'x-fine': 'kept', 'x-number': 3 }
    }),
    'headers-getter': () => ({ statusCode: 400, message: 'headers getter', get headers (): unknown { throw new Error('getter headers') } })
  }
  for (const [name, make] of Object.entries(routes)) {
    app.get(`/h/${name}`, async () => { throw make() })
  }
}

async function hostileApp (t: TestContext): Promise<TestApp> {
  const built = await build({ requestId: true }, hostile)
  t.after(() => built.app.close())
  return built
}

const INTERNAL = { type: 'internal-error', title: 'Internal Server Error', detail: 'The server failed to handle the request' }

test('hostile errors: malformed validation entries still give a 422 listing them', async (t) => {
  const { app, logs } = await hostileApp(t)
  expectProblem(await app.inject({ url: '/h/validation-null' }), 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request body failed validation',
    instance: '/h/validation-null',
    errors: [{ location: 'body', field: '', message: 'is invalid' }]
  })
  expectProblem(await app.inject({ url: '/h/validation-odd' }), 422, {
    type: 'validation-failed',
    title: 'Unprocessable Content',
    detail: 'The request body failed validation',
    instance: '/h/validation-odd',
    errors: [{ location: 'body', field: '', message: 'is invalid' }, { location: 'body', field: '', message: 'is invalid' }]
  })
  assert.deepStrictEqual(logs.filter((l) => l.level >= 40), [])
  await assertStillServing(app)
})

test('hostile errors: a statusCode that is not an integer from 400 to 599 is a logged 500', async (t) => {
  const { app, logs } = await hostileApp(t)
  for (const [name, message] of [['status-text', 'status is text'], ['status-float', 'status is a fraction'], ['status-huge', 'status out of range'],
    ['status-symbol', 'status is a symbol'], ['spikard-code-bad-status', 'spikard code with a symbol status']]) {
    const url = `/h/${name}`
    const res = await app.inject({ url })
    if (name === 'spikard-code-bad-status') {
      // A spikard code keeps its registry status when the statusCode is unusable.
      expectProblem(res, 404, { type: 'not-found', title: 'Not Found', detail: message, instance: url })
      continue
    }
    expectProblem(res, 500, { ...INTERNAL, instance: url })
    const failures = logs.filter((l) => l.level === 50 && l.reqId === res.headers['x-request-id'])
    assert.deepStrictEqual(failures.map((l) => [l.msg, l.err.message]), [['request failed', message]], url)
  }
  await assertStillServing(app)
})

test('hostile errors: a message that is not a string, a Symbol code, a frozen error', async (t) => {
  const { app, logs } = await hostileApp(t)
  expectProblem(await app.inject({ url: '/h/message-object' }), 418, { type: 'i-m-a-teapot', title: 'I\'m a Teapot', detail: 'I\'m a Teapot', instance: '/h/message-object' })
  expectProblem(await app.inject({ url: '/h/code-symbol' }), 409, { type: 'conflict', title: 'Conflict', detail: 'a symbol code', instance: '/h/code-symbol' })
  expectProblem(await app.inject({ url: '/h/frozen' }), 409, { type: 'conflict', title: 'Conflict', detail: 'frozen conflict', instance: '/h/frozen' })
  assert.deepStrictEqual(logs.filter((l) => l.level >= 40), [])
  await assertStillServing(app)
})

test('hostile errors: getters that throw, a revoked proxy, a thrown null or Symbol: a generic 500, and the log says what happened', async (t) => {
  const { app, logs } = await hostileApp(t)
  for (const name of ['throwing-getters', 'revoked', 'null', 'symbol']) {
    const url = `/h/${name}`
    const res = await app.inject({ url })
    expectProblem(res, 500, { ...INTERNAL, instance: url })
    const lines = logs.filter((l) => l.reqId === res.headers['x-request-id'] && l.level >= 40)
    assert.ok(lines.length >= 1 && lines.every((l) => l.level === 50), `${url}: ${JSON.stringify(lines)}`)
    assert.ok(lines.some((l) => l.msg === 'request failed'), `${url}: ${JSON.stringify(lines)}`)
    if (name === 'throwing-getters' || name === 'revoked') {
      // Rendering failed: the failure is logged, and the original error as far as it can be.
      const failure = lines.find((l) => l.msg === 'the error could not be rendered as a problem; answered 500')
      assert.ok(failure !== undefined, `${url}: ${JSON.stringify(lines)}`)
      assert.equal(failure.err.message, name === 'revoked' ? 'Cannot perform \'get\' on a proxy that has been revoked' : 'getter validation')
      assert.equal(lines.length, 2, `${url}: ${JSON.stringify(lines)}`)
    }
  }
  await assertStillServing(app)
})

test('hostile errors: headers Node would refuse (CR/LF, invalid names, undefined) are dropped and logged; the rest is sent', async (t) => {
  const { app, logs } = await hostileApp(t)
  const res = await app.inject({ url: '/h/crlf-headers' })
  expectProblem(res, 400, { type: 'bad-request', title: 'Bad Request', detail: 'header injection', instance: '/h/crlf-headers' })
  assert.equal(res.headers['x-fine'], 'kept')
  assert.equal(res.headers['x-number'], '3')
  for (const name of ['x-evil', 'set-cookie', 'bad name', 'x-undefined', 'x-list']) assert.equal(res.headers[name], undefined, name)
  const warnings = logs.filter((l) => l.level === 40)
  assert.deepStrictEqual(warnings.map((l) => [l.reqId, l.msg, l.dropped]), [[res.headers['x-request-id'],
    'headers of the error not sent: Node refuses their names or values', ['x-evil', 'bad name', 'x-undefined', 'x-list']]])
  assert.deepStrictEqual(logs.filter((l) => l.level >= 50), [])

  // Headers behind a getter that throws: the problem is sent without them.
  const getter = await app.inject({ url: '/h/headers-getter' })
  expectProblem(getter, 500, { ...INTERNAL, instance: '/h/headers-getter' })
  await assertStillServing(app)
})

test('socket: the status line says the problem title (RFC 9110 names: 413 Content Too Large, 422 Unprocessable Content)', async (t) => {
  const { app } = await setup(t)
  const { port } = await listen(app)
  const cases: Array<[string, string, string]> = [
    ['POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}', 'HTTP/1.1 422 Unprocessable Content', 'Unprocessable Content'],
    ['POST /small HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 20\r\nConnection: close\r\n\r\n{"a":"bbbbbbbbbbbbb"}', 'HTTP/1.1 413 Content Too Large', 'Content Too Large'],
    ['GET /nowhere HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 'HTTP/1.1 404 Not Found', 'Not Found'],
    ['GET /crash HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', 'HTTP/1.1 500 Internal Server Error', 'Internal Server Error']
  ]
  for (const [request, statusLine, title] of cases) {
    const res = await rawRequest(port, request)
    assert.equal(res.statusLine, statusLine)
    assert.equal(JSON.parse(res.body).title, title)
  }
})
