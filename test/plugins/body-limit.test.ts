/**
 * Body limits: off by default (Fastify's own 1 MiB applies); on, `max` for every route
 * registered after spikard, Fastify's `bodyLimit` route option overriding it, and the
 * limit holding on the decoded size of gzip, deflate and br bodies. Every rejection is
 * a problem, and the server (and, for a 415, the same keep-alive connection) serves the
 * next request.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import zlib from 'node:zlib'
import { Readable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type LightMyRequestResponse } from 'fastify'
import spikard from '../../src/spikard.js'
import bodyLimitPlugin from '../../plugins/body-limit/index.js'
import type { CreateServerConfig } from '../../src/server.js'
import { SpikardConfigError } from '../../src/errors.js'
import { assertOptionsRefused, build, listen, rawRequest, withTimeout, UUID, type RawResponse } from '../helpers.js'

const MiB = 1024 * 1024
const PROBLEM_JSON = 'application/problem+json; charset=utf-8'

const routes: FastifyPluginAsync = async (app) => {
  app.get('/ok', async () => ({ ok: true }))
  app.get('/limit', async (request) => ({ bodyLimit: request.routeOptions.bodyLimit }))
  app.post('/echo', async (request) => ({ body: request.body ?? null, contentEncoding: request.headers['content-encoding'] ?? null }))
  app.post('/small', { bodyLimit: 16 }, async (request) => ({ body: request.body }))
  app.post('/large', { bodyLimit: 4096 }, async (request) => ({ body: request.body }))
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<FastifyInstance> {
  const { app } = await build({ requestId: true, ...config }, routes)
  t.after(() => app.close())
  return app
}

/** A JSON object of exactly `size` bytes. */
function jsonOfSize (size: number): string {
  return JSON.stringify({ s: 'x'.repeat(size - 8) })
}

function post (app: FastifyInstance, url: string, payload: string | Buffer, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload })
}

interface Expected { status: number, type: string, title: string, detail: string, instance: string }

const tooLarge = (limit: number, instance = '/echo'): Expected =>
  ({ status: 413, type: 'body-too-large', title: 'Content Too Large', detail: `The request body exceeds the limit of ${limit} bytes`, instance })
const unsupported = (encoding: string, accepted = 'gzip, deflate, br or identity'): Expected => ({
  status: 415,
  type: 'unsupported-content-encoding',
  title: 'Unsupported Media Type',
  detail: `Content-Encoding ${JSON.stringify(encoding)} is not supported; send ${accepted}`,
  instance: '/echo'
})
const malformed = (what: string): Expected =>
  ({ status: 400, type: 'malformed-body', title: 'Bad Request', detail: `The request body is not valid ${what}`, instance: '/echo' })

/** The whole problem body of an injected or raw response, its request id from the response header. */
function expectProblem (res: LightMyRequestResponse | RawResponse, expected: Expected): void {
  const status = 'statusCode' in res ? res.statusCode : res.status
  const id = res.headers['x-request-id']
  assert.equal(status, expected.status, `status (body: ${res.body})`)
  assert.match(String(id), UUID)
  assert.equal(res.headers['content-type'], PROBLEM_JSON)
  const { status: _s, type, ...rest } = expected
  assert.deepStrictEqual(JSON.parse(res.body), { type: `https://spikard.dev/errors/${type}`, status, ...rest, requestId: id })
}

function expectEcho (res: LightMyRequestResponse | RawResponse, body: unknown, contentEncoding: string | null = null): void {
  assert.equal('statusCode' in res ? res.statusCode : res.status, 200, res.body)
  assert.deepStrictEqual(JSON.parse(res.body), { body, contentEncoding })
}

/** gzip of `size` zero bytes, compressed a mebibyte at a time so the test never holds the inflated body. */
async function gzipZeros (size: number): Promise<Buffer> {
  const gzip = zlib.createGzip({ level: 9 })
  const parts: Buffer[] = []
  gzip.on('data', (chunk: Buffer) => parts.push(chunk))
  const zeros = Buffer.alloc(MiB)
  for (let written = 0; written < size; written += MiB) gzip.write(zeros)
  gzip.end()
  await once(gzip, 'end')
  return Buffer.concat(parts)
}

