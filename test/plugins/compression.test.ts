/**
 * Response compression: off by default; on, brotli or gzip as Accept-Encoding negotiates
 * (RFC 9110 weights, fixed where @fastify/compress gets them wrong), `Vary` on every
 * response that could have been compressed, nothing compressed that must not be (event
 * streams, encoded or partial responses, `compress: false` routes), streams compressed
 * chunk by chunk, and every compressed body decoding to exactly what the handler sent.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { once } from 'node:events'
import { PassThrough, type Readable } from 'node:stream'
import { createReadStream, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, constants, createBrotliDecompress, createGunzip, gunzipSync, gzipSync } from 'node:zlib'
import Fastify, { type FastifyInstance, type FastifyPluginAsync, type LightMyRequestResponse } from 'fastify'
import spikard from '../../src/spikard.js'
import { createServer, type CreateServerConfig } from '../../src/server.js'
import { SpikardConfigError } from '../../src/errors.js'
import { CompressedFiles } from '../../plugins/compression/cache.js'
import { fileStream } from '../../plugins/stream/file.js'
import { assertOptionsRefused, build, listen, rawRequest, withTimeout, type RawResponse, type TestApp } from '../helpers.js'

/** A JSON body of ~2.8 KB: over the default threshold, under the synchronous limit (64 KiB). */
const data = { items: Array.from({ length: 40 }, (_, i) => ({ id: i, name: `item ${i}`, description: 'a compressible description' })) }
const json = JSON.stringify(data)
/** Numbers that compress less well at gzip level 1 than at level 6 or 9 (the JSON above does not). */
const rows = JSON.stringify({ rows: Array.from({ length: 60 }, (_, i) => ({ i, v: (i * 7919) % 10007, w: (i * 104729) % 8191 })) })
/** Text of an exact length. */
const text = (length: number): string => 'spikard compresses text. '.repeat(Math.ceil(length / 25)).slice(0, length)
const brotli = (body: string | Buffer, quality: number): Buffer =>
  brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: quality } })

const routes: FastifyPluginAsync = async (app) => {
  app.get('/json', async () => data)
  app.get('/rows', async (_request, reply) => reply.type('application/json').send(rows))
  app.get('/text/:length', async (request, reply) => reply.type('text/plain').send(text(Number((request.params as { length: string }).length))))
  app.get('/vary/:value', async (request, reply) => reply.header('vary', (request.params as { value: string }).value).send(data))
}

async function setup (t: TestContext, config: CreateServerConfig, more?: FastifyPluginAsync): Promise<TestApp> {
  const built = await build({ server: { logger: { level: 'silent' } }, ...config }, async (app) => {
    await app.register(routes)
    if (more !== undefined) await app.register(more)
  })
  // Connections first: a failed streaming test leaves one open, which close() would wait for.
  t.after(async () => { built.app.server.closeAllConnections(); await built.app.close() })
  return built
}

async function get (app: FastifyInstance, url: string, acceptEncoding?: string, method: 'GET' | 'HEAD' = 'GET'): Promise<LightMyRequestResponse> {
  return await app.inject({ method, url, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } })
}

/** The body as the client reads it once its Content-Encoding is undone. */
function decoded (res: LightMyRequestResponse): string {
  const encoding = res.headers['content-encoding']
  if (encoding === 'br') return brotliDecompressSync(res.rawPayload).toString()
  if (encoding === 'gzip') return gunzipSync(res.rawPayload).toString()
  assert.equal(encoding, undefined, `unexpected content-encoding ${String(encoding)}`)
  return res.body
}

/** Asserts a compressed response: its coding, its Vary, and its body decoding to `body`. */
function assertCompressed (res: LightMyRequestResponse, encoding: 'br' | 'gzip', body: string, vary = 'Accept-Encoding'): void {
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-encoding'], encoding)
  assert.equal(res.headers.vary, vary)
  assert.ok(res.rawPayload.length < Buffer.byteLength(body), `${res.rawPayload.length} bytes is not smaller than ${Buffer.byteLength(body)}`)
  assert.equal(decoded(res), body)
}

/** Asserts an uncompressed response, with or without Vary. */
function assertPlain (res: LightMyRequestResponse, body: string | Buffer, vary: string | undefined): void {
  assert.equal(res.headers['content-encoding'], undefined)
  assert.equal(res.headers.vary, vary)
  assert.deepEqual(res.rawPayload, Buffer.from(body))
}

// --- on and off -------------------------------------------------------------------------

