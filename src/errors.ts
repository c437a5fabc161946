/**
 * The one registry of the errors spikard answers with. Each code maps to a literal HTTP
 * status, a problem `type` slug (https://spikard.dev/errors/<type>) and a title; the
 * message template becomes the problem's `detail`. Features throw these; only
 * src/problem-details.ts turns them into response bodies.
 */
import createError, { type FastifyErrorConstructor } from '@fastify/error'

export const PROBLEM_TYPE_BASE = 'https://spikard.dev/errors/'

interface Definition { status: number, type: string, title: string, message: string, when: string }

export const errorDefinitions = {
  SPK_ERR_BAD_REQUEST: {
    status: 400,
    type: 'bad-request',
    title: 'Bad Request',
    message: '%s',
    when: 'The request cannot be parsed: a malformed URL, request line, header or Content-Length, or an HTTP/1.1 request without `Host`.'
  },
  SPK_ERR_MALFORMED_BODY: {
    status: 400,
    type: 'malformed-body',
    title: 'Bad Request',
    message: 'The request body is not valid %s',
    when: 'The body does not parse as its Content-Type says (invalid or empty JSON), or does not decode as its Content-Encoding says (corrupt gzip, deflate or br).'
  },
  SPK_ERR_UNAUTHORIZED: {
    status: 401,
    type: 'unauthorized',
    title: 'Unauthorized',
    message: '%s',
    when: 'Credentials are missing or invalid (the detail says which: missing, malformed, expired, bad signature, wrong audience...); `WWW-Authenticate` names the schemes.'
  },
  SPK_ERR_FORBIDDEN: {
    status: 403,
    type: 'forbidden',
    title: 'Forbidden',
    message: '%s',
    when: 'The caller is authenticated but lacks a claim the route demands.'
  },
  SPK_ERR_NOT_FOUND: {
    status: 404,
    type: 'not-found',
    title: 'Not Found',
    message: 'No route matches %s %s',
    when: 'No route matches the path.'
  },
  SPK_ERR_METHOD_NOT_ALLOWED: {
    status: 405,
    type: 'method-not-allowed',
    title: 'Method Not Allowed',
    message: '%s is not allowed on %s; allowed: %s',
    when: 'The path exists but not for this method; the `Allow` header lists the methods that are.'
  },
  SPK_ERR_REQUEST_TIMEOUT: {
    status: 408,
    type: 'request-timeout',
    title: 'Request Timeout',
    message: '%s',
    when: 'The client did not send the whole request in time.'
  },
  SPK_ERR_HANDLER_TIMEOUT: {
    status: 503,
    type: 'handler-timeout',
    title: 'Service Unavailable',
    message: 'The request was not answered within %d ms',
    when: 'The route did not start its response within its handler timeout (status configurable: `timeout.status`).'
  },
  SPK_ERR_EXPECTATION_FAILED: {
    status: 417,
    type: 'expectation-failed',
    title: 'Expectation Failed',
    message: 'Expect: %s is not supported; send Expect: 100-continue, or no Expect header',
    when: 'The request has an `Expect` header other than `100-continue`.'
  },
  SPK_ERR_BODY_TOO_LARGE: {
    status: 413,
    type: 'body-too-large',
    title: 'Content Too Large',
    message: 'The request body exceeds the limit of %d bytes',
    when: 'The request body is larger than the route\'s body limit.'
  },
  SPK_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    type: 'unsupported-media-type',
    title: 'Unsupported Media Type',
    message: 'Content-Type %s is not supported here',
    when: 'No body parser accepts the request\'s Content-Type.'
  },
  SPK_ERR_UNSUPPORTED_ENCODING: {
    status: 415,
    type: 'unsupported-content-encoding',
    title: 'Unsupported Media Type',
    message: 'Content-Encoding %s is not supported; send %s',
    when: 'The request body has a `Content-Encoding` the server does not decode.'
  },
  SPK_ERR_RANGE_NOT_SATISFIABLE: {
    status: 416,
    type: 'range-not-satisfiable',
    title: 'Range Not Satisfiable',
    message: 'No part of the requested range is within the file (%d bytes)',
    when: 'A static file was asked for a `Range` it cannot serve (starting past its end, or malformed); `Content-Range: bytes */<size>` gives its size.'
  },
  SPK_ERR_VALIDATION: {
    status: 422,
    type: 'validation-failed',
    title: 'Unprocessable Content',
    message: 'The request %s failed validation',
    when: 'The request does not match the route\'s schema; `errors` lists each offending field.'
  },
  SPK_ERR_RATE_LIMITED: {
    status: 429,
    type: 'rate-limited',
    title: 'Too Many Requests',
    message: '%s',
    when: 'The client exceeded its rate limit; `Retry-After` says when to retry.'
  },
  SPK_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    type: 'headers-too-large',
    title: 'Request Header Fields Too Large',
    message: 'The request headers are too large',
    when: 'The request headers exceed the server\'s header size limit.'
  },
  SPK_ERR_INTERNAL: {
    status: 500,
    type: 'internal-error',
    title: 'Internal Server Error',
    message: 'The server failed to handle the request',
    when: 'Any error without a 4xx status. The real message and stack go to the log, never to the client.'
  },
  SPK_ERR_METHOD_NOT_IMPLEMENTED: {
    status: 501,
    type: 'method-not-implemented',
    title: 'Not Implemented',
    message: '%s is not implemented by this server',
    when: 'A `CONNECT` request: the server is an origin server, not a proxy, and opens no tunnels. Sent with `Connection: close`.'
  },
  SPK_ERR_RATE_LIMIT_UNAVAILABLE: {
    status: 503,
    type: 'rate-limit-unavailable',
    title: 'Service Unavailable',
    message: 'The rate limit cannot be checked right now; retry shortly',
    when: 'The rate-limit store (Redis) is unreachable and `rateLimit.onStoreError` is `reject`.'
  },
  SPK_ERR_SHUTTING_DOWN: {
    status: 503,
    type: 'shutting-down',
    title: 'Service Unavailable',
    message: 'The server is shutting down; retry on another instance',
    when: 'The server is shutting down: readiness probes, and requests arriving on open connections after it stopped accepting new ones (sent with `Connection: close`).'
  },
  SPK_ERR_WEBSOCKET_NOT_ACCEPTED: {
    status: 400,
    type: 'websocket-not-accepted',
    title: 'Bad Request',
    message: '%s %s does not accept WebSocket connections',
    when: 'A WebSocket upgrade reached a route without `websocket: true`.'
  },
  SPK_ERR_WEBSOCKET_UPGRADE_REQUIRED: {
    status: 426,
    type: 'websocket-upgrade-required',
    title: 'Upgrade Required',
    message: '%s %s only accepts WebSocket connections',
    when: 'A plain HTTP request (no WebSocket upgrade) reached a route with `websocket: true`; `Upgrade: websocket` says what the route speaks.'
  },
  SPK_ERR_WEBSOCKET_HANDSHAKE: {
    status: 400,
    type: 'websocket-handshake',
    title: 'Bad Request',
    message: '%s',
    when: 'A WebSocket upgrade that cannot be completed: a `Sec-WebSocket-Version` other than 13 or 8 (`Sec-WebSocket-Version: 13, 8` says which are), a malformed `Sec-WebSocket-Key`, `Sec-WebSocket-Protocol` or `Sec-WebSocket-Extensions`.'
  },
  SPK_ERR_WEBSOCKET_ORIGIN: {
    status: 403,
    type: 'websocket-origin',
    title: 'Forbidden',
    message: 'WebSocket connections from origin %s are not allowed',
    when: 'A WebSocket upgrade came from a browser page whose `Origin` is not allowed (`websocket.origins`; by default, same-origin only when auth is on).'
  },
  SPK_ERR_WEBSOCKET_TOO_MANY_CONNECTIONS: {
    status: 503,
    type: 'websocket-too-many-connections',
    title: 'Service Unavailable',
    message: 'This server already has %d open WebSocket connections; retry shortly or on another instance',
    when: 'A WebSocket upgrade would open a connection while `websocket.maxConnections` are open (or being opened) in this process.'
  },
  SPK_ERR_WEBSOCKET_INVALID_JSON: {
    status: 400,
    type: 'websocket-invalid-json',
    title: 'Bad Request',
    message: 'The message is not valid JSON',
    when: 'An error frame (not an HTTP response): a WebSocket message on a route with `config.websocket.receive` is not JSON. The socket stays open, or closes with 1007 when the route has `closeOnInvalid`.'
  },
  SPK_ERR_WEBSOCKET_INVALID_MESSAGE: {
    status: 422,
    type: 'websocket-invalid-message',
    title: 'Unprocessable Content',
    message: '%s',
    when: 'An error frame (not an HTTP response): a WebSocket message does not match the route\'s `config.websocket.receive`; `errors` lists the offending fields (the first 10; only the first for a message over 16 KiB, which is checked up to its first error). The socket stays open, or closes with 1008 when the route has `closeOnInvalid`.'
  },
  SPK_ERR_WEBSOCKET_BINARY: {
    status: 415,
    type: 'websocket-binary-refused',
    title: 'Unsupported Media Type',
    message: 'This WebSocket route does not accept binary messages; send JSON text',
    when: 'An error frame (not an HTTP response): a binary WebSocket message on a route without `config.websocket.binary`. The socket stays open, or closes with 1003 when the route has `closeOnInvalid`.'
  },
  SPK_ERR_SSE_TOO_MANY_STREAMS: {
    status: 503,
    type: 'too-many-streams',
    title: 'Service Unavailable',
    message: 'This server already has %d open event streams; retry shortly or on another instance',
    when: 'A request would open an event stream (a route with `sse`) while `sse.maxConnections` streams are open in this process.'
  },
  SPK_ERR_TASKS_QUEUE_FULL: {
    status: 503,
    type: 'tasks-queue-full',
    title: 'Service Unavailable',
    message: 'The background task queue is full (%d tasks waiting); retry shortly',
    when: 'A handler called `request.tasks.add()` (or `app.tasks.add()`) while `tasks.maxQueued` tasks were waiting to start. Outside a handler, `add()` throws it.'
  },
  SPK_ERR_TASKS_SHUTTING_DOWN: {
    status: 503,
    type: 'tasks-shutting-down',
    title: 'Service Unavailable',
    message: 'The server is shutting down and accepts no new background tasks; retry on another instance',
    when: 'A handler called `request.tasks.add()` after the requests in flight at shutdown had finished (a route served while closing, such as `config: { shutdown: false }`), or `app.tasks.add()` once the server stopped accepting connections. Outside a handler, `add()` throws it.'
  }
} as const satisfies Record<string, Definition>