function head (lines: string[]): string {
  return `${['Host: localhost', ...lines].join('\r\n')}\r\n\r\n`
}

/** GET /ok on a fresh connection: the server still serves after a rejection. */
async function assertServing (port: number): Promise<void> {
  const res = await rawRequest(port, `GET /ok HTTP/1.1\r\n${head(['Connection: close'])}`)
  assert.equal(res.status, 200)
  assert.equal(res.body, '{"ok":true}')
}

/** One keep-alive connection: each request() writes raw bytes and reads exactly one response. */
function connection (port: number): { request: (data: string | Buffer) => Promise<RawResponse>, write: (data: Buffer) => void, closed: Promise<unknown>, destroy: () => void } {
  const socket = net.connect(port, '127.0.0.1')
  const closed = once(socket, 'close')
  let received = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]) })
  socket.on('error', () => {})

  function parse (): RawResponse | undefined {
    const text = received.toString('latin1')
    const split = text.indexOf('\r\n\r\n')
    if (split === -1) return undefined
    const [statusLine, ...lines] = text.slice(0, split).split('\r\n')
    const all: Record<string, string[]> = {}
    for (const line of lines) {
      const colon = line.indexOf(':');
      (all[line.slice(0, colon).trim().toLowerCase()] ??= []).push(line.slice(colon + 1).trim())
    }
    const headers = Object.fromEntries(Object.entries(all).map(([name, values]) => [name, values.join(', ')]))
    const end = split + 4 + Number(headers['content-length'])
    if (received.length < end) return undefined
    const body = text.slice(split + 4, end)
    received = received.subarray(end)
    return { status: Number(statusLine.split(' ')[1]), statusLine, headers, all, body }
  }

  async function request (data: string | Buffer): Promise<RawResponse> {
    socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
    return await withTimeout((async () => {
      for (;;) {
        const response = parse()
        if (response !== undefined) return response
        await Promise.race([once(socket, 'data'), closed.then(() => { throw new Error(`connection closed; got ${JSON.stringify(received.toString('latin1'))}`) })])
      }
    })(), 5000, 'a response on the keep-alive connection')
  }

  return { request, write: (data) => { socket.write(data) }, closed, destroy: () => socket.destroy() }
}

// ---------------------------------------------------------------------------------------

test('false: not registered; Fastify\'s own 1 MiB limit applies and encoded bodies are not touched', async (t) => {
  const app = await setup(t, { bodyLimit: false })
  assert.equal(app.hasPlugin('spikard-body-limit'), false)
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: MiB })
  expectEcho(await post(app, '/echo', jsonOfSize(MiB)), { s: 'x'.repeat(MiB - 8) })
  expectProblem(await post(app, '/echo', jsonOfSize(MiB + 1)), tooLarge(MiB))
  // Not decoded: the JSON parser sees gzip bytes.
  expectProblem(await post(app, '/echo', zlib.gzipSync('{"a":1}'), { 'content-encoding': 'gzip' }), malformed('JSON'))
  // Not checked either.
  expectEcho(await post(app, '/echo', '{"a":1}', { 'content-encoding': 'zstd' }), { a: 1 }, 'zstd')
})

test('on by default, and true: a 1 MiB limit on the decoded body, decoding on', async (t) => {
  for (const config of [{}, { bodyLimit: true }]) {
    const app = await setup(t, config)
    assert.equal(app.hasPlugin('spikard-body-limit'), true)
    expectProblem(await post(app, '/echo', zlib.gzipSync(jsonOfSize(MiB + 1)), { 'content-encoding': 'gzip' }), tooLarge(MiB))
  }
  const app = await setup(t, { bodyLimit: true })
  assert.equal(app.hasPlugin('spikard-body-limit'), true)
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: MiB })
  expectEcho(await post(app, '/echo', jsonOfSize(MiB)), { s: 'x'.repeat(MiB - 8) })
  expectProblem(await post(app, '/echo', jsonOfSize(MiB + 1)), tooLarge(MiB))
  expectEcho(await post(app, '/echo', zlib.gzipSync(jsonOfSize(MiB)), { 'content-encoding': 'gzip' }), { s: 'x'.repeat(MiB - 8) })
  expectProblem(await post(app, '/echo', zlib.gzipSync(jsonOfSize(MiB + 1)), { 'content-encoding': 'gzip' }), tooLarge(MiB))
})