test('false: nothing compressed, no Vary', async (t) => {
  const { app } = await setup(t, { compression: false })
  const res = await get(app, '/json', 'gzip, deflate, br')
  assert.equal(res.statusCode, 200)
  assertPlain(res, json, undefined)
})

test('on by default: brotli for a client that takes it', async (t) => {
  const { app } = await setup(t, {})
  assertCompressed(await get(app, '/json', 'gzip, deflate, br'), 'br', json)
})

test('routes registered before spikard, in a prefixed plugin, and the not-found handler are compressed too', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  app.get('/early', async () => data)
  app.register(async (child) => { child.get('/child', async () => data) }, { prefix: '/v1' })
  await app.register(spikard, { shutdown: { signals: false } })
  // A prefix's own not-found handler (spikard's answers the others with small problems).
  app.register(async (child) => { child.setNotFoundHandler(async (_request, reply) => reply.code(404).send(data)) }, { prefix: '/v2' })
  for (const url of ['/early', '/v1/child']) assertCompressed(await get(app, url, 'gzip'), 'gzip', json)
  const missing = await get(app, '/v2/missing', 'gzip')
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(missing.rawPayload).toString(), json)
})

test('true: brotli preferred, quality 4, gzip level 6, threshold 1024 bytes', async (t) => {
  const { app } = await setup(t, { compression: true })
  const br = await get(app, '/json', 'gzip, deflate, br')
  assertCompressed(br, 'br', json)
  assert.deepEqual(br.rawPayload, brotli(json, 4))
  assert.notDeepEqual(br.rawPayload, brotli(json, 11))
  assert.equal(br.headers['content-length'], String(br.rawPayload.length))

  const gzip = await get(app, '/json', 'gzip')
  assertCompressed(gzip, 'gzip', json)
  assert.deepEqual(gzip.rawPayload, gzipSync(json, { level: 6 }))

  assertPlain(await get(app, '/text/1023', 'br'), text(1023), undefined)
  assertCompressed(await get(app, '/text/1024', 'br'), 'br', text(1024))
})

// --- options ----------------------------------------------------------------------------

test('threshold: a body one byte under it is sent as is, one at it is compressed; sizes such as "2kb" work', async (t) => {
  const { app } = await setup(t, { compression: { threshold: '2kb' } })
  assertPlain(await get(app, '/text/2047', 'gzip'), text(2047), undefined)
  assertCompressed(await get(app, '/text/2048', 'gzip'), 'gzip', text(2048))
})

test('threshold: 0 compresses even a two-byte body (a deliberate 0 survives the defaults)', async (t) => {
  const { app } = await setup(t, { compression: { threshold: 0 } })
  const res = await get(app, '/text/2', 'gzip')
  assert.equal(res.headers['content-encoding'], 'gzip')
  assert.equal(decoded(res), text(2))
})

test('encodings ["gzip"]: brotli is never used, whatever the client prefers', async (t) => {
  const { app } = await setup(t, { compression: { encodings: ['gzip'] } })
  assertPlain(await get(app, '/json', 'br'), json, 'Accept-Encoding')
  assertCompressed(await get(app, '/json', 'br, gzip;q=0.1'), 'gzip', json)
  assertCompressed(await get(app, '/json', '*'), 'gzip', json)
})

test('encodings: their order breaks ties between codings the client weighs equally', async (t) => {
  const { app } = await setup(t, { compression: { encodings: ['gzip', 'br'] } })
  assertCompressed(await get(app, '/json', 'br, gzip'), 'gzip', json)
  assertCompressed(await get(app, '/json', 'br, gzip;q=0.9'), 'br', json)
})

test('brotliQuality is passed to brotli: the bytes are exactly brotli\'s at that quality', async (t) => {
  const body = text(3000)
  const sizes: number[] = []
  for (const quality of [0, 11]) {
    const { app } = await setup(t, { compression: { brotliQuality: quality } })
    const res = await get(app, '/text/3000', 'br')
    assertCompressed(res, 'br', body)
    assert.deepEqual(res.rawPayload, brotli(body, quality))
    sizes.push(res.rawPayload.length)
  }
  assert.ok(sizes[0] > sizes[1], `quality 0 (${sizes[0]} bytes) should be larger than quality 11 (${sizes[1]} bytes)`)
})

