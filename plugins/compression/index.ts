/**
 * Response compression, brotli and gzip, with node:zlib: one onSend hook for the whole app
 * that decides whether a response may be compressed at all and with which coding, then
 * compresses it (a buffered body in one go, with an exact Content-Length; a stream as it
 * flows, each chunk flushed on arrival).
 *
 * Written here rather than with @fastify/compress, which, checked against 9.2.0:
 *
 * - attaches its hook to each route as Fastify registers it, so routes registered before
 *   it, and the not-found handler, are never compressed;
 * - negotiates wrongly (`gzip;q=0, *` got gzip) and sets `Vary` only on compressed
 *   responses, so caches could not tell the two apart (see negotiate.ts);
 * - sends a body whose first bytes merely look like gzip or deflate (any text starting
 *   with `80` or `x `) unchanged, under the negotiated Content-Encoding: a corrupt
 *   response (fastify/fastify-compress#347); here only a real gzip file is left as it is;
 * - holds a stream's output until zlib's buffers fill, so a slow stream arrived all at
 *   the end;
 * - compresses a response that says `Content-Encoding: identity`;
 * - starts a route's `compress` object from its own defaults, not the global settings.
 *
 * Never compressed: `text/event-stream`, a response with a Content-Encoding, partial
 * content (206 or Content-Range), a 204 or 304 (Node sends no body), a route with
 * `compress: false`, a buffered body under the threshold, a HEAD response (its headers
 * as its GET's: Vary and Content-Encoding, no Content-Length). A route registered before
 * spikard takes the global settings (its `compress`
 * option was never seen). Request bodies are not decoded here:
 * the bodyLimit feature owns that.
 */