test('max in bytes', async (t) => {
  const app = await setup(t, { bodyLimit: { max: 100 } })
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: 100 })
  expectEcho(await post(app, '/echo', jsonOfSize(100)), { s: 'x'.repeat(92) })
  expectProblem(await post(app, '/echo', jsonOfSize(101)), tooLarge(100))
})

test('max as a size string', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '2kb' } })
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: 2048 })
  expectEcho(await post(app, '/echo', jsonOfSize(2048)), { s: 'x'.repeat(2040) })
  expectProblem(await post(app, '/echo', jsonOfSize(2049)), tooLarge(2048))
})

test('a route\'s bodyLimit overrides max, smaller or larger, and the 413 names the route\'s limit', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  expectProblem(await post(app, '/small', jsonOfSize(17)), tooLarge(16, '/small'))
  expectEcho(await post(app, '/echo', jsonOfSize(1024)), { s: 'x'.repeat(1016) })
  expectProblem(await post(app, '/echo', jsonOfSize(1025)), tooLarge(1024))
  const large = await post(app, '/large', jsonOfSize(4096))
  assert.equal(large.statusCode, 200)
  assert.deepStrictEqual(large.json(), { body: { s: 'x'.repeat(4088) } })
  expectProblem(await post(app, '/large', jsonOfSize(4097)), tooLarge(4096, '/large'))
  // The same limits on decoded sizes.
  expectProblem(await post(app, '/small', zlib.gzipSync(jsonOfSize(17)), { 'content-encoding': 'gzip' }), tooLarge(16, '/small'))
  assert.equal((await post(app, '/large', zlib.gzipSync(jsonOfSize(4096)), { 'content-encoding': 'gzip' })).statusCode, 200)
  expectProblem(await post(app, '/large', zlib.gzipSync(jsonOfSize(4097)), { 'content-encoding': 'gzip' }), tooLarge(4096, '/large'))
})

test('registered on a Fastify instance of your own, routes registered after spikard get max', async (t) => {
  const app = Fastify() // Fastify's default bodyLimit: 1 MiB
  t.after(() => app.close())
  await app.register(spikard, { requestId: true, bodyLimit: { max: 100 } })
  await app.register(routes)
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: 100 })
  expectEcho(await post(app, '/echo', jsonOfSize(100)), { s: 'x'.repeat(92) })
  expectProblem(await post(app, '/echo', jsonOfSize(101)), tooLarge(100))
  expectProblem(await post(app, '/small', jsonOfSize(17)), tooLarge(16, '/small'))
  assert.equal((await post(app, '/large', jsonOfSize(4096))).statusCode, 200)
})

test('the plugin on its own: max as a size string, checked at ready()', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(bodyLimitPlugin, { max: '3kb' })
  app.get('/limit', async (request) => ({ bodyLimit: request.routeOptions.bodyLimit }))
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: 3072 })

  const zero = Fastify()
  t.after(() => zero.close())
  zero.register(bodyLimitPlugin, { max: 0 })
  await assert.rejects(async () => { await zero.ready() }, (error: unknown) => {
    assert.ok(error instanceof SpikardConfigError)
    assert.deepStrictEqual(error.problems, ['bodyLimit.max: expected a size (bytes, or a string such as "512kb", "1mb") of at least 1 byte, found 0'])
    return true
  })
})

test('the shorthand: bodyLimit: 512kb is the limit', async (t) => {
  const app = await setup(t, { bodyLimit: '512kb' })
  assert.deepStrictEqual((await app.inject({ url: '/limit' })).json(), { bodyLimit: 512 * 1024 })
  expectProblem(await post(app, '/echo', jsonOfSize(512 * 1024 + 1)), tooLarge(512 * 1024))
})

