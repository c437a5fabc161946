/**
 * Response compression, brotli and gzip, on @fastify/compress.
 *
 * The library supplies the `compress` route option, the compression of buffered bodies
 * (synchronous below its `syncThreshold`, with an exact Content-Length) and
 * `reply.compress()`. Each route's compression runs as one onSend hook: the library's,
 * wrapped by the preset, which first decides whether the response may be compressed at
 * all and with which coding, because the library, checked against 9.2.0:
 *
 * - negotiates wrongly (`gzip;q=0, *` got gzip) and sets `Vary` only on compressed
 *   responses, so caches could not tell the two apart (see negotiate.ts);
 * - sends a body whose first bytes merely look like gzip or deflate (any text starting
 *   with `80` or `x `) unchanged, under the negotiated Content-Encoding: a corrupt
 *   response (fastify/fastify-compress#347). Such a buffered body is sent uncompressed,
 *   and streams, where it cannot be seen in time, are compressed here;
 * - holds a stream's output until zlib's buffers fill, so a slow stream arrived all at
 *   the end: the preset's zlib options flush after every chunk;
 * - compresses a response that says `Content-Encoding: identity`;
 * - starts a route's `compress` object from its own defaults, not the global settings
 *   (see settings.ts).
 *
 * Never compressed: `text/event-stream`, a response with a Content-Encoding, partial
 * content (206 or Content-Range), a route with `compress: false`, a buffered body under
 * the threshold, a HEAD response (no body). Request bodies are not decoded here: the
 * bodyLimit feature owns that.
 */
import { pipeline, Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import { createBrotliCompress, createGzip } from 'node:zlib'
import fp from 'fastify-plugin'
import fastifyCompress from '@fastify/compress'
import type { DoneFuncWithErrOrRes, FastifyInstance, FastifyReply, onSendHookHandler } from 'fastify'
import { resolveCompressionOptions, type CompressionOptions } from './options.js'
import { globalSettings, routeSettings, type Settings } from './settings.js'
import { negotiate, varyAcceptEncoding, type Encoding } from './negotiate.js'

async function spikardCompression (app: FastifyInstance, options: CompressionOptions): Promise<void> {
  const global = globalSettings(resolveCompressionOptions(options))
  const routes = new WeakMap<object, { settings: Settings, hooks: number }>()

  // Before the library sees a route: check and complete its `compress` object, and give
  // it an onSend array of its own (the library pushes onto the one it finds, which may be
  // shared between routes).
  app.addHook('onRoute', (route) => {
    if (route.compress === false) return
    const where = `route ${[route.method].flat().join(',')} ${route.url}`
    const settings = route.compress === undefined ? global : routeSettings(global, route.compress, where)
    if (route.compress !== undefined) route.compress = settings.library
    route.onSend = [route.onSend ?? []].flat()
    routes.set(route, { settings, hooks: route.onSend.length })
  })
  await app.register(fastifyCompress, global.library)
  // After it: the hook it just added is the last one; wrap it in place.
  app.addHook('onRoute', (route) => {
    const added = routes.get(route)
    const hooks = route.onSend as onSendHookHandler[] | undefined
    if (added === undefined || hooks === undefined) return
    if (hooks.length !== added.hooks + 1) throw new Error(`spikard compression: @fastify/compress did not add one onSend hook to ${route.url}`)
    hooks.push(compressing(hooks.pop() as onSendHookHandler, added.settings))
  })
}

function compressing (library: onSendHookHandler, settings: Settings): onSendHookHandler {
  return function spikardCompress (request, reply, payload, done) {
    const body = payload instanceof Response ? unwrap(reply, payload) : payload
    const kind = compressible(reply, body, settings)
    if (kind === undefined) return done(null, body)

    // From here the response depends on Accept-Encoding, whatever this request asked.
    const encoding = request.headers['x-no-compression'] === undefined
      ? negotiate(request.headers['accept-encoding'], settings.encodings)
      : 'identity'
    if (encoding === 'identity' || kind === 'stream') {
      reply.header('vary', varyAcceptEncoding(reply.getHeader('vary')))
      return done(null, encoding === 'identity' ? body : compressStream(reply, body as Readable | ReadableStream, encoding, settings))
    }

    // The library negotiates from the request header it reads: for the length of its
    // (synchronous) hook, that header holds the preset's answer.
    const headers = request.raw.headers
    const asked = headers['accept-encoding']
    const restore = (): void => {
      if (asked === undefined) delete headers['accept-encoding']
      else headers['accept-encoding'] = asked
    }
    headers['accept-encoding'] = encoding
    try {
      library.call(this, request, reply, body, ((error?: Error | null, compressed?: unknown) => {
        restore()
        reply.header('vary', varyAcceptEncoding(reply.getHeader('vary')))
        if (error != null) done(error)
        else done(null, compressed)
      }) as DoneFuncWithErrOrRes)
    } finally {
      restore()
    }
  }
}

/** Whether a response may be compressed at all, whatever the request asked, and how. */
function compressible (reply: FastifyReply, body: unknown, settings: Settings): 'stream' | 'buffered' | undefined {
  const kind = body instanceof ReadableStream || typeof (body as Readable | null)?.pipe === 'function'
    ? 'stream'
    : typeof body === 'string' || Buffer.isBuffer(body) ? 'buffered' : undefined
  if (kind === undefined) return undefined
  // The size first: most JSON responses are under the threshold, and it is the cheapest test.
  if (kind === 'buffered' && Buffer.byteLength(body as string | Buffer) < settings.threshold) return undefined
  if (reply.hasHeader('content-encoding') ||
    reply.statusCode === 206 || reply.hasHeader('content-range') ||
    !settings.compressible(String(reply.getHeader('content-type') ?? 'application/json'))) return undefined
  return kind === 'buffered' && looksCompressed(body as string | Buffer) ? undefined : kind
}

/** A fetch Response as Fastify would send it: its status and headers on the reply, its body as the payload. */
function unwrap (reply: FastifyReply, response: Response): ReadableStream | null {
  reply.code(response.status)
  for (const [name, value] of response.headers) reply.header(name, value)
  return response.body
}

/**
 * @fastify/compress's test for a body that is already gzip or deflate (lib/utils.js,
 * isGzip and isDeflate): two or three bytes, which plain text matches often enough.
 */
function looksCompressed (body: string | Buffer): boolean {
  const b = typeof body === 'string' ? Buffer.from(body.slice(0, 3)) : body
  if (b.length > 2 && b[0] === 0x1f && b[1] === 0x8b && b[2] === 0x08) return true
  return b.length > 1 && (b[0] & 0x0f) === 0x08 && (b[0] & 0x80) === 0 && ((b[0] << 8) + b[1]) % 31 === 0
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
  pipeline(source, zip, () => {})
  return zip
}

export default fp(spikardCompression, { name: 'spikard-compression', fastify: '5.x' })