test('gzipLevel is passed to gzip: the bytes are exactly gzip\'s at that level', async (t) => {
  const sizes: number[] = []
  for (const level of [1, 9]) {
    const { app } = await setup(t, { compression: { gzipLevel: level } })
    const res = await get(app, '/rows', 'gzip')
    assertCompressed(res, 'gzip', rows)
    assert.deepEqual(res.rawPayload, gzipSync(rows, { level }))
    sizes.push(res.rawPayload.length)
  }
  assert.ok(sizes[0] > sizes[1], `level 1 (${sizes[0]} bytes) should be larger than level 9 (${sizes[1]} bytes)`)
})

// --- negotiation ------------------------------------------------------------------------

const negotiation: Array<[string | undefined, 'br' | 'gzip' | undefined, string]> = [
  [undefined, undefined, 'no Accept-Encoding: no compression'],
  ['', undefined, 'an empty Accept-Encoding asks for no coding'],
  ['identity', undefined, 'identity only'],
  ['gzip;q=0', undefined, 'gzip refused, nothing else offered'],
  ['*', 'br', '* takes the preferred coding (the library gave gzip)'],
  ['br;q=0.5, gzip;q=1', 'gzip', 'the higher weight wins over the server\'s preference'],
  ['br;q=0.8, gzip;q=0.8', 'br', 'equal weights: the server\'s preference'],
  ['compress, zstd, x-unknown', undefined, 'unknown codings only: identity'],
  ['*;q=0', undefined, '*;q=0 refuses every coding: identity, not a 406'],
  ['gzip;q=0, *', 'br', 'gzip refused, * accepts brotli (the library gave gzip)'],
  ['*, br;q=0', 'gzip', 'brotli refused, * accepts gzip'],
  ['*;q=0.5, gzip;q=0', 'br', 'a refusal is not overridden by * (the library gave gzip)'],
  ['identity;q=1, gzip;q=0.5', undefined, 'identity weighed higher than any coding (the library gave gzip)'],
  ['identity;q=0.5, gzip', 'gzip', 'a coding weighed higher than identity'],
  ['GZIP', 'gzip', 'codings are case-insensitive'],
  ['x-gzip', 'gzip', 'x-gzip is gzip'],
  ['gzip; q=0.5 , br ; q=0.4', 'gzip', 'spaces around parameters'],
  ['br;q=2, gzip;q=abc', undefined, 'malformed weights are ignored'],
  ['gzip, gzip;q=0', undefined, 'a coding named twice: the refusal holds']
]

for (const [header, encoding, what] of negotiation) {
  test(`negotiation: ${JSON.stringify(header ?? null)} -> ${encoding ?? 'identity'} (${what}), with Vary either way`, async (t) => {
    const { app } = await setup(t, { compression: true })
    const res = await get(app, '/json', header)
    if (encoding === undefined) assertPlain(res, json, 'Accept-Encoding')
    else assertCompressed(res, encoding, json)
  })
}

test('negotiation: the x-no-compression request header (the library\'s opt-out) sends the body as is, with Vary', async (t) => {
  const { app } = await setup(t, { compression: true })
  const res = await app.inject({ url: '/json', headers: { 'accept-encoding': 'br', 'x-no-compression': '1' } })
  assertPlain(res, json, 'Accept-Encoding')
})

test('negotiation: handlers and later hooks see the Accept-Encoding the client sent', async (t) => {
  const seen: unknown[] = []
  const { app } = await setup(t, { compression: true }, async (app) => {
    app.addHook('onResponse', async (request) => { seen.push(request.headers['accept-encoding']) })
    app.get('/seen', async () => data)
  })
  assertCompressed(await app.inject({ url: '/seen', headers: { 'accept-encoding': 'gzip;q=0, *' } }), 'br', json)
  assertPlain(await app.inject({ url: '/seen' }), json, 'Accept-Encoding')
  assert.deepEqual(seen, ['gzip;q=0, *', undefined])
})

test('Vary: Accept-Encoding is added once to the handler\'s own Vary, whatever its case; * stays alone', async (t) => {
  const { app } = await setup(t, { compression: true })
  assertCompressed(await get(app, '/vary/Origin', 'br'), 'br', json, 'Origin, Accept-Encoding')
  assertPlain(await get(app, '/vary/Origin', 'identity'), json, 'Origin, Accept-Encoding')
  // the library made these "Accept-Encoding, accept-encoding" and "*, accept-encoding"
  assertCompressed(await get(app, '/vary/Accept-Encoding', 'gzip'), 'gzip', json)
  assertCompressed(await get(app, '/vary/*', 'gzip'), 'gzip', json, '*')
})

// --- never compressed -------------------------------------------------------------------

