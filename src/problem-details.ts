/**
 * RFC 9457 problem details for every error: the error handler, the not-found handler
 * (404, or 405 with `Allow` when the path exists for other methods), the renderer the
 * framework-level hooks in server.ts share, and the answers to requests Node's server would
 * otherwise answer or drop itself (a missing Host, an unknown Expect, CONNECT).
 */
import { STATUS_CODES, validateHeaderName, validateHeaderValue, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import fp from 'fastify-plugin'
import { PathTable } from './path-table.js'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorDefinitions, errors, isSpikardCode, PROBLEM_TYPE_BASE, type SpikardErrorCode } from './errors.js'
import { adoptErrorHandler, requestIdFor, responseUnderWay, setDefaultNotFoundHandler } from './fastify-internals.js'
import { loggedTarget } from './redact.js'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'
/** The type of the problem answered for a failure of the server, which toProblem logs at error level. */
const INTERNAL_PROBLEM_TYPE = PROBLEM_TYPE_BASE + errorDefinitions.SPK_ERR_INTERNAL.type

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  instance: string
  requestId: string
  errors?: FieldError[]
  [extension: string]: unknown
}

/** One offending field of a 422: where it is, which field (a dotted path), what was expected. */
export interface FieldError { location: string, field: string, message: string }

/** Fastify's own error codes, answered as the spikard error of the same meaning. */
const fastifyCodes: Record<string, (error: FastifyError, request: FastifyRequest) => FastifyError> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: (_e, request) =>
    new errors.SPK_ERR_UNSUPPORTED_MEDIA_TYPE(JSON.stringify(String(request.headers['content-type'] ?? '').slice(0, 100))),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new errors.SPK_ERR_MALFORMED_BODY('JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new errors.SPK_ERR_MALFORMED_BODY('JSON: it is empty'),
  FST_ERR_CTP_BODY_TOO_LARGE: (_e, request) => new errors.SPK_ERR_BODY_TOO_LARGE(request.routeOptions.bodyLimit),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new errors.SPK_ERR_BAD_REQUEST('Content-Length does not match the body received'),
  FST_ERR_BAD_URL: () => new errors.SPK_ERR_BAD_REQUEST('The URL is not valid'),
  FST_ERR_MAX_PARAM_LENGTH: () => new errors.SPK_ERR_BAD_REQUEST('A path parameter is too long'),
  // Fastify's handlerTimeout fired: the status is timeout.status when the timeout feature is on.
  FST_ERR_HANDLER_TIMEOUT: (_e, request) => {
    const e = new errors.SPK_ERR_HANDLER_TIMEOUT(request.routeOptions.handlerTimeout)
    if (request.server.spikardTimeoutStatus !== undefined) e.statusCode = request.server.spikardTimeoutStatus
    return e
  }
}

