import type { Readable } from 'node:stream'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteOptions } from 'fastify'
import { resolveTimeoutOptions, type TimeoutOptions } from './options.js'
import { serverTimeouts } from './server-timeouts.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The status a handler timeout is answered with (`timeout.status`); read by the problem-details handler. */
    spikardTimeoutStatus?: 408 | 503 | 504
  }
}

/** The error Fastify's handler timer sends, and aborts `request.signal` with. */
const TIMED_OUT = 'FST_ERR_HANDLER_TIMEOUT'
/** Description of the symbol under which Fastify keeps a request's handler timer (lib/symbols.js). */
const TIMER_SYMBOL = 'fastify.request.timeoutTimer'

/** One hook of a route's hook option (which is one hook, a list, or absent). */
type HookOf<T> = T extends Array<infer H> ? H : Exclude<T, undefined>

/**
 * Request timeouts. The handler timeout is Fastify's own `handlerTimeout`: spikard gives it
 * a default for every route registered after it, answers it with a problem (status
 * `timeout.status`, rendered by problem-details), drops the handler's late result without
 * a log line, and times a streamed response to its first byte instead of its end. Node's
 * server timeouts (slow headers, slow bodies, idle keep-alive) are set on `app.server`.
 */
async function spikardTimeout (app: FastifyInstance, options: TimeoutOptions): Promise<void> {
  const resolved = resolveTimeoutOptions(options)
  const { handler, status } = resolved
  // Also passed to the factory by createServer; set here so `app.register(spikard)` on an
  // instance of your own gets them. Read by Node when the server starts listening.
  Object.assign(app.server, serverTimeouts(resolved))
  app.decorate('spikardTimeoutStatus', status)

  // Found on the first timed request and kept (one lookup per instance, not per request).
  let timerSymbol: symbol | undefined
  let warned = false

  /**
   * Stops Fastify's handler timer. Fastify has no public way to do it short of
   * `reply.hijack()`, which would also take the response away from Fastify (no more
   * `request.signal` abort on disconnect) and mark it sent. Its timer lives under a
   * private symbol, found by description rather than imported from fastify/lib/symbols.js:
   * a deep import breaks if Fastify adds an `exports` map, and would silently name a
   * different symbol when the user's instance comes from another copy of Fastify. If a
   * Fastify release renames it, this warns once (and the streaming tests fail).
   */
  function stopTimer (request: FastifyRequest): void {
    timerSymbol ??= Object.getOwnPropertySymbols(request).find((s) => s.description === TIMER_SYMBOL)
    if (timerSymbol !== undefined) return clearTimeout((request as unknown as Record<symbol, NodeJS.Timeout>)[timerSymbol])
    if (!warned) request.log.warn('spikard-timeout: cannot find Fastify\'s handler timer; long streamed responses may be cut at the handler timeout')
    warned = true
  }

  /**
   * A streamed response is timed to its start, not to its end: the timer stops when the
   * handler hands its stream over (Node stream, web stream or `Response`), the moment
   * Fastify commits to the response's status and headers. Left running, it would destroy
   * the response mid-way once the stream's first chunk went out. Waiting for that first
   * chunk instead was tried and rejected: by then the later onSend hooks (compression)
   * have shaped the response for the stream, and a timeout problem sent in between goes
   * out under their headers (a plain JSON body with `Content-Encoding: gzip`). A handler
   * that hands its stream over late gets the timeout problem like any other slow one.
   */
  function timeToFirstByte (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void): void {
    if (payload !== null && typeof payload === 'object' &&
      (typeof (payload as Readable).pipe === 'function' || typeof (payload as ReadableStream).getReader === 'function' || payload instanceof Response)) {
      stopTimer(request)
    }
    done(null, payload)
  }

  // A user-made instance may have its own default (`Fastify({ handlerTimeout })`).
  const factoryDefault = (app.initialConfig as { handlerTimeout?: number }).handlerTimeout ?? 0
  app.addHook('onRoute', (route) => {
    if (handler > 0) route.handlerTimeout ??= handler
    // Routes without a timeout (handler: 0 and none of their own) are left untouched.
    if ((route.handlerTimeout ?? factoryDefault) <= 0) return
    route.handler = dropLateResults(route.handler)
    route.onSend = append(route.onSend, timeToFirstByte as HookOf<RouteOptions['onSend']>)
    route.onError = append(route.onError, silenceLateSends as HookOf<RouteOptions['onError']>)
  })
}

function append<H> (hooks: H | H[] | undefined, hook: H): H[] {
  return hooks === undefined ? [hook] : Array.isArray(hooks) ? [...hooks, hook] : [hooks, hook]
}

/**
 * Once the timeout has answered, a late return value or rejection resolves to undefined,
 * which Fastify ignores; it would otherwise log FST_ERR_REP_ALREADY_SENT (warn) or
 * "Promise errored, but reply.sent = true was set" (error) for a request already answered.
 */
function dropLateResults (handler: RouteHandlerMethod): RouteHandlerMethod {
  return function timed (this: FastifyInstance, request, reply) {
    const result: unknown = handler.call(this, request, reply)
    return result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function'
      ? settle(result as PromiseLike<unknown>, reply)
      : result
  } as RouteHandlerMethod
}

function settle (result: PromiseLike<unknown>, reply: FastifyReply): PromiseLike<unknown> {
  return result.then(
    (value) => timedOut(reply) ? undefined : value,
    (error: unknown) => { if (timedOut(reply)) return undefined; throw error })
}

/**
 * Whether the timeout answered this request: silenceLateSends (below) swapped its `send`.
 * Tested on the reply rather than on `request.signal.reason`: Node builds a controller's
 * signal lazily, and reading it after every handler cost an AbortSignal per request
 * (about 12 µs of CPU per request in `npm run bench`; see bench/RESULTS.md).
 */
function timedOut (reply: FastifyReply): boolean {
  return reply.send === sendUnlessSent
}

/**
 * The same for a late `reply.send()` (`return reply.send(x)`): on the timed-out reply only,
 * `send` becomes a no-op once the timeout problem is sent, instead of warning.
 */
function silenceLateSends (_request: FastifyRequest, reply: FastifyReply, error: { code?: unknown }, done: () => void): void {
  if (error.code === TIMED_OUT) reply.send = sendUnlessSent
  done()
}

function sendUnlessSent (this: FastifyReply, payload?: unknown): FastifyReply {
  return this.sent ? this : (Object.getPrototypeOf(this) as FastifyReply).send.call(this, payload)
}

export default fp(spikardTimeout, { name: 'spikard-timeout', fastify: '5.x' })