const never: FastifyPluginAsync = async (app) => {
  app.get('/sse', async (_request, reply) => reply.type('text/event-stream').send('data: tick\n\n'.repeat(200)))
  app.get('/sse-custom', { compress: { customTypes: /event-stream/ } }, async (_request, reply) =>
    reply.type('text/event-stream; charset=utf-8').send('data: tick\n\n'.repeat(200)))
  app.get('/encoded', async (_request, reply) => reply.header('content-encoding', 'gzip').type('application/json').send(gzipSync(json)))
  app.get('/identity', async (_request, reply) => reply.header('content-encoding', 'identity').send(data))
  app.get('/partial', async (_request, reply) => reply.code(206).header('content-range', 'bytes 0-2999/6000').type('text/plain').send(text(3000)))
  app.get('/range', async (_request, reply) => reply.header('content-range', 'bytes 0-2999/3000').type('text/plain').send(text(3000)))
  app.get('/off', { compress: false }, async () => data)
  // Bodies Node never sends: a handler that answers 304 or 204 with one anyway.
  app.get('/not-modified', async (_request, reply) => reply.code(304).header('etag', '"v1"').type('text/plain').send(text(3000)))
  app.get('/no-content', async (_request, reply) => reply.code(204).type('text/plain').send(text(3000)))
  app.get('/png', async (_request, reply) => reply.type('image/png').send(Buffer.from(text(3000))))
}

test('never compressed: text/event-stream, even when a route\'s customTypes asks for it', async (t) => {
  const { app } = await setup(t, { compression: true }, never)
  for (const url of ['/sse', '/sse-custom']) assertPlain(await get(app, url, 'gzip, br'), 'data: tick\n\n'.repeat(200), undefined)
})

test('never compressed: a response that already has a Content-Encoding (identity included)', async (t) => {
  const { app } = await setup(t, { compression: true }, never)
  const encoded = await get(app, '/encoded', 'br')
  assert.equal(encoded.headers['content-encoding'], 'gzip')
  assert.equal(encoded.headers.vary, undefined)
  assert.deepEqual(encoded.rawPayload, gzipSync(json))
  const identity = await get(app, '/identity', 'gzip')
  assert.equal(identity.headers['content-encoding'], 'identity')
  assert.equal(identity.body, json)
})

test('never compressed: partial content (206, or a Content-Range header)', async (t) => {
  const { app } = await setup(t, { compression: true }, never)
  const partial = await get(app, '/partial', 'gzip')
  assert.equal(partial.statusCode, 206)
  assertPlain(partial, text(3000), undefined)
  assertPlain(await get(app, '/range', 'gzip'), text(3000), undefined)
})

test('never compressed: a 304 or 204, whose body Node does not send, on a real socket', async (t) => {
  const { app } = await setup(t, { compression: true }, never)
  const { port } = await listen(app)
  for (const [url, status] of [['/not-modified', 304], ['/no-content', 204]] as const) {
    const res = await rawRequest(port, `GET ${url} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n`)
    assert.equal(res.status, status, url)
    assert.equal(res.headers['content-encoding'], undefined, url)
    assert.equal(res.body, '', url)
  }
})

test('never compressed: a route with compress: false, and content types that do not compress', async (t) => {
  const { app } = await setup(t, { compression: true }, never)
  assertPlain(await get(app, '/off', 'gzip'), json, undefined)
  assertPlain(await get(app, '/png', 'gzip'), text(3000), undefined)
})

test('bodies that merely look compressed ("80,..." or "x ...") are compressed and arrive intact; a gzip file is sent as it is', async (t) => {
  const csv = '80,' + text(2000)
  const xText = 'x ' + text(2000)
  const gz = gzipSync(text(3000))
  const { app } = await setup(t, { compression: true }, async (app) => {
    app.get('/csv', async (_request, reply) => reply.type('text/csv').send(csv))
    app.get('/x', async (_request, reply) => reply.type('text/plain').send(xText))
    app.get('/file.gz', async (_request, reply) => reply.type('application/octet-stream').send(gz))
    app.get('/csv-stream', async (_request, reply) => reply.type('text/csv').send(PassThrough.from([csv.slice(0, 5), csv.slice(5)])))
  })
  for (const encoding of ['gzip', 'br']) {
    assertCompressed(await get(app, '/csv', encoding), encoding as 'br' | 'gzip', csv)
    assertCompressed(await get(app, '/x', encoding), encoding as 'br' | 'gzip', xText)
    // a gzip file is the resource itself: it is not relabelled Content-Encoding: gzip
    assertPlain(await get(app, '/file.gz', encoding), gz, undefined)
    assertCompressed(await get(app, '/csv-stream', encoding), encoding as 'br' | 'gzip', csv)
  }
})

