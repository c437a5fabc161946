/** The pino options of the server logger: level, destination, pretty printing and the redaction of secrets. */
import { createRequire } from 'node:module'
import type { FastifyServerOptions } from 'fastify'
import pino from 'pino'
import { isRedacted, loggedTarget, maskHeadersIn, redactQuery, secretNames } from './redact.js'
import { SpikardConfigError } from './errors.js'
import type { ResolvedConfig } from './config/schema.js'

export function loggerOptions (
  logger: ResolvedConfig['server']['logger'],
  config: ResolvedConfig,
  stream: { write: (line: string) => unknown } | undefined
): Exclude<FastifyServerOptions['logger'], boolean | undefined> {
  if (logger.pretty) assertPrettyInstalled()
  // The same names as the access line: the secret-looking ones, and those the features declare.
  const { headers, query: hiddenQuery } = secretNames(config)
  const serializeRequest = requestSerializer(hiddenQuery)
  return {
    level: logger.level,
    // Fastify keeps its own res serializer and takes these req and err over its defaults.
    serializers: {
      req: serializeRequest,
      ...fastifyObjectSerializers(serializeRequest),
      err: errorSerializer(headers),
      headers: headersSerializer(headers)
    },
    redact: {
      paths: [...headers].flatMap((h) => [`req.headers["${h}"]`, `res.headers["${h}"]`]),
      censor: '[REDACTED]'
    },
    ...(stream === undefined ? {} : { stream }),
    ...(logger.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {})
  }
}

interface LoggedRequest {
  method?: string
  url?: string
  headers?: Record<string, unknown>
  host?: string
  ip?: string
  socket?: { remotePort?: number } | null
}

/**
 * Fastify 5's default `req` serializer (method, url, version, host, remoteAddress,
 * remotePort) with the query string's secret values masked, so `request.log.info({ req:
 * request })` in a handler does not write `?token=...` verbatim.
 */
export function requestSerializer (hiddenQuery: Set<string>): (req: LoggedRequest) => Record<string, unknown> {
  return (req) => {
    const url = typeof req.url === 'string' ? loggedTarget(req.url) : req.url
    const q = typeof url === 'string' ? url.indexOf('?') : -1
    return {
      method: req.method,
      url: q === -1 ? url : `${url!.slice(0, q)}?${redactQuery(url!.slice(q + 1), hiddenQuery)}`,
      version: req.headers?.['accept-version'],
      host: req.host,
      remoteAddress: req.ip,
      remotePort: req.socket?.remotePort
    }
  }
}

/**
 * A Fastify request or reply logged under the name handlers give it
 * (`request.log.info({ request })`, `{ reply }`), serialized as Fastify serializes `req` and
 * `res`. Left to pino, the whole object was written, its `raw` included: the
 * `Authorization` and `Cookie` headers, the query's secrets, the response's `Set-Cookie`.
 * Any other value under these names (an object of the app's own) is logged as it is.
 */
function fastifyObjectSerializers (serializeRequest: ReturnType<typeof requestSerializer>): Record<'request' | 'reply', (value: unknown) => unknown> {
  const fastifyObject = (value: unknown): value is { raw: unknown } => typeof value === 'object' && value !== null && 'raw' in value && 'log' in value
  return {
    request: (value) => fastifyObject(value) && 'routeOptions' in value ? serializeRequest(value as LoggedRequest) : value,
    reply: (value) => fastifyObject(value) && 'request' in value && 'statusCode' in value ? { statusCode: value.statusCode } : value
  }
}

/**
 * pino's error serializer (Fastify's default), then the secret headers the error carries
 * masked (maskHeadersIn): an HTTP client's error thrown from a handler (axios's
 * `config.headers.Authorization`) is logged with its properties, which the redact paths
 * (top-level `headers` only, exact lower-case names) do not reach. Runs only when an
 * error is logged.
 */
export function errorSerializer (hidden: Set<string>): typeof pino.stdSerializers.err {
  const serialize = pino.stdSerializers.err
  return (err) => maskHeadersIn(serialize(err), hidden)
}

/**
 * A `headers` object logged at the top level (`request.log.info({ headers })`): the secret
 * ones masked in any letter case, as the app may have written them for a call of its own
 * (`Authorization`, `X-Api-Key`), which exact-name redact paths would miss. A request's own
 * headers arrive in lower case, and the access line's (`logging.headers`) are masked
 * already by redactHeaders: passed as they are, not walked again on every request.
 */
export function headersSerializer (hidden: Set<string>): (headers: unknown) => unknown {
  return (headers) => isRedacted(headers) ? headers : maskHeadersIn({ headers }, hidden).headers
}

/**
 * pino-pretty is an optional peer dependency: without it pino would fail later, in its
 * transport's worker thread, with a message that names neither the option nor the fix.
 * `resolve` is a parameter for the tests.
 */
export function assertPrettyInstalled (resolve: (id: string) => string = createRequire(import.meta.url).resolve): void {
  try {
    resolve('pino-pretty')
  } catch {
    throw new SpikardConfigError(['server.logger.pretty: pino-pretty is not installed; run `npm install pino-pretty`, or set pretty: false'], 'config')
  }
}