test('a route registered before spikard on an instance with a larger Fastify limit is held to bodyLimit.max too, encoded or not', async (t) => {
  const app = Fastify({ bodyLimit: 10 * MiB })
  t.after(() => app.close())
  const echo = async (request: { body: unknown }): Promise<unknown> => request.body
  app.post('/early', echo)
  app.post('/early-own', { bodyLimit: 4096 }, echo)
  await app.register(spikard, { bodyLimit: '1kb', shutdown: { signals: false } })
  app.post('/late', echo)
  for (const url of ['/early', '/late']) {
    const fits = await post(app, url, jsonOfSize(1024))
    assert.equal(fits.statusCode, 200, url)
    assert.deepStrictEqual(fits.json(), { s: 'x'.repeat(1024 - 8) })
    const refused = [
      await post(app, url, jsonOfSize(1025)),
      // Chunked: no Content-Length to refuse it on, so the count stops it.
      await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, payload: Readable.from([jsonOfSize(2048)]) }),
      await post(app, url, zlib.gzipSync(jsonOfSize(2048)), { 'content-encoding': 'gzip' })
    ]
    for (const response of refused) {
      assert.equal(response.statusCode, 413, `${url}: ${response.body}`)
      assert.match(response.body, /1024/)
    }
  }
  // The late route's errors are problem details; the early one keeps the error handler it
  // was registered with (Fastify's), whatever spikard registers after it.
  expectProblem(await post(app, '/late', jsonOfSize(1025)), tooLarge(1024, '/late'))
  // A route's own limit stays its own.
  assert.equal((await post(app, '/early-own', jsonOfSize(4096))).statusCode, 200)
  assert.equal((await post(app, '/early-own', jsonOfSize(4097))).statusCode, 413)
})

test('gzip, x-gzip, deflate and br bodies are decoded and reach the handler as JSON, without Content-Encoding', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const json = JSON.stringify({ name: 'ada', tags: ['a', 'b'], text: 'é'.repeat(300) }) // 643 bytes, multi-byte characters
  const body = JSON.parse(json)
  // Each passes Fastify's Content-Length check: it is compared with the encoded bytes.
  expectEcho(await post(app, '/echo', zlib.gzipSync(json), { 'content-encoding': 'gzip' }), body)
  expectEcho(await post(app, '/echo', zlib.gzipSync(json), { 'content-encoding': 'x-gzip' }), body)
  expectEcho(await post(app, '/echo', zlib.gzipSync(json), { 'content-encoding': 'GZip' }), body)
  expectEcho(await post(app, '/echo', zlib.deflateSync(json), { 'content-encoding': 'deflate' }), body)
  expectEcho(await post(app, '/echo', zlib.brotliCompressSync(json), { 'content-encoding': 'br' }), body)
  // identity is passed through untouched, header included.
  expectEcho(await post(app, '/echo', json, { 'content-encoding': 'identity' }), body, 'identity')
  expectEcho(await post(app, '/echo', json, { 'content-encoding': '' }), body, '') // an empty list of codings
  // text/plain too: any parser sees the decoded body.
  const text = await post(app, '/echo', zlib.gzipSync('hello, world'), { 'content-type': 'text/plain', 'content-encoding': 'gzip' })
  expectEcho(text, 'hello, world')
  // An encoded body that is itself over the limit is refused on its Content-Length.
  const noise = Buffer.from(Array.from({ length: 2000 }, (_, i) => (i * 7919) % 251))
  expectProblem(await post(app, '/echo', zlib.gzipSync(noise), { 'content-encoding': 'gzip' }), tooLarge(1024))
})

test('a request without a body is left alone, whatever its Content-Encoding', async (t) => {
  const app = await setup(t, { bodyLimit: true })
  const res = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-encoding': 'zstd', 'content-length': '0' } })
  expectEcho(res, null, 'zstd')
})

