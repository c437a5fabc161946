/**
 * Body size limits: one limit (`max`) for every route registered after spikard, a route
 * overriding it with Fastify's own `bodyLimit` option, and the limit holding on the
 * decoded size of `gzip`, `deflate` and `br` request bodies.
 *
 * Fastify enforces the number (for its own parsers and any added with `parseAs`): it
 * answers 413 before reading a body whose Content-Length is too large, and stops reading
 * a chunked body at the limit. What it cannot see through is a compressed body, so a
 * preParsing hook hands it a decoding stream instead; Fastify counts that stream's
 * decoded bytes against the same limit (and checks Content-Length against
 * `receivedEncodedLength`, the encoded bytes), so a 10 KB gzip bomb stops at the limit
 * rather than inflating to 10 MB.
 *
 * Decoding is written here rather than taken from @fastify/compress, whose request
 * decoding comes with its response compression (one plugin, one `global` switch): the
 * limit must hold on decoded size whether response compression is on or off. Removing
 * `content-encoding` once decoded also keeps @fastify/compress, when the compression
 * feature registers it, from decoding the body a second time.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, preParsingHookHandler } from 'fastify'
import { errors } from '../../src/errors.js'
import { prepend, type PreParsing } from '../../src/route-hooks.js'
import { resolveBodyLimitOptions, type BodyLimitOptions } from './options.js'
import { acceptedCodings, DecodedBody } from './decode.js'

async function spikardBodyLimit (app: FastifyInstance, options: BodyLimitOptions): Promise<void> {
  const { max, decode } = resolveBodyLimitOptions(options)

  const codings = acceptedCodings(decode)
  const accepted = decode ? 'gzip, deflate, br or identity' : 'identity'
  const decoding: preParsingHookHandler = function spikardDecodeBody (request, reply, payload, done) {
    const encoding = request.headers['content-encoding']
    if (encoding === undefined) return done(null, payload)
    const length = request.headers['content-length']
    // No body, nothing to decode (and nothing to refuse).
    if (request.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return done(null, payload)

    const coding = codings.get(encoding.trim().toLowerCase())
    if (coding === undefined) {
      // The body stays unread: Node drains a small one so the connection carries on; one
      // that is large or of unknown size is not worth draining.
      if (!(Number(length) <= request.routeOptions.bodyLimit)) reply.header('connection', 'close')
      return done(new errors.SPK_ERR_UNSUPPORTED_ENCODING(JSON.stringify(encoding.slice(0, 100)), accepted))
    }
    if (coding === null) return done(null, payload)
    // Parsers, handlers and later hooks see a plain body; Content-Length stays, and
    // Fastify compares it with the encoded bytes.
    delete request.raw.headers['content-encoding']
    done(null, new DecodedBody(payload, reply.raw, coding))
  }

  // createServer also passes `max` to the Fastify factory (404s and parsers use it); on an
  // instance of your own, this is what gives your routes the limit.
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= max
    // Fastify reads no body for GET and HEAD: no hook to run on them.
    if ([route.method].flat().every((m) => m === 'GET' || m === 'HEAD')) return
    route.preParsing = prepend(route.preParsing, decoding as PreParsing)
  })
}

export default fp(spikardBodyLimit, { name: 'spikard-body-limit', fastify: '5.x' })