export type SpikardErrorCode = keyof typeof errorDefinitions

/**
 * Error constructors, one per code: `throw new errors.SPK_ERR_NOT_FOUND('GET', '/x')`.
 * 4xx errors carry no stack trace: they answer the client and are never logged with one,
 * and capturing it cost ~25-30 µs per rejected request (401s at 64-86 µs of server CPU
 * against 37-48 µs without), which is what a flood of bad credentials or of rate-limited
 * requests would pay. 5xx errors keep theirs for the log.
 */
export const errors = Object.fromEntries(
  Object.entries(errorDefinitions).map(([code, d]) => [code, createError(code, d.message, d.status, Error, d.status >= 500)])
) as Record<SpikardErrorCode, FastifyErrorConstructor>

export function isSpikardCode (code: unknown): code is SpikardErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorDefinitions, code)
}

/**
 * Invalid options or config: thrown at `ready()` (options in code) or before the server
 * starts (config files). `problems` lists one line per key path.
 */
export class SpikardConfigError extends Error {
  readonly code = 'SPK_ERR_CONFIG_INVALID'
  readonly problems: string[]

  /** What the problems are in: `options` (given in code), `config`, `config <file>`, `route <method> <url>`. */
  readonly source: string

  constructor (problems: string[], source = 'options') {
    super(`Invalid spikard ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'SpikardConfigError'
    this.problems = problems
    this.source = source
  }
}