test('unknown and multiple encodings: 415 naming the encoding, JSON-quoted and truncated', async (t) => {
  const app = await setup(t, { bodyLimit: true })
  for (const encoding of ['zstd', 'compress', 'gzip, br', 'br,gzip', 'gzip;q=1']) {
    expectProblem(await post(app, '/echo', '{}', { 'content-encoding': encoding }), unsupported(encoding))
  }
  const long = 'x'.repeat(300)
  const res = await post(app, '/echo', '{}', { 'content-encoding': long })
  expectProblem(res, unsupported('x'.repeat(100)))
})

test('decode: false: any encoding but identity is a 415', async (t) => {
  const app = await setup(t, { bodyLimit: { decode: false } })
  for (const [encoding, payload] of [['gzip', zlib.gzipSync('{}')], ['deflate', zlib.deflateSync('{}')], ['br', zlib.brotliCompressSync('{}')]] as const) {
    expectProblem(await post(app, '/echo', payload, { 'content-encoding': encoding }), unsupported(encoding, 'identity'))
  }
  expectEcho(await post(app, '/echo', '{"a":1}', { 'content-encoding': 'identity' }), { a: 1 }, 'identity')
})

test('a corrupt or truncated encoded body is a 400 malformed-body problem, never a 500', async (t) => {
  const app = await setup(t, { bodyLimit: true })
  const gzip = zlib.gzipSync(JSON.stringify({ text: 'x'.repeat(500) }))
  expectProblem(await post(app, '/echo', 'not gzip at all', { 'content-encoding': 'gzip' }), malformed('gzip'))
  expectProblem(await post(app, '/echo', gzip.subarray(0, gzip.length - 10), { 'content-encoding': 'gzip' }), malformed('gzip'))
  const flipped = Buffer.from(gzip)
  flipped[gzip.length - 5] ^= 0xff // the length trailer
  expectProblem(await post(app, '/echo', flipped, { 'content-encoding': 'gzip' }), malformed('gzip'))
  expectProblem(await post(app, '/echo', 'not deflate', { 'content-encoding': 'deflate' }), malformed('deflate'))
  expectProblem(await post(app, '/echo', Buffer.from([0xff, 0xff, 0xff, 0xff]), { 'content-encoding': 'br' }), malformed('Brotli'))
  assert.deepStrictEqual((await app.inject({ url: '/ok' })).json(), { ok: true })
})

test('Content-Length over the limit: 413 from the headers alone, without waiting for the body', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  const request = `POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', 'Content-Length: 10000000000'])}`
  const res = await withTimeout(rawRequest(port, request), 2000, 'the 413 before any body byte')
  expectProblem(res, tooLarge(1024))
  assert.equal(res.headers.connection, 'close')
  // The same when the body is encoded: Content-Length counts encoded bytes.
  const encoded = `POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', 'Content-Encoding: gzip', 'Content-Length: 10000000000'])}`
  expectProblem(await withTimeout(rawRequest(port, encoded), 2000, 'the 413 before any body byte'), tooLarge(1024))
  await assertServing(port)
})

/**
 * A client that sends `Expect: 100-continue` and its headers, and its body only once told
 * to continue (as curl does). Resolves with everything the server sent, the 100 included.
 */
function expectContinue (port: number, path: string, headers: string[], body: string): Promise<{ received: string, sentBody: boolean }> {
  return withTimeout(new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    let sentBody = false
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      received += chunk
      if (!sentBody && received.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        sentBody = true
        socket.write(body)
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve({ received, sentBody }))
    socket.write(`POST ${path} HTTP/1.1\r\n${head(['Expect: 100-continue', `Content-Length: ${Buffer.byteLength(body)}`, ...headers])}`)
  }), 3000, `POST ${path} with Expect: 100-continue`)
}

test('Expect: 100-continue: a body over the route\'s limit is refused (413) before the client sends it; one within it is asked for', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  const refused = await expectContinue(port, '/echo', ['Content-Type: application/json'], jsonOfSize(2048))
  assert.equal(refused.sentBody, false)
  assert.match(refused.received, /^HTTP\/1\.1 413 /)
  assert.match(refused.received, /\r\nconnection: close\r\n/i)
  // The route's own limit, larger than max.
  const accepted = await expectContinue(port, '/large', ['Content-Type: application/json', 'Connection: close'], jsonOfSize(2048))
  assert.equal(accepted.sentBody, true)
  assert.match(accepted.received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /)
  assert.ok(accepted.received.endsWith(jsonOfSize(2048).replace('{', '{"body":{').replace(/}$/, '}}')), accepted.received.slice(-80))
  await assertServing(port)
})