import { pipeline, Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { brotliCompress, brotliCompressSync, createBrotliCompress, createGzip, gzip, gzipSync } from 'node:zlib'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { decide, decisionOf, type RouteView } from '../../src/route-decision.js'
import { resolveCompressionOptions, type CompressionOptions } from './options.js'
import { globalSettings, routeSettings, type RouteCompress, type Settings } from './settings.js'
import { negotiate, type Encoding } from './negotiate.js'
import { varyWith } from '../../src/vary.js'
import { CompressedFiles } from './cache.js'
import { copyResponseHead } from '../stream/state.js'

export type { RouteCompress as RouteCompressOptions } from './settings.js'

declare module 'fastify' {
  interface RouteShorthandOptions {
    /** `false`: this route's responses are never compressed. An object: settings merged over the `compression` options. */
    compress?: false | RouteCompress
  }
}

/** Where a route keeps its settings, or null for `compress: false` (src/route-decision.ts). */
const kCompression = Symbol('spikard.compression')
/** The reply's stream is being compressed: its Content-Encoding is this feature's. */
const kEncodedStream = Symbol('spikard.compression.stream')

type Encoded = FastifyReply & { [kEncodedStream]: boolean }

async function spikardCompression (app: FastifyInstance, options: CompressionOptions): Promise<void> {
  const global = globalSettings(resolveCompressionOptions(options))
  const settingsOf = (_route: RouteView): Settings => global
  const files = new CompressedFiles()
  app.decorateReply(kEncodedStream, false)

  app.addHook('onRoute', (route) => {
    const compress = route.compress as unknown
    const where = `route ${[route.method].flat().join(',')} ${route.url}`
    decide(route, kCompression, compress === false ? null : compress === undefined ? global : routeSettings(global, compress, where))
  })
  app.addHook('onSend', function spikardCompress (request, reply, payload, done) {
    // A compressed stream failed before its first byte (a timeout, an error, a file that
    // does not exist) and this is the error handler's answer: it is not in that encoding.
    // Fastify had copied the stream's headers onto the response, hence both places.
    if ((reply as Encoded)[kEncodedStream]) {
      (reply as Encoded)[kEncodedStream] = false
      reply.removeHeader('content-encoding')
      if (!reply.raw.headersSent) reply.raw.removeHeader('content-encoding')
    }
    const settings = decisionOf(request, kCompression, settingsOf)
    if (settings === null) return done(null, payload)
    const head = request.method === 'HEAD'
    const body = payload instanceof Response && !head ? unwrap(reply, payload) : payload
    const kind = compressible(reply, body, settings)
    if (kind === undefined) return done(null, body)

    // From here the response depends on Accept-Encoding, whatever this request asked. A HEAD
    // is never compressed, but its headers are its GET's: Vary included.
    reply.header('vary', varyWith(reply.getHeader('vary'), 'Accept-Encoding'))
    const encoding = request.headers['x-no-compression'] === undefined
      ? negotiate(request.headers['accept-encoding'], settings.encodings)
      : 'identity'
    if (encoding === 'identity') return done(null, body)
    // The GET would be compressed: the HEAD says how (RFC 9110 §9.3.2: the GET's header
    // fields), but not its length, which is not the uncompressed one: a HEAD's Content-Length
    // must be the GET's or absent (§8.6); a cache would take the other for a changed response.
    // An empty stream in place of a buffered body, or Fastify would count that body (its
    // HEAD route's onSend sets the length of a string or Buffer).
    if (head) {
      reply.header('content-encoding', encoding).removeHeader('content-length')
      return done(null, kind === 'buffered' ? Readable.from([]) : body)
    }

    const send = (compressed: Buffer): void => {
      reply.header('content-encoding', encoding).header('content-length', compressed.length)
      done(null, compressed)
    }
    const compress = (input: Buffer, key?: string): void => {
      if (input.length <= settings.syncThreshold) {
        const compressed = encoding === 'br' ? brotliCompressSync(input, settings.brotliOptions) : gzipSync(input, settings.zlibOptions)
        if (key !== undefined) files.set(key, compressed)
        return send(compressed)
      }
      const finished = (error: Error | null, compressed: Buffer): void => { if (error === null) send(compressed); else done(error) }
      if (encoding === 'br') brotliCompress(input, settings.brotliOptions, finished)
      else gzip(input, settings.zlibOptions, finished)
    }
    if (kind === 'buffered') return compress(typeof body === 'string' ? Buffer.from(body) : body as Buffer)
    // A Node stream of a known size under the sync threshold (a small static file) is read
    // whole and compressed in one call: a streaming compressor per response, with its
    // thread-pool round trips, cost about 1 ms of CPU per request (bench/RESULTS.md). A
    // file (a path and an ETag) is compressed once per version (./cache.ts).
    if (!(body instanceof ReadableStream) && Number(reply.getHeader('content-length')) <= settings.syncThreshold) {
      const key = settings === global ? CompressedFiles.key(body as Readable, reply, encoding) : undefined
      const cached = key === undefined ? undefined : files.get(key)
      if (cached !== undefined) {
        (body as Readable).destroy()
        return send(cached)
      }
      readAll(body as Readable).then((input) => compress(input, key), done)
      return
    }
    done(null, compressStream(reply, body as Readable | ReadableStream, encoding, settings))
  })
}

/** Whether a response may be compressed at all, whatever the request asked, and how. */
function compressible (reply: FastifyReply, body: unknown, settings: Settings): 'stream' | 'buffered' | undefined {
  const kind = body instanceof ReadableStream || typeof (body as Readable | null)?.pipe === 'function'
    ? 'stream'
    : typeof body === 'string' || Buffer.isBuffer(body) ? 'buffered' : undefined
  if (kind === undefined) return undefined
  // The size first: most JSON responses are under the threshold, and it is the cheapest test.
  if (kind === 'buffered' && Buffer.byteLength(body as string | Buffer) < settings.threshold) return undefined
  // A stream of a known size (a static file) under the threshold is sent as it is, with its length.
  if (kind === 'stream' && Number(reply.getHeader('content-length') ?? Infinity) < settings.threshold) return undefined
  if (reply.hasHeader('content-encoding') ||
    reply.statusCode === 206 || reply.statusCode === 304 || reply.statusCode === 204 || reply.hasHeader('content-range') ||
    !settings.compressible(String(reply.getHeader('content-type') ?? 'application/json'))) return undefined
  return kind === 'buffered' && isGzip(body as string | Buffer) ? undefined : kind
}

/** A small stream's bytes, whole. */
async function readAll (stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array))
  return Buffer.concat(chunks)
}

/** A fetch Response as Fastify would send it: its status and headers on the reply, its body as the payload. */
function unwrap (reply: FastifyReply, response: Response): ReadableStream | null {
  copyResponseHead(reply, response)
  return response.body
}

/**
 * A gzip file (its magic bytes and method), sent as the resource itself: compressing it
 * again gains nothing. Only the three-byte gzip signature counts; a looser test (the
 * two-byte zlib header @fastify/compress also checks) matches plain text such as `80,...`.
 */
function isGzip (body: string | Buffer): boolean {
  if (typeof body === 'string') return false
  return body.length > 2 && body[0] === 0x1f && body[1] === 0x8b && body[2] === 0x08
}

/**
 * Compresses a stream as it flows, each chunk flushed on arrival. Errors need no handler
 * here: pipeline destroys the compressor with the source's error, and Fastify reports
 * the stream it sends; a client that goes away destroys the compressor, and pipeline the
 * source.
 */
function compressStream (reply: FastifyReply, body: Readable | ReadableStream, encoding: Encoding, settings: Settings): Readable {
  const source = body instanceof ReadableStream ? Readable.fromWeb(body as WebReadableStream) : body
  const zip = encoding === 'br' ? createBrotliCompress(settings.brotliOptions) : createGzip(settings.zlibOptions)
  reply.header('content-encoding', encoding).removeHeader('content-length')
  ;(reply as Encoded)[kEncodedStream] = true
  pipeline(source, zip, () => {})
  return zip
}

export default fp(spikardCompression, { name: 'spikard-compression', fastify: '5.x' })