// --- per-route override -----------------------------------------------------------------

test('per route: compress.threshold applies, and the route keeps the global encodings and gzip level (the library dropped both)', async (t) => {
  const body = 'hello '.repeat(50)
  const { app } = await setup(t, { compression: { encodings: ['gzip'], gzipLevel: 1 } }, async (app) => {
    app.get('/small', { compress: { threshold: 10 } }, async (_request, reply) => reply.type('text/plain').send(body))
    app.get('/small-global', async (_request, reply) => reply.type('text/plain').send(body))
    app.get('/brotli', { compress: { encodings: ['br'], brotliOptions: { params: { [constants.BROTLI_PARAM_QUALITY]: 0 } } } }, async () => data)
  })
  const res = await get(app, '/small', 'br, deflate, gzip;q=0.5')
  assertCompressed(res, 'gzip', body)
  assert.deepEqual(res.rawPayload, gzipSync(body, { level: 1 }))
  assertPlain(await get(app, '/small-global', 'gzip'), body, undefined)
  const br = await get(app, '/brotli', 'gzip, br;q=0.1')
  assertCompressed(br, 'br', json)
  assert.deepEqual(br.rawPayload, brotli(json, 0))
})

test('per route: zlib and brotli options zlib refuses fail at registration, not as a 500 on every compressed response', async () => {
  // zlib checks its options only when it compresses; Node words the reason.
  const cases: Array<[unknown, RegExp]> = [
    [{ zlibOptions: { level: 42 } }, /^compress\.zlibOptions: .*options\.level.* 42$/],
    [{ zlibOptions: { windowBits: 99 } }, /^compress\.zlibOptions: .*windowBits/],
    [{ encodings: ['br'], brotliOptions: { params: { [constants.BROTLI_PARAM_QUALITY]: 'fast' } } }, /^compress\.brotliOptions: .*params.*number/]
  ]
  for (const [compress, problem] of cases) {
    const app: FastifyPluginAsync = async (app) => { app.get('/x', { compress } as never, async () => 'x') }
    await assert.rejects(createServer({ compression: true, server: { logger: { level: 'silent' } }, app }), (error: unknown) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.equal(error.problems.length, 1, error.message)
      assert.match(error.problems[0], problem)
      assert.match(error.message, /^Invalid spikard route GET \/x:/)
      return true
    })
  }
})

test('per route: invalid compress options fail at registration, naming the route and the key', async () => {
  const cases: Array<[unknown, string[]]> = [
    [{ thresold: 10 }, ['compress.thresold: unknown key (did you mean "threshold"?)']],
    [{ encodings: ['deflate'] }, ['compress.encodings[0]: expected "br" or "gzip", found "deflate"']],
    [{ encodings: [] }, ['compress.encodings: expected at least one of "br" or "gzip", found []']],
    [true, ['compress: expected false or an object, found true']],
    [{ customTypes: 'text/*' }, ['compress.customTypes: expected a RegExp or a function']]
  ]
  for (const [compress, problems] of cases) {
    const app: FastifyPluginAsync = async (app) => { app.get('/x', { compress } as never, async () => 'x') }
    await assert.rejects(createServer({ compression: true, server: { logger: { level: 'silent' } }, app }), (error: unknown) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, problems)
      assert.match(error.message, /^Invalid spikard route GET \/x:/)
      return true
    })
  }
})

// --- errors, HEAD, large bodies, fetch Responses, request bodies -------------------------

test('problem+json errors still render, and a large one is compressed', async (t) => {
  const detail = 'a long explanation. '.repeat(100)
  const { app } = await setup(t, { compression: true }, async (app) => {
    app.get('/fail', async () => { throw Object.assign(new Error(detail), { statusCode: 409 }) })
    app.get('/fail-small', async () => { throw Object.assign(new Error('short'), { statusCode: 409 }) })
  })
  const res = await get(app, '/fail', 'gzip')
  assert.equal(res.statusCode, 409)
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.equal(res.headers['content-encoding'], 'gzip')
  assert.equal(res.headers.vary, 'Accept-Encoding')
  const problem = JSON.parse(decoded(res))
  assert.deepEqual(problem, {
    type: 'https://spikard.dev/errors/conflict', title: 'Conflict', status: 409, detail, instance: '/fail', requestId: problem.requestId
  })
  assert.equal(typeof problem.requestId, 'string')

  const small = await get(app, '/fail-small', 'gzip')
  assert.equal(small.statusCode, 409)
  assert.equal(small.headers['content-encoding'], undefined)
  assert.equal(small.json().detail, 'short')
})