test('Expect: 100-continue: an unsupported Content-Encoding (415), and a body over max on a route spikard counts itself (413), are refused before the client sends them', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  const unsupported = await expectContinue(port, '/echo', ['Content-Type: application/json', 'Content-Encoding: zstd'], jsonOfSize(512))
  assert.equal(unsupported.sentBody, false)
  assert.match(unsupported.received, /^HTTP\/1\.1 415 /)
  assert.match(unsupported.received, /\r\nconnection: close\r\n/i)
  // An accepted one is asked for.
  const identity = await expectContinue(port, '/echo', ['Content-Type: application/json', 'Content-Encoding: identity', 'Connection: close'], '{"a":1}')
  assert.equal(identity.sentBody, true)
  assert.match(identity.received, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /)

  // A route registered before spikard on an instance with a larger Fastify limit.
  const own = Fastify({ bodyLimit: 10 * MiB })
  t.after(() => own.close())
  own.post('/early', async (request) => request.body)
  await own.register(spikard, { bodyLimit: '1kb', shutdown: { signals: false } })
  const { port: ownPort } = await listen(own)
  const over = await expectContinue(ownPort, '/early', ['Content-Type: application/json'], jsonOfSize(2048))
  assert.equal(over.sentBody, false)
  assert.match(over.received, /^HTTP\/1\.1 413 /)
  assert.match(over.received, /limit of 1024 bytes/)
})

test('a chunked body past the limit: 413 once the limit is crossed, before the body ends', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  const chunk = `200\r\n${'x'.repeat(512)}\r\n`
  // Three 512-byte chunks and no last chunk: the server must not wait for one.
  const request = `POST /echo HTTP/1.1\r\n${head(['Content-Type: text/plain', 'Transfer-Encoding: chunked'])}${chunk.repeat(3)}`
  const res = await withTimeout(rawRequest(port, request), 2000, 'the 413 mid-body')
  expectProblem(res, tooLarge(1024))
  assert.equal(res.headers.connection, 'close')
  await assertServing(port)
})

test('an encoded chunked body is held to the limit on the bytes sent too: padding that decodes to nothing is no way past it', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  // gzip of {"a":1}, then empty stored blocks (five bytes each, decoding to nothing), then
  // the final block. Fastify compares the encoded bytes with the limit only when decoded
  // bytes arrive, and none come after the JSON: a body decoding to 7 bytes could be
  // megabytes long as sent, where a plain chunked body stops at 1 KiB and a Content-Length
  // over it is refused from the headers.
  const json = '{"a":1}'
  const trailer = Buffer.alloc(8)
  trailer.writeUInt32LE(zlib.crc32(json), 0)
  trailer.writeUInt32LE(json.length, 4)
  const start = Buffer.concat([zlib.gzipSync('').subarray(0, 10), zlib.deflateRawSync(json, { finishFlush: zlib.constants.Z_SYNC_FLUSH })])
  const rest = (padding: number): Buffer =>
    Buffer.concat([...Array.from({ length: padding }, () => Buffer.from([0, 0, 0, 0xff, 0xff])), Buffer.from([0x03, 0x00]), trailer])
  assert.equal(zlib.gunzipSync(Buffer.concat([start, rest(800)])).toString(), json)
  const chunk = (data: Buffer): Buffer => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')])
  const send = async (padding: number): Promise<RawResponse> => {
    const c = connection(port)
    t.after(() => c.destroy())
    // The JSON first, decoded and handed to the parser before the padding arrives.
    c.write(Buffer.concat([
      Buffer.from(`POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', 'Content-Encoding: gzip', 'Transfer-Encoding: chunked'])}`),
      chunk(start)
    ]))
    await new Promise((resolve) => setTimeout(resolve, 50))
    return await c.request(Buffer.concat([chunk(rest(padding)), Buffer.from('0\r\n\r\n')]))
  }
  expectEcho(await send(100), { a: 1 })
  const res = await send(800)
  expectProblem(res, tooLarge(1024))
  assert.equal(res.headers.connection, 'close')
  await assertServing(port)
})