/** The path of a request target, as a problem and a log line show it (loggedTarget: no fragment, no userinfo). */
export function pathOf (url: string): string {
  url = loggedTarget(url)
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/**
 * A problem answered outside Fastify, for a request Node refuses before Fastify sees it:
 * its status, its title (the status line's reason phrase) and its body, with `requestId`.
 * No `instance` when the request never parsed far enough to have a path.
 */
export function standaloneProblem (error: Error & { code: string }, requestId: string, instance?: string): { status: number, title: string, body: string } {
  const d = errorDefinitions[error.code as SpikardErrorCode]
  const body = JSON.stringify({ type: PROBLEM_TYPE_BASE + d.type, title: d.title, status: d.status, detail: error.message, ...(instance === undefined ? {} : { instance }), requestId })
  return { status: d.status, title: d.title, body }
}

/**
 * A problem as a whole HTTP/1.1 response, for a socket no ServerResponse writes to (Node's
 * parser refused the request, or handed it over: CONNECT): `Connection: close`, and the
 * request id under `idHeader` when the request id feature is on.
 */
export function rawProblemResponse (error: Error & { code: string }, requestId: string, idHeader: string | undefined, instance?: string): { status: number, response: string } {
  const { status, title, body } = standaloneProblem(error, requestId, instance)
  return {
    status,
    response: `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `${idHeader === undefined ? '' : `${idHeader}: ${requestId}\r\n`}Connection: close\r\n\r\n${body}`
  }
}

/** A status an error may answer with: an integer from 400 to 599 (anything else is a 500). */
function isErrorStatus (status: unknown): status is number {
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599
}

/**
 * The status of an error that is not spikard's, chosen as Fastify chooses it
 * (setErrorStatusCode): the status the route set on the reply before it threw, else the
 * error's `statusCode`, else its `status`. By the time the error handler runs, Fastify has
 * put that choice on the reply; elsewhere the reply is still 200 and the error decides.
 */
function statusOf (e: FastifyError & { status?: unknown }, replyStatus: number): number | undefined {
  if (isErrorStatus(replyStatus)) return replyStatus
  return isErrorStatus(e.statusCode) ? e.statusCode : isErrorStatus(e.status) ? e.status : undefined
}

/**
 * The problem body for an error; logs 5xx errors with their stack and the request id.
 * The error may be anything a route throws (null, a string, an object with odd fields):
 * every field is checked before use. A getter that throws still throws: sendProblem
 * answers a generic 500 then. `replyStatus` is the reply's status when the error arrived;
 * `failed` is the message of that error line.
 */
export function toProblem (error: unknown, request: FastifyRequest, replyStatus = 200, failed = 'request failed'): Problem {
  let e = error as FastifyError
  const isObject = e !== null && typeof e === 'object'
  if (isObject && Array.isArray(e.validation)) return validationProblem(e, request)
  const code: unknown = isObject ? e.code : undefined
  const mapped = typeof code === 'string' && Object.hasOwn(fastifyCodes, code) ? fastifyCodes[code] : undefined
  if (mapped !== undefined) e = mapped(e, request)

  const base = { instance: pathOf(request.url), requestId: String(request.id) }
  const spikardCode: unknown = isObject ? e.code : undefined
  if (isSpikardCode(spikardCode)) {
    const d = errorDefinitions[spikardCode]
    // A feature may answer with another status than the registry's (timeout.status).
    const status = isErrorStatus(e.statusCode) ? e.statusCode : d.status
    if (d.type === 'internal-error') logError(request, e, failed)
    const title = status === d.status ? d.title : STATUS_CODES[status] ?? d.title
    return { type: PROBLEM_TYPE_BASE + d.type, title, status, detail: typeof e.message === 'string' ? e.message : title, ...base }
  }
  const status = isObject ? statusOf(e, replyStatus) : undefined
  if (status !== undefined && status < 500) {
    const title = STATUS_CODES[status] ?? 'Client Error'
    return { type: PROBLEM_TYPE_BASE + slug(title), title, status, detail: typeof e.message === 'string' ? e.message : title, ...base }
  }
  logError(request, error, failed)
  return internalProblem(request)
}

/**
 * Logs an error nobody will send, because its request was answered before it came (the
 * handler timeout's problem went first): as the error handler would, a failure of the
 * server (a 5xx it does not expect) at error level with its stack; the others, expected
 * answers (a body that fails to parse, a validation error, a refusal), once at debug.
 */
export function logUnsentError (request: FastifyRequest, error: unknown, msg: string): void {
  let problem: Problem
  try {
    problem = toProblem(error, request, 200, msg)
  } catch {
    logError(request, error, msg)
    return
  }
  if (problem.type !== INTERNAL_PROBLEM_TYPE) request.log.debug({ err: error }, msg)
}

function internalProblem (request: FastifyRequest): Problem {
  const d = errorDefinitions.SPK_ERR_INTERNAL
  return { type: PROBLEM_TYPE_BASE + d.type, title: d.title, status: d.status, detail: d.message, instance: pathOf(request.url), requestId: String(request.id) }
}

/** Logs an error at error level; one whose serialization throws (a getter) is logged as such rather than lost. */
function logError (request: FastifyRequest, error: unknown, msg: string): void {
  try {
    request.log.error({ err: error }, msg)
  } catch (failure) {
    let reason = 'unknown'
    try { reason = failure instanceof Error ? failure.message : typeof failure } catch { /* keep unknown */ }
    request.log.error({ err: { type: 'Unserializable', message: `the error could not be serialized for the log: ${reason}` } }, msg)
  }
}

function slug (title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
}

function validationProblem (error: FastifyError, request: FastifyRequest): Problem {
  const context: unknown = error.validationContext
  const location = typeof context === 'string' ? context : 'body'
  const fields = (error.validation as unknown[]).map((v) => fieldError(v, location))
  const d = errorDefinitions.SPK_ERR_VALIDATION
  return {
    type: PROBLEM_TYPE_BASE + d.type,
    title: d.title,
    status: d.status,
    detail: new errors.SPK_ERR_VALIDATION(location === 'querystring' ? 'query string' : location).message,
    instance: pathOf(request.url),
    requestId: String(request.id),
    errors: fields
  }
}

/** One Ajv-style entry to a field error; entries that are not objects, or fields of the wrong type, say "is invalid". */
function fieldError (entry: unknown, location: string): FieldError {
  if (entry === null || typeof entry !== 'object') return { location, field: '', message: 'is invalid' }
  const v = entry as { keyword?: unknown, params?: unknown, instancePath?: unknown, message?: unknown }
  const params = v.params as { missingProperty?: unknown } | null | undefined
  const missing = v.keyword === 'required' && params !== null && typeof params === 'object' && typeof params.missingProperty === 'string'
    ? params.missingProperty
    : undefined
  const pointer = (typeof v.instancePath === 'string' ? v.instancePath : '') + (missing !== undefined ? `/${missing}` : '')
  const field = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.')
  return { location, field, message: missing !== undefined ? 'is required' : typeof v.message === 'string' ? v.message : 'is invalid' }
}

type HeaderValue = string | number | Array<string | number>

/**
 * The headers a 4xx error asks for (`Retry-After`...), those Node accepts: a header with
 * CR/LF (an injection attempt), an invalid name or a value that is not a string or number
 * would make writeHead throw after the handler returned, and Fastify answer its own JSON.
 * Those are dropped and logged at warn.
 */
function errorHeaders (error: unknown, request: FastifyRequest): Array<[string, HeaderValue]> {
  const headers: unknown = error !== null && typeof error === 'object' ? (error as { headers?: unknown }).headers : undefined
  if (headers === null || typeof headers !== 'object') return []
  const kept: Array<[string, HeaderValue]> = []
  const dropped: string[] = []
  for (const [name, value] of Object.entries(headers)) {
    if (acceptedHeader(name, value)) kept.push([name, value])
    else dropped.push(name)
  }
  if (dropped.length > 0) request.log.warn({ dropped }, 'headers of the error not sent: Node refuses their names or values')
  return kept
}

/** Whether Node's writeHead would take the header: its name and every value checked as Node checks them. */
export function acceptedHeader (name: string, value: unknown): value is HeaderValue {
  const values = Array.isArray(value) ? value as unknown[] : [value]
  if (values.length === 0) return false
  try {
    validateHeaderName(name)
    for (const v of values) {
      if (typeof v !== 'string' && typeof v !== 'number') return false
      validateHeaderValue(name, String(v))
    }
    return true
  } catch {
    return false
  }
}

/**
 * Removes from the reply the headers Node refuses to write (a route that copied CR/LF from
 * the request into `Content-Disposition`, before returning or before throwing), so the
 * problem can be: otherwise it fails the same way, and Fastify answers with its own JSON
 * and Node's message.
 */
function dropRefusedHeaders (reply: FastifyReply): void {
  const dropped = Object.entries(reply.getHeaders()).filter(([name, value]) => !acceptedHeader(name, value)).map(([name]) => name)
  for (const name of dropped) reply.removeHeader(name)
  if (dropped.length > 0) reply.request.log.warn({ dropped }, 'headers of the response not sent: Node refuses their names or values')
}

/**
 * Headers that describe the body the route meant to send, set before it failed (a download's
 * `Content-Disposition`, a file's `ETag`): on the problem they are false, and a browser would
 * save the problem as the download. The route's other headers stay (CORS, rate limits, its
 * `Cache-Control`); an error's own (`Content-Range` on a 416) are set after.
 */
const REPRESENTATION_HEADERS = ['content-disposition', 'content-encoding', 'content-language', 'content-location', 'content-range', 'etag', 'last-modified']

/**
 * Sends an error as problem+json. Used by the error handler and by server-level hooks.
 * Never throws: an error that cannot be rendered (a getter that throws, a revoked proxy)
 * gets a generic 500 problem, and the log gets the failure and the error.
 */
export function sendProblem (reply: FastifyReply, error: unknown): FastifyReply {
  let problem: Problem
  let headers: Array<[string, HeaderValue]> = []
  let body: string
  try {
    problem = toProblem(error, reply.request, reply.statusCode)
    if (problem.status < 500) headers = errorHeaders(error, reply.request)
    // A header of the route's that Node refuses (CR/LF copied from the request) fails the
    // problem's write too, whether it was the error or the route threw after setting it:
    // Fastify would then answer with its own JSON and Node's message.
    dropRefusedHeaders(reply)
    body = JSON.stringify(problem)
  } catch (failure) {
    logError(reply.request, failure, 'the error could not be rendered as a problem; answered 500')
    logError(reply.request, error, 'request failed')
    problem = internalProblem(reply.request)
    headers = []
    body = JSON.stringify(problem)
  }
  for (const name of REPRESENTATION_HEADERS) reply.removeHeader(name)
  for (const [name, value] of headers) reply.header(name, value)
  // A refusal before the request id feature's hook ran (an onRequest hook of the app's
  // added before spikard, spikard's Host check) would go without the id the body carries.
  const requestId = reply.server.spikard?.options.requestId
  if (requestId !== false && requestId !== undefined && !reply.hasHeader(requestId.header)) reply.header(requestId.header.toLowerCase(), reply.request.id)
  // Nor the CORS headers, and the allowed pages could not read it (a request Fastify refuses
  // before routing, too). The cors feature's hook sets Vary or Access-Control-Allow-Origin
  // whenever it runs, but for a route that left CORS, which the feature's decorator checks.
  if (!reply.hasHeader('vary') && !reply.hasHeader('access-control-allow-origin')) reply.server.spikardCorsHeaders?.(reply.request, reply)
  // The status line says the title: Node's reason phrases are older than RFC 9110
  // (422 "Unprocessable Entity" where the problem says "Unprocessable Content").
  reply.raw.statusMessage = problem.title
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(body)
}

async function problemDetails (app: FastifyInstance): Promise<void> {
  // Which paths exist for which methods, to answer 405 instead of 404. Consulted only when
  // no route matched, so it costs nothing on the routes that do.
  const known = new PathTable(app)
  app.addHook('onRoute', (route) => { known.add(route) })

  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error))
  // Routes registered before spikard (in the app, or in a plugin registered before it) kept Fastify's.
  adoptErrorHandler(app)
  // An HTTP/1.1 request without Host (RFC 9112 §3.2: a 400). Node's own check answers it
  // before Fastify sees it, with no body and no request id; Node reads the server's
  // `requireHostHeader` at each request, so it is turned off here (over HTTPS too, whose
  // options Fastify passes instead of `http`) and made in this hook, before any other,
  // upgrades included (Node never checked those). HTTP/1.0 needs no Host. A server whose
  // check was turned off by its maker (or that has none: HTTP/2) is left as it is.
  const checked = app.server as { requireHostHeader?: boolean }
  if (checked.requireHostHeader === true) {
    checked.requireHostHeader = false
    app.addHook('onRequest', function spikardHostRequired (request, reply, done) {
      const raw = request.raw
      if (raw.headers.host !== undefined || raw.httpVersionMajor !== 1 || raw.httpVersionMinor !== 1) return done()
      reply.header('connection', 'close')
      done(new errors.SPK_ERR_BAD_REQUEST('An HTTP/1.1 request must have a Host header'))
    })
  }
  // An `Expect` other than 100-continue: Node answers a bare 417 (no body, no request id)
  // before Fastify sees the request. It gets a problem like every other refusal.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const id = requestIdFor(app, req)
    const path = pathOf(req.url ?? '/')
    const expect = JSON.stringify(String(req.headers.expect).slice(0, 100))
    const { status, title, body } = standaloneProblem(new errors.SPK_ERR_EXPECTATION_FAILED(expect), id, path)
    app.log.info({ reqId: id, status, method: req.method, path, expect, remoteAddress: req.socket.remoteAddress }, 'request rejected')
    const requestId = app.spikard?.options.requestId
    res.writeHead(status, title, {
      'content-type': PROBLEM_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      ...(requestId === false || requestId === undefined ? {} : { [requestId.header.toLowerCase()]: id }),
      connection: 'close'
    }).end(body)
  })
  // CONNECT asks for a tunnel (RFC 9110 §9.3.6), which an origin server does not implement
  // for any resource: 501, not a 405 (whose `Allow` would name the methods of a resource,
  // and the target here is a host and port). Node hands it to this listener, detached from
  // its parser (without one it destroys the socket, unanswered): the answer is written on
  // the socket, whatever the client sends after it is discarded, and the socket is closed.
  // The target is logged without a query string, as every path is. A listener of the user's
  // own (a server that does tunnel) has it instead. A CONNECT pipelined behind a request
  // whose response is not over (src/fastify-internals.ts): an answer now would come before
  // that response or inside its body, so the connection is closed, as Node closes it
  // without a listener.
  // (`this`: the server the request came to, app.server or the one of another localhost address.)
  app.server.on('connect', function (this: Server, req: IncomingMessage, socket: Duplex) {
    if (this.listenerCount('connect') > 1) return
    socket.on('error', () => { socket.destroy() })
    socket.resume()
    if (!socket.writable || responseUnderWay(socket) !== undefined) return socket.destroy()
    const id = requestIdFor(app, req)
    const requestId = app.spikard?.options.requestId
    const { status, response } = rawProblemResponse(new errors.SPK_ERR_METHOD_NOT_IMPLEMENTED(req.method), id, requestId === false || requestId === undefined ? undefined : requestId.header.toLowerCase())
    app.log.info({ reqId: id, status, method: req.method, target: pathOf(req.url ?? ''), remoteAddress: req.socket.remoteAddress }, 'request rejected')
    socket.once('finish', () => { socket.destroy() })
    socket.end(response)
  })
  // A default, as Fastify's own is: a not-found handler of the app's, set before spikard or
  // after, answers instead (the features still run for it).
  setDefaultNotFoundHandler(app, (request, reply) => {
    const path = pathOf(request.url)
    // A route of this method and path exists: its handler called reply.callNotFound().
    const own = known.has(request.method, path)
    const allowed = own ? [] : [...known.methods].filter((m) => m !== request.method && known.has(m, path))
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendProblem(reply, new errors.SPK_ERR_METHOD_NOT_ALLOWED(request.method, path, allowed.join(', ')))
    }
    return sendProblem(reply, new errors.SPK_ERR_NOT_FOUND(request.method, path))
  })
}

export default fp(problemDetails, { name: 'spikard-problem-details', fastify: '5.x' })