test('HEAD: no body, on a real socket; Vary and Content-Encoding as the GET has them, only where the GET is compressed', async (t) => {
  const { app } = await setup(t, { compression: true })
  const { port } = await listen(app)
  const head = (path: string): Promise<RawResponse> => rawRequest(port, `HEAD ${path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br, gzip\r\nConnection: close\r\n\r\n`)
  const res = await head('/json')
  assert.equal(res.status, 200)
  assert.equal(res.body, '')
  assert.equal(res.headers['content-encoding'], 'br')
  assert.equal(res.headers.vary, 'Accept-Encoding')
  // The GET is compressed: a HEAD's Content-Length must be the GET's or absent (RFC 9110
  // §8.6), never the uncompressed length.
  assert.equal(res.headers['content-length'], undefined)
  // Asked without compression, the GET is not compressed: the HEAD has its length.
  const identity = await rawRequest(port, 'HEAD /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  assert.equal(identity.headers['content-length'], String(json.length))
  assert.equal(identity.headers['content-encoding'], undefined)
  assert.equal(identity.headers.vary, 'Accept-Encoding')
  // Under the threshold the GET is not compressed, and has no Vary: neither has the HEAD.
  const small = await head('/text/10')
  assert.deepStrictEqual([small.headers.vary, small.headers['content-encoding']], [undefined, undefined])
})

test('a body over the synchronous limit (64 KiB) is compressed off the event loop, with an exact Content-Length', async (t) => {
  const big = JSON.stringify({ rows: Array.from({ length: 4000 }, (_, i) => ({ i, label: `row ${i}`, even: i % 2 === 0 })) })
  assert.ok(big.length > 65536)
  const { app } = await setup(t, { compression: true }, async (app) => { app.get('/big', async (_request, reply) => reply.type('application/json').send(big)) })
  for (const encoding of ['br', 'gzip'] as const) {
    const res = await get(app, '/big', encoding)
    assertCompressed(res, encoding, big)
    assert.equal(res.headers['content-length'], String(res.rawPayload.length))
  }
})

test('a fetch Response is compressed with its own status and type; an event-stream Response is not', async (t) => {
  const body = text(3000)
  const { app } = await setup(t, { compression: true }, async (app) => {
    app.get('/fetch', async () => new Response(body, { status: 201, headers: { 'content-type': 'text/plain' } }))
    app.get('/fetch-sse', async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }))
  })
  const res = await get(app, '/fetch', 'gzip')
  assert.equal(res.statusCode, 201)
  assert.equal(res.headers['content-encoding'], 'gzip')
  assert.equal(decoded(res), body)
  assertPlain(await get(app, '/fetch-sse', 'gzip'), body, undefined)
})

test('request bodies are not decoded by this feature: with bodyLimit off, a gzip body reaches the parser as is', async (t) => {
  const { app } = await setup(t, { compression: true, bodyLimit: false }, async (app) => { app.post('/echo', async (request) => request.body) })
  const res = await app.inject({
    method: 'POST',
    url: '/echo',
    payload: gzipSync(JSON.stringify({ a: 1 })),
    headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }
  })
  assert.equal(res.statusCode, 400)
  assert.equal(res.json().type, 'https://spikard.dev/errors/malformed-body')
})

// --- streams on a real socket -----------------------------------------------------------

/** A GET on a real socket; `until()` resolves once the decoded text received so far equals `expected`. */
async function stream (url: string, acceptEncoding: string): Promise<{ res: http.IncomingMessage, until: (expected: string) => Promise<void>, ended: Promise<string> }> {
  // Headers leave with the first bytes of the body: a server that holds them back fails here.
  const res = await withTimeout(new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(url, { headers: { 'accept-encoding': acceptEncoding } }, resolve).on('error', reject)
  }), 2000, 'the response to start')
  const encoding = res.headers['content-encoding']
  const body: Readable = encoding === 'gzip' ? res.pipe(createGunzip()) : encoding === 'br' ? res.pipe(createBrotliDecompress()) : res
  let received = ''
  let waiting: (() => void) | undefined
  body.setEncoding('utf8')
  body.on('data', (chunk: string) => { received += chunk; waiting?.() })
  const ended = once(body, 'end').then(() => received)
  ended.catch(() => {}) // awaited by the tests that need it
  const until = async (expected: string): Promise<void> => {
    await withTimeout(new Promise<void>((resolve) => {
      waiting = () => { if (received === expected) resolve() }
      waiting()
    }), 2000, `the client to receive ${JSON.stringify(expected)} (has ${JSON.stringify(received)})`)
  }
  return { res, until, ended }
}