test('a gzip bomb: 413 at the limit, zlib destroyed, memory far below the inflated size', async (t) => {
  const app = await setup(t, { bodyLimit: true })
  const { port } = await listen(app)
  const inflatedSize = 64 * MiB
  const bomb = await gzipZeros(inflatedSize) // about 64 KB
  assert.ok(bomb.length < 100_000, `bomb is ${bomb.length} bytes`)

  // Watch every gunzip the server makes: how much it inflates, and that it is destroyed.
  const createGunzip = zlib.createGunzip
  const made: zlib.Gunzip[] = []
  let inflated = 0
  t.mock.method(zlib, 'createGunzip', (options?: zlib.ZlibOptions) => {
    const gunzip = createGunzip(options)
    made.push(gunzip)
    gunzip.on('data', (chunk: Buffer) => { inflated += chunk.length })
    return gunzip
  })

  const maxRss = process.resourceUsage().maxRSS * 1024
  const rss = process.memoryUsage.rss()
  for (const framing of [[`Content-Length: ${bomb.length}`], ['Transfer-Encoding: chunked']]) {
    const chunked = framing[0].startsWith('Transfer')
    const request = Buffer.concat([
      Buffer.from(`POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', 'Content-Encoding: gzip', ...framing])}`),
      chunked ? Buffer.from(`${bomb.length.toString(16)}\r\n`) : Buffer.alloc(0),
      bomb,
      chunked ? Buffer.from('\r\n0\r\n\r\n') : Buffer.alloc(0)
    ])
    const res = await withTimeout(rawRequest(port, request), 5000, 'the 413 for a gzip bomb')
    expectProblem(res, tooLarge(MiB))
    assert.equal(res.headers.connection, 'close')
  }
  await new Promise((resolve) => setTimeout(resolve, 50))

  assert.equal(made.length, 2)
  assert.ok(made.every((gunzip) => gunzip.destroyed), 'every gunzip destroyed')
  // Each stopped shortly after the limit: a few zlib chunks past it, not the 64 MiB.
  assert.ok(inflated < 2 * (MiB + MiB / 2), `inflated ${inflated} bytes`)
  const grown = Math.max(process.resourceUsage().maxRSS * 1024 - maxRss, process.memoryUsage.rss() - rss)
  assert.ok(grown < inflatedSize / 4, `RSS grew by ${grown} bytes`)
  await assertServing(port)
})

test('a stream content-type parser of your own (no parseAs) gets a gzip bomb cut at the limit too: 413, not the inflated body', async (t) => {
  // Fastify counts bytes only for its own parsers and those added with parseAs; a stream
  // parser reads the payload as it comes, so the decoded stream must stop at the limit itself.
  const { app } = await build({ bodyLimit: '64kb' }, async (app) => {
    app.addContentTypeParser('text/csv', (_request, payload, done) => {
      let bytes = 0
      payload.on('data', (chunk: Buffer) => { bytes += chunk.length })
      payload.on('end', () => done(null, { bytes }))
      payload.on('error', (error) => done(error))
    })
    app.post('/csv', async (request) => request.body)
    app.get('/ok', async () => ({ ok: true }))
  })
  t.after(() => app.close())
  const { port } = await listen(app)
  const send = async (body: Buffer): Promise<RawResponse> => await withTimeout(rawRequest(port, Buffer.concat([
    Buffer.from(`POST /csv HTTP/1.1\r\n${head(['Content-Type: text/csv', 'Content-Encoding: gzip', `Content-Length: ${body.length}`, 'Connection: close'])}`),
    body
  ])), 5000, 'the answer to a gzip body')
  const fits = await send(zlib.gzipSync(Buffer.alloc(64 * 1024)))
  assert.equal(fits.status, 200, fits.body)
  assert.deepStrictEqual(JSON.parse(fits.body), { bytes: 64 * 1024 })
  const res = await send(await gzipZeros(16 * MiB))
  expectProblem(res, tooLarge(64 * 1024, '/csv'))
  await assertServing(port)
})

