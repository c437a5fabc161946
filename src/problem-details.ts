/**
 * RFC 9457 problem details for every error: the error handler, the not-found handler
 * (404, or 405 with `Allow` when the path exists for other methods), and the renderer
 * the framework-level hooks in server.ts share.
 */
import { STATUS_CODES } from 'node:http'
import fp from 'fastify-plugin'
import FindMyWay from 'find-my-way'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errorDefinitions, errors, isSpikardCode, PROBLEM_TYPE_BASE } from './errors.js'

export const PROBLEM_CONTENT_TYPE = 'application/problem+json'

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

function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** The problem body for an error; logs 5xx errors with their stack and the request id. */
export function toProblem (error: unknown, request: FastifyRequest): Problem {
  let e = error as FastifyError
  if (e !== null && typeof e === 'object' && Array.isArray(e.validation)) return validationProblem(e, request)
  const mapped = e !== null && typeof e === 'object' && typeof e.code === 'string' ? fastifyCodes[e.code] : undefined
  if (mapped !== undefined) e = mapped(e, request)

  const base = { instance: pathOf(request.url), requestId: String(request.id) }
  if (isSpikardCode(e?.code)) {
    const d = errorDefinitions[e.code]
    // A feature may answer with another status than the registry's (timeout.status).
    const status = e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode <= 599 ? e.statusCode : d.status
    if (d.type === 'internal-error') request.log.error({ err: e }, 'request failed')
    return { type: PROBLEM_TYPE_BASE + d.type, title: status === d.status ? d.title : STATUS_CODES[status] ?? d.title, status, detail: e.message, ...base }
  }
  const status = typeof e?.statusCode === 'number' ? e.statusCode : NaN
  if (status >= 400 && status < 500) {
    const title = STATUS_CODES[status] ?? 'Client Error'
    return { type: PROBLEM_TYPE_BASE + slug(title), title, status, detail: typeof e.message === 'string' ? e.message : title, ...base }
  }
  request.log.error({ err: error }, 'request failed')
  const d = errorDefinitions.SPK_ERR_INTERNAL
  return { type: PROBLEM_TYPE_BASE + d.type, title: d.title, status: d.status, detail: d.message, ...base }
}

function slug (title: string): string {
  return title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')
}

function validationProblem (error: FastifyError, request: FastifyRequest): Problem {
  const location = error.validationContext ?? 'body'
  const fields: FieldError[] = (error.validation ?? []).map((v) => {
    const missing = v.keyword === 'required' ? (v.params as { missingProperty?: string }).missingProperty : undefined
    const pointer = (v.instancePath ?? '') + (missing !== undefined ? `/${missing}` : '')
    const field = pointer.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.')
    return { location, field, message: missing !== undefined ? 'is required' : v.message ?? 'is invalid' }
  })
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

/** Sends an error as problem+json. Used by the error handler and by server-level hooks. */
export function sendProblem (reply: FastifyReply, error: unknown): FastifyReply {
  const problem = toProblem(error, reply.request)
  const headers = (error as { headers?: Record<string, string> } | null)?.headers
  if (problem.status < 500 && headers !== null && typeof headers === 'object') reply.headers(headers)
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(JSON.stringify(problem))
}

async function problemDetails (app: FastifyInstance): Promise<void> {
  // Which paths exist for which methods, to answer 405 instead of 404. Consulted only when
  // no route matched, so it costs nothing on the routes that do.
  const { ignoreTrailingSlash, ignoreDuplicateSlashes, caseSensitive } = app.initialConfig
  const known = FindMyWay({ ignoreTrailingSlash, ignoreDuplicateSlashes, caseSensitive, defaultRoute: () => {} })
  const methods = new Set<string>()
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      methods.add(method)
      try {
        known.on(method as never, route.url, () => {})
      } catch {
        // the same path declared twice with constraints: once is enough to know it exists
      }
    }
  })

  app.setErrorHandler((error, _request, reply) => sendProblem(reply, error))
  app.setNotFoundHandler((request, reply) => {
    const path = pathOf(request.url)
    const allowed = [...methods].filter((m) => m !== request.method && known.find(m as never, path) !== null)
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendProblem(reply, new errors.SPK_ERR_METHOD_NOT_ALLOWED(request.method, path, allowed.join(', ')))
    }
    return sendProblem(reply, new errors.SPK_ERR_NOT_FOUND(request.method, path))
  })
}

export default fp(problemDetails, { name: 'spikard-problem-details', fastify: '5.x' })
