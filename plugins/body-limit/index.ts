/**
 * Body size limits: one limit (`max`) for every route, a route overriding it with Fastify's
 * own `bodyLimit` option, and the limit holding on the decoded size of `gzip`, `deflate`
 * and `br` request bodies.
 *
 * Fastify enforces the number (for its own parsers and any added with `parseAs`): it
 * answers 413 before reading a body whose Content-Length is too large, and stops reading
 * a chunked body at the limit. Routes registered after spikard get `max` as their
 * `bodyLimit` (onRoute), and createServer gives it to the Fastify factory, which sets it
 * for every other route. On an instance of your own created with a larger `bodyLimit`, a
 * route registered before spikard keeps that larger limit in Fastify's eyes: spikard
 * counts its body against `max` itself (LimitedBody).
 *
 * What Fastify cannot see through is a compressed body, so one preParsing hook for the
 * whole app hands it a decoding stream instead; Fastify counts that stream's decoded bytes
 * against the same limit (and checks Content-Length against `receivedEncodedLength`, the
 * encoded bytes), so a 10 KB gzip bomb stops at the limit rather than inflating to 10 MB.
 * The stream counts them itself too, for a stream parser of the user's, which Fastify does
 * not count for.
 *
 * Decoding is written here rather than taken from @fastify/compress, whose request
 * decoding is attached to each route as it is registered (routes registered before it are
 * left out) and comes with its response compression: the limit must hold on decoded size
 * on every route, whatever the compression feature does.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { errors } from '../../src/errors.js'
import { decide, decisionOf, type RouteView } from '../../src/route-decision.js'
import { resolveBodyLimitOptions, type BodyLimitOptions } from './options.js'
import { acceptedCodings, DecodedBody, LimitedBody } from './decode.js'

/** Where a route registered before spikard keeps the limit spikard counts itself (src/route-decision.ts). */
const kBodyLimit = Symbol('spikard.body-limit')
/** Marks a request (`Expect: 100-continue`, HTTP/1.1) whose client waits for the go-ahead. */
const kAwaitingContinue = Symbol('spikard.body-limit.awaiting-continue')
type AwaitingContinue = IncomingMessage & { [kAwaitingContinue]?: boolean }

async function spikardBodyLimit (app: FastifyInstance, options: BodyLimitOptions): Promise<void> {
  const { max, decode } = resolveBodyLimitOptions(options)
  const serverLimit = app.initialConfig.bodyLimit ?? max
  const codings = acceptedCodings(decode)
  const accepted = decode ? 'gzip, deflate, br or identity' : 'identity'

  /** The limit spikard must count itself: only on a route whose limit is a larger server default it never saw. */
  function ownCount (route: RouteView): number | null {
    return route.late && !route.is404 && route.bodyLimit === serverLimit && serverLimit > max ? max : null
  }

  /**
   * The body to parse: `payload`, or its decoding counted against the limit (spikard's own
   * count, else the route's; looked up only here: `request.routeOptions` is built anew on
   * each read), decoded and as sent.
   */
  function decoded (request: FastifyRequest, reply: FastifyReply, payload: Readable, own: number | null): Readable | Error {
    const encoding = request.headers['content-encoding']
    if (encoding === undefined) return payload
    const length = request.headers['content-length']
    // No body, nothing to decode (and nothing to refuse).
    if (request.headers['transfer-encoding'] === undefined && (length === undefined || length === '0')) return payload
    const coding = codings.get(encoding.trim().toLowerCase())
    if (coding === null) return payload
    const limit = own ?? request.routeOptions.bodyLimit
    if (coding === undefined) {
      // The body stays unread: Node drains a small one so the connection carries on; one
      // that is large or of unknown size is not worth draining.
      if (!(Number(length) <= limit)) reply.header('connection', 'close')
      return new errors.SPK_ERR_UNSUPPORTED_ENCODING(JSON.stringify(encoding.slice(0, 100)), accepted)
    }
    // Parsers, handlers and later hooks see a plain body; Content-Length stays, and
    // Fastify compares it with the encoded bytes.
    delete request.raw.headers['content-encoding']
    return new DecodedBody(payload, reply.raw, coding, limit)
  }

  // On an instance of your own: this gives the routes registered from now on the limit
  // (createServer also passes `max` to the Fastify factory, for every route and the parsers).
  app.addHook('onRoute', (route) => { route.bodyLimit ??= max })
  // A client that sends `Expect: 100-continue` waits for the go-ahead before it sends its
  // body. Node gives it as soon as the headers arrive, before anything is checked, so a
  // body the route refuses was on its way already. Here it is given in preParsing, once
  // the route is known and allowed the request (auth, rate limit), and only to a body whose
  // Content-Length fits the limit and whose Content-Encoding is accepted; a request refused
  // before that gets no 100, and Node closes the connection after the answer instead of
  // reading the body.
  // (`this`: the server the request came to, app.server or the one of another localhost address.)
  app.server.on('checkContinue', function (this: Server, req: IncomingMessage, res: ServerResponse) {
    (req as AwaitingContinue)[kAwaitingContinue] = true
    this.emit('request', req, res)
  })
  const counting = serverLimit > max
  /** The body Fastify is to read, or why it is refused. */
  function checked (request: FastifyRequest, reply: FastifyReply, payload: Readable, limit: number | null): Readable | Error {
    // Fastify reads no body for GET and HEAD.
    const method = request.method
    if (method === 'GET' || method === 'HEAD') return payload
    const body = decoded(request, reply, payload, limit)
    if (body instanceof Error || limit === null) return body
    if (Number(request.headers['content-length']) > limit) return new errors.SPK_ERR_BODY_TOO_LARGE(limit)
    // A decoded body counts against the limit itself, decoded and as sent.
    return body === payload ? new LimitedBody(body, limit) : body
  }
  app.addHook('preParsing', function spikardBodyLimit (request, reply, payload, done) {
    const limit = counting ? decisionOf(request, kBodyLimit, ownCount) : null
    const raw = request.raw as AwaitingContinue
    const awaiting = request.headers.expect !== undefined && raw[kAwaitingContinue] === true
    if (awaiting) {
      raw[kAwaitingContinue] = false
      const bodyLimit = limit ?? request.routeOptions.bodyLimit
      if (Number(request.headers['content-length']) > bodyLimit) return done(new errors.SPK_ERR_BODY_TOO_LARGE(bodyLimit))
    }
    const body = checked(request, reply, payload, limit)
    if (body instanceof Error) return done(body)
    if (awaiting) reply.raw.writeContinue()
    done(null, body)
  })
  if (counting) app.addHook('onRoute', (route) => { decide(route, kBodyLimit, null) })
}

export default fp(spikardBodyLimit, { name: 'spikard-body-limit', fastify: '5.x' })