test('a client that leaves mid-body: zlib destroyed, the server serves on', async (t) => {
  const app = await setup(t, { bodyLimit: true })
  const { port } = await listen(app)
  const createGunzip = zlib.createGunzip
  const made: zlib.Gunzip[] = []
  t.mock.method(zlib, 'createGunzip', (options?: zlib.ZlibOptions) => {
    const gunzip = createGunzip(options)
    made.push(gunzip)
    return gunzip
  })
  const gzip = zlib.gzipSync(jsonOfSize(5000))
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', 'Content-Encoding: gzip', `Content-Length: ${gzip.length}`])}`)
  socket.write(gzip.subarray(0, 20))
  await new Promise((resolve) => setTimeout(resolve, 50))
  socket.destroy()
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(made.length, 1)
  assert.equal(made[0].destroyed, true)
  await assertServing(port)
})

test('keep-alive: after a 415 the same connection serves the next requests; after a 400 or 413 the server closes it', async (t) => {
  const app = await setup(t, { bodyLimit: { max: '1kb' } })
  const { port } = await listen(app)
  const c = connection(port)
  t.after(() => c.destroy())
  const json = '{"a":1}'
  const post = (encoding: string, body: string | Buffer, framing = [`Content-Length: ${body.length}`]): Buffer => Buffer.concat([
    Buffer.from(`POST /echo HTTP/1.1\r\n${head(['Content-Type: application/json', `Content-Encoding: ${encoding}`, ...framing])}`),
    Buffer.from(body)
  ])

  const refused = await c.request(post('zstd', json))
  expectProblem(refused, unsupported('zstd'))
  assert.equal(refused.headers.connection, 'keep-alive')
  const refusedTwice = await c.request(post('gzip, br', json))
  expectProblem(refusedTwice, unsupported('gzip, br'))
  expectEcho(await c.request(post('gzip', zlib.gzipSync(json))), { a: 1 })
  expectEcho(await c.request(post('br', zlib.brotliCompressSync(json))), { a: 1 })
  const ok = await c.request(`GET /ok HTTP/1.1\r\n${head([])}`)
  assert.equal(ok.body, '{"ok":true}')

  const corrupt = await c.request(post('gzip', 'not gzip'))
  expectProblem(corrupt, malformed('gzip'))
  assert.equal(corrupt.headers.connection, 'close')
  await withTimeout(c.closed, 2000, 'the server closing the connection')

  // A 415 for a body too large to drain, or of unknown size, closes the connection too.
  const big = connection(port)
  t.after(() => big.destroy())
  const tooBig = await big.request(post('zstd', jsonOfSize(2000)))
  expectProblem(tooBig, unsupported('zstd'))
  assert.equal(tooBig.headers.connection, 'close')
  const chunked = connection(port)
  t.after(() => chunked.destroy())
  const unknownSize = await chunked.request(post('zstd', `7\r\n${json}\r\n0\r\n\r\n`, ['Transfer-Encoding: chunked']))
  expectProblem(unknownSize, unsupported('zstd'))
  assert.equal(unknownSize.headers.connection, 'close')
  await assertServing(port)
})

test('invalid options fail at createServer and at ready(), naming bodyLimit.max', async () => {
  const SIZE = 'a size (bytes, or a string such as "512kb", "1mb") of at least 1 byte'
  const cases: Array<[unknown, string]> = [
    [{ max: 'lots' }, `bodyLimit.max: expected ${SIZE}, found "lots"`],
    [{ max: -1 }, `bodyLimit.max: expected ${SIZE}, found -1`],
    [{ max: 1.5 }, `bodyLimit.max: expected ${SIZE}, found 1.5`],
    [{ mx: 10 }, 'bodyLimit.mx: unknown key (did you mean "max"?)'],
    [{ decode: 'yes' }, 'bodyLimit.decode: expected true or false, found "yes"']
  ]
  for (const [bodyLimit, problem] of cases) await assertOptionsRefused('bodyLimit', bodyLimit, [problem])
})