/** A route whose stream the test writes to, one chunk at a time. */
function live (contentType: string): { plugin: FastifyPluginAsync, source: () => Promise<PassThrough> } {
  let give: (source: PassThrough) => void
  let pending = new Promise<PassThrough>((resolve) => { give = resolve })
  const plugin: FastifyPluginAsync = async (app) => {
    app.get('/live', async (_request, reply) => {
      const source = new PassThrough()
      give(source)
      return reply.type(contentType).send(source)
    })
  }
  return { plugin, source: async () => { const s = await pending; pending = new Promise((resolve) => { give = resolve }); return s } }
}

test('a stream is compressed as it flows: each chunk reaches the client, decoded, before the next is written', async (t) => {
  for (const encoding of ['gzip', 'br'] as const) {
    const { plugin, source } = live('text/plain')
    const { app } = await setup(t, { compression: true }, plugin)
    const { url } = await listen(app)
    const client = stream(`${url}/live`, encoding)
    const s = await source()
    let sent = ''
    for (let i = 1; i <= 3; i++) {
      const chunk = `line ${i}: ${'x'.repeat(20)}\n`
      s.write(chunk)
      sent += chunk
      if (i === 1) {
        const { res } = await client
        assert.equal(res.headers['content-encoding'], encoding)
        assert.equal(res.headers.vary, 'Accept-Encoding')
        assert.equal(res.headers['content-length'], undefined)
      }
      await (await client).until(sent)
    }
    s.end()
    assert.equal(await (await client).ended, sent)
  }
})

test('an event stream is not compressed: each event reaches the client as written, on a real socket', async (t) => {
  const { plugin, source } = live('text/event-stream')
  const { app } = await setup(t, { compression: true }, plugin)
  const { url } = await listen(app)
  const client = stream(`${url}/live`, 'gzip, br')
  const s = await source()
  let sent = ''
  for (let i = 1; i <= 3; i++) {
    const event = `id: ${i}\ndata: tick ${i}\n\n`
    s.write(event)
    sent += event
    if (i === 1) {
      const { res } = await client
      assert.equal(res.headers['content-encoding'], undefined)
      assert.equal(res.headers.vary, undefined)
    }
    await (await client).until(sent)
  }
  s.end()
  assert.equal(await (await client).ended, sent)
})

test('a client that goes away mid-stream releases the source stream', async (t) => {
  const { plugin, source } = live('text/plain')
  const { app } = await setup(t, { compression: true }, plugin)
  const { url } = await listen(app)
  const client = stream(`${url}/live`, 'gzip')
  const s = await source()
  s.write('first chunk\n')
  const { res, until } = await client
  await until('first chunk\n')
  // pipeline destroys it (with a premature-close error, which pipeline itself handles)
  const closed = new Promise<void>((resolve) => s.once('close', resolve))
  res.destroy()
  await withTimeout(closed, 2000, 'the source stream to close')
  assert.equal(s.destroyed, true)
})

// --- invalid options --------------------------------------------------------------------

const invalid: Array<{ options: unknown, problems: string[] }> = [
  { options: { brotliQuality: 12 }, problems: ['compression.brotliQuality: expected an integer >= 0 and <= 11, found 12'] },
  { options: { gzipLevel: 0 }, problems: ['compression.gzipLevel: expected an integer >= 1 and <= 9, found 0'] },
  { options: { encodings: ['zstd'] }, problems: ['compression.encodings[0]: expected "br" or "gzip", found "zstd"'] },
  { options: { encodings: [] }, problems: ['compression.encodings: expected at least one of "br" or "gzip", found []'] },
  { options: { threshold: 'big' }, problems: ['compression.threshold: expected a size (bytes, or a string such as "512kb", "1mb"), found "big"'] },
  { options: { gzipLvel: 5 }, problems: ['compression.gzipLvel: unknown key (did you mean "gzipLevel"?)'] }
]

test('invalid options fail at createServer and at ready(), naming compression.<key>', async () => {
  for (const { options, problems } of invalid) await assertOptionsRefused('compression', options, problems)
})

test('a stream of a known size: under the threshold sent as it is, with its length; under the sync threshold read whole and compressed in one call, with the compressed length', async (t) => {
  const { app } = await setup(t, { compression: true }, async (app) => {
    for (const size of [200, 3000]) {
      app.get(`/sized/${size}`, async (_request, reply) => {
        const stream = new PassThrough()
        stream.end(text(size))
        return reply.type('text/plain').header('content-length', size).send(stream)
      })
    }
  })
  const small = await get(app, '/sized/200', 'gzip')
  assertPlain(small, text(200), undefined)
  assert.equal(small.headers['content-length'], '200')
  for (const encoding of ['gzip', 'br']) {
    const large = await get(app, '/sized/3000', encoding)
    assert.equal(large.headers['content-encoding'], encoding)
    assert.equal(large.headers['content-length'], String(large.rawPayload.length))
    assert.equal(large.headers['transfer-encoding'], undefined)
    assert.equal(decoded(large), text(3000))
  }
})

test('a small file is compressed once per version: the same ETag gets the kept bytes, a changed file (new ETag) is compressed again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spikard-compress-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'page.txt')
  let opened = 0
  const { app } = await setup(t, { compression: true }, async (app) => {
    app.get('/file', async (_request, reply) => {
      opened++
      const { size, mtimeMs } = statSync(file)
      return reply.type('text/plain').header('content-length', size).header('etag', `W/"${size}-${mtimeMs}"`).send(createReadStream(file))
    })
  })
  writeFileSync(file, text(3000))
  utimesSync(file, 1_000_000, 1_000_000)
  const first = await get(app, '/file', 'br')
  const second = await get(app, '/file', 'br')
  assert.equal(decoded(first), text(3000))
  assert.deepEqual(second.rawPayload, first.rawPayload)
  assert.equal(second.headers['content-length'], String(first.rawPayload.length))
  // The ETag is the version: other bytes under the same ETag still get the kept ones.
  writeFileSync(file, text(3000).replaceAll('text', 'TEXT'))
  utimesSync(file, 1_000_000, 1_000_000)
  assert.equal(decoded(await get(app, '/file', 'br')), text(3000))
  // Each coding is kept apart: gzip is compressed from the file as it is now.
  assert.equal(decoded(await get(app, '/file', 'gzip')), text(3000).replaceAll('text', 'TEXT'))
  // Same size, new content and modification time: a new ETag, compressed again.
  writeFileSync(file, text(3000).toUpperCase())
  utimesSync(file, 2_000_000, 2_000_000)
  assert.equal(decoded(await get(app, '/file', 'br')), text(3000).toUpperCase())
  assert.equal(opened, 5)
})

test('two parts of one file under the same ETag are kept apart (fileStream and fs.createReadStream with start and end)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'spikard-compress-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'parts.txt')
  writeFileSync(file, 'A'.repeat(3000) + 'B'.repeat(3000))
  const { app } = await setup(t, { compression: true }, async (app) => {
    // An ETag is one URL's: each part is its own resource, under the file's version.
    app.get('/part/:n', async (request, reply) => {
      const start = Number((request.params as { n: string }).n) * 3000
      return reply.type('text/plain').header('etag', '"v1"').send(fileStream(file, { start, end: start + 2999 }))
    })
    app.get('/read/:n', async (request, reply) => {
      const start = Number((request.params as { n: string }).n) * 3000
      return reply.type('text/plain').header('etag', '"v1"').header('content-length', 3000).send(createReadStream(file, { start, end: start + 2999 }))
    })
  })
  for (const route of ['/part', '/read']) {
    assert.equal(decoded(await get(app, `${route}/0`, 'gzip')), 'A'.repeat(3000), route)
    assert.equal(decoded(await get(app, `${route}/1`, 'gzip')), 'B'.repeat(3000), route)
    assert.equal(decoded(await get(app, `${route}/0`, 'gzip')), 'A'.repeat(3000), route)
  }
})

test('the compressed-file cache keeps the most recently used files within its byte limit', () => {
  const cache = new CompressedFiles(10)
  cache.set('a', Buffer.alloc(4))
  cache.set('b', Buffer.alloc(4))
  assert.equal(cache.get('a')?.length, 4) // a is now the most recent
  cache.set('c', Buffer.alloc(4)) // 12 bytes: b, the least recently used, goes
  assert.equal(cache.get('b'), undefined)
  assert.deepEqual([cache.size, cache.bytes], [2, 8])
  cache.set('huge', Buffer.alloc(11)) // larger than the whole cache: not kept
  assert.deepEqual([cache.size, cache.bytes, cache.get('huge')], [2, 8, undefined])
  cache.set('a', Buffer.alloc(2)) // replaced, its bytes recounted
  assert.deepEqual([cache.size, cache.bytes], [2, 6])
})
