import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { kOwnTimeout, resolveTimeoutOptions, routeTimeout, type TimeoutOptions } from './options.js'
import { applyServerTimeouts, serverTimeouts } from './server-timeouts.js'
import { Deadlines, type Deadline } from './deadlines.js'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { decide, decisionOf, registered, routeName, type RouteView } from '../../src/route-decision.js'
import { MAX_TIMER_MS } from '../../src/schema.js'
import { provideRequestSignal } from '../../src/fastify-internals.js'
import { logUnsentError } from '../../src/problem-details.js'
import { isStreamPayload, kResponseStarted, streamedOf } from '../stream/state.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The status a handler timeout is answered with (`timeout.status`); read by the problem-details handler. */
    spikardTimeoutStatus?: 408 | 503 | 504
  }
}

/** Where a route keeps its deadline list, or null when spikard does not time it (src/route-decision.ts). */
const kTimeout = Symbol('spikard.timeout')
/** Where a timed request keeps its entry in the deadline list; EXPIRED once the timeout has answered it. */
const kDeadline = Symbol('spikard.timeout.deadline')
const EXPIRED = Symbol('spikard.timeout.expired')

/**
 * Undefined rather than null on a route of a child context created before this plugin (the
 * docs' routes, a user's plugin registered before spikard): Fastify gives a request decorator
 * to the children created after it only. Seen when an earlier hook answered (the shutdown's 503).
 */
type WithDeadline = FastifyRequest & { [kDeadline]: Deadline<TimedRequest> | typeof EXPIRED | null | undefined }

/**
 * Request timeouts. The handler timeout is spikard's own: `timeout.handler` for every route
 * (a route overrides it with Fastify's `handlerTimeout` route option), from the request's
 * arrival to the start of its response. When it fires, request.signal is aborted, the
 * request is answered with a problem (status `timeout.status`, rendered by
 * problem-details), and the handler's late result is dropped without a log line, a late
 * failure logged (lateRejection; what is sent late, a late body's parse error included:
 * sendTooLate). A
 * streamed response is timed to its first byte, not its end: with the stream feature on,
 * it tells this one when that byte is written (kResponseStarted), and a stream still
 * silent at the timeout is failed with the timeout error, so the client gets the problem;
 * without it, a stream is timed to its hand-over. Node's server timeouts (slow headers,
 * slow bodies, idle keep-alive) are set on `app.server` (and copied to the servers of
 * localhost's other addresses once the app listens: mirrorServerSetup).
 *
 * Why not Fastify's `handlerTimeout` (5.12): it stops timing a request, and aborts its
 * request.signal, as soon as a request body has been read, because it takes the request's
 * `close` event (which Node emits when the body is consumed) for a client disconnect
 * (fastify/fastify#6725, open). A POST handler was never timed out, and every request with a
 * body paid for an AbortError with a stack. It also arms a timer and a listener per request;
 * the list in deadlines.ts costs one small object. A route registered before spikard with
 * a `handlerTimeout` of its own stays on Fastify's timer (its options were fixed before
 * spikard could see them).
 */
async function spikardTimeout (app: FastifyInstance, options: TimeoutOptions): Promise<void> {
  const resolved = resolveTimeoutOptions(options)
  const { status } = resolved
  // A user-made instance may have Fastify's own default (`Fastify({ handlerTimeout })`).
  const factoryDefault = (app.initialConfig as { handlerTimeout?: number }).handlerTimeout ?? 0
  if (factoryDefault > 0 && resolved.handler > 0) {
    throw new SpikardConfigError([`timeout.handler: Fastify was created with handlerTimeout ${factoryDefault} as well; remove it (spikard's handler timeout also times requests with a body) or set timeout.handler to 0`])
  }
  // Also passed to the factory by createServer; set here so `app.register(spikard)` on an
  // instance of your own gets them. Read by Node when the server starts listening.
  applyServerTimeouts(app.server, serverTimeouts(resolved))
  app.decorate('spikardTimeoutStatus', status)
  app.decorateRequest(kDeadline, null)
  // Called by the stream feature at a streamed response's first byte (a method: on the prototype, nothing per request).
  app.decorateRequest(kResponseStarted, function (this: FastifyRequest) { stopClock(this) })
  /** The stream feature is on: it reports first bytes, so a stream is timed to its first byte. */
  let streaming = false
  app.addHook('onReady', function spikardTimeoutStreaming (done) {
    streaming = this.hasPlugin('spikard-stream')
    done()
  })

  // One list per duration, shared by the routes that have it.
  const lists = new Map<number, Deadlines<TimedRequest>>()
  app.addHook('onClose', (_app, done) => {
    for (const list of lists.values()) list.close()
    done()
  })
  let warned = false

  function listFor (ms: number): Deadlines<TimedRequest> {
    let list = lists.get(ms)
    if (list === undefined) lists.set(ms, list = new Deadlines<TimedRequest>(ms, (timed) => expire(timed, ms)))
    return list
  }

  /** The route's deadline list; null when Fastify times it (its own handlerTimeout) or nothing does. */
  function listOf (route: RouteView): Deadlines<TimedRequest> | null {
    // Your instance's own handlerTimeout (with timeout.handler 0): every route is on Fastify's timer.
    if (factoryDefault > 0) return null
    // Seen late, a handlerTimeout is already Fastify's timer, armed for every request.
    if (route.late) return (route.handlerTimeout ?? 0) > 0 || resolved.handler <= 0 ? null : listFor(resolved.handler)
    const ms = routeTimeout(route, resolved)
    return ms > 0 ? listFor(ms) : null
  }

  /** Answers a request whose handler did not start its response in time. */
  function expire (timed: TimedRequest, ms: number): void {
    const { request, reply } = timed
    // Already answered (or hijacked), or the client is gone: nothing to send.
    if (reply.sent || reply.raw.destroyed) return
    const streamed = streamedOf(request)
    if (streamed?.started === true) return
    // Headers the handler wrote on reply.raw itself (without hijacking): the response
    // started in time, and an answer now could only cut it short.
    if (streamed === null && reply.raw.headersSent) return
    ;(request as WithDeadline)[kDeadline] = EXPIRED
    const error = Object.assign(new errors.SPK_ERR_HANDLER_TIMEOUT(ms), { statusCode: status })
    if (streamed !== null) {
      // Handed over, not a byte yet: the stream fails with the timeout error (its source is
      // destroyed with it) and the error handler answers, as for any error before the first byte.
      streamed.fail(error)
      timed.abort(error)
      return
    }
    timed.abort(error)
    if (!reply.sent) reply.send(error) // else a request.signal listener answered
    // Whatever the handler or Fastify sends from now on comes too late (this reply only:
    // the requests that are not timed out do not pay for it).
    ;(reply as unknown as { send: typeof sendTooLate }).send = sendTooLate
  }

  app.addHook('onRoute', (route) => {
    // Node turns a longer timer into 1 ms: the list would sweep every millisecond, with a
    // TimeoutOverflowWarning each time, for as long as a request of the route is in flight.
    if (route.handlerTimeout !== undefined && route.handlerTimeout > MAX_TIMER_MS) {
      throw new SpikardConfigError([`handlerTimeout: expected at most ${MAX_TIMER_MS} ms (about 24 days), found ${route.handlerTimeout}`], `route ${routeName(route)}`)
    }
    const list = listOf(registered(route))
    decide(route, kTimeout, list)
    if (list === null) return
    // Off for Fastify (see above); spikard times the route. Its own timeout stays readable
    // (spikard check, the OpenAPI document) on its config.
    if (route.handlerTimeout !== undefined) decide(route, kOwnTimeout, route.handlerTimeout)
    route.handlerTimeout = undefined
    route.handler = dropLateResults(route.handler)
  })
  // The clock starts before anything of the route runs that may wait.
  app.addHook('onRequest', function spikardTimeoutStart (request, reply, done) {
    const list = decisionOf(request, kTimeout, listOf)
    if (list === null) {
      // Not timed, with a body (a POST returning a stream): Fastify's request.signal would
      // abort as soon as the body is read (fastify/fastify#6725); this one aborts when the
      // client goes away. Left alone where Fastify's own handler timeout runs (its signal).
      if (request.method !== 'GET' && request.method !== 'HEAD' && factoryDefault === 0 &&
        !((request.routeOptions as { handlerTimeout?: number }).handlerTimeout! > 0)) provideRequestSignal(request, new TimedRequest(request, reply))
      return done()
    }
    const timed = new TimedRequest(request, reply)
    ;(request as WithDeadline)[kDeadline] = list.add(timed)
    if (!provideRequestSignal(request, timed) && !warned) {
      warned = true
      request.log.warn('spikard-timeout: cannot find Fastify\'s request.signal controller; request.signal is Fastify\'s and is not aborted at the timeout')
    }
    done()
  })
  // The response has started (a buffered payload): in time. A stream is timed to its first
  // byte when the stream feature reports it, else to this point.
  app.addHook('onSend', function spikardTimeoutStop (request, _reply, payload, done) {
    // Null (or undefined: WithDeadline) when the route is not timed, or an earlier hook answered before the timer began.
    const deadline = (request as WithDeadline)[kDeadline]
    if (deadline != null && deadline !== EXPIRED && !(streaming && isStreamPayload(payload))) deadline.list.remove(deadline)
    done(null, payload)
  })
}

/** Stops timing a request (its response has started). */
function stopClock (request: FastifyRequest): void {
  const deadline = (request as WithDeadline)[kDeadline]
  if (deadline != null && deadline !== EXPIRED) deadline.list.remove(deadline)
}

/**
 * A timed request, as the deadline list holds it, and its request.signal: created on first
 * read, aborted at the timeout or when the client goes away before the response has
 * finished. Fastify's own listens to the request's `close` event, which Node also emits once
 * a request body has been read, so a POST handler's signal was aborted as soon as it ran
 * (fastify/fastify#6725): this one listens to the response. Fastify's getter returns
 * `.signal`, and its cleanup only tests presence.
 */
class TimedRequest {
  #controller: AbortController | undefined

  constructor (readonly request: FastifyRequest, readonly reply: FastifyReply) {}

  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      const controller = this.#controller = new AbortController()
      const response = this.reply.raw
      response.once('close', () => { if (!response.writableFinished) controller.abort() })
    }
    return this.#controller.signal
  }

  abort (reason: unknown): void {
    void this.signal
    this.#controller?.abort(reason)
  }
}

/**
 * Once the timeout has answered, a late return value or rejection resolves to undefined,
 * which Fastify ignores (a late stream is released first); it would otherwise log
 * FST_ERR_REP_ALREADY_SENT (warn) or "Promise errored, but reply.sent = true was set"
 * (error) for a request already answered. A late rejection is logged as a late error sent
 * is (sendTooLate): a failure of the server stays visible, whenever it happens.
 * A late explicit `reply.send()` is sendTooLate's.
 */
function dropLateResults (handler: RouteHandlerMethod): RouteHandlerMethod {
  return function timed (this: FastifyInstance, request, reply) {
    const result: unknown = handler.call(this, request, reply)
    return result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function'
      ? settle(result as PromiseLike<unknown>, request)
      : result
  } as RouteHandlerMethod
}

/**
 * The handler's promise as Fastify sees it: a thenable rather than a second promise (one
 * promise per request fewer, each with its hooks when an AsyncLocalStorage is active on
 * Node 20). Fastify calls `then` once, with its own callbacks.
 */
function settle (result: PromiseLike<unknown>, request: FastifyRequest): PromiseLike<unknown> {
  const thenable = {
    then (resolved?: (value: unknown) => unknown, rejected?: (reason: unknown) => unknown) {
      return result.then(
        (value) => timedOut(request) ? release(value) : resolved?.(value),
        (error: unknown) => timedOut(request) ? lateRejection(request, error) : rejected?.(error))
    }
  }
  return thenable as PromiseLike<unknown>
}

/**
 * A rejection of the handler after the timeout has answered. What the abort of
 * request.signal made it throw (the timeout error itself, or an AbortError such as a
 * timer's) is the handler stopping as asked: one debug line. Any other error is logged as
 * the error handler would log it: a failure of the server at error level, the client's at debug.
 */
function lateRejection (request: FastifyRequest, error: unknown): undefined {
  const msg = 'the handler failed after the handler timeout had answered the request'
  if (isAbort(error)) request.log.debug(msg)
  else logUnsentError(request, error, msg)
}

/**
 * Whether a late rejection is the abort. A rejection value is anything thrown: a `name`
 * getter (or a Proxy) that throws is not the abort, and must not throw here, in the
 * callback Fastify gave `then`: nothing catches it there, so it became an unhandled rejection.
 */
function isAbort (error: unknown): boolean {
  try {
    return error instanceof errors.SPK_ERR_HANDLER_TIMEOUT || (error as { name?: unknown } | null)?.name === 'AbortError'
  } catch {
    return false
  }
}

/**
 * reply.send() on the reply of a request the timeout has answered: the handler's late
 * `reply.send()`, or Fastify's own send of an error that came late, chiefly a body that
 * finished arriving after the timeout and failed to parse (its parser sends without asking
 * whether the reply was sent). Fastify's send, finding the response sent, logs
 * FST_ERR_REP_ALREADY_SENT at warn ('Reply was already sent, did you forget to "return
 * reply"'), which blames the route, loses the late error itself, and leaves a stream
 * payload open for ever (a file descriptor per timed-out request). Here a stream is released
 * as a late returned one is; an error is logged as the error handler would log it (a
 * failure of the server at error level, the client's at debug); anything else is dropped
 * with a debug line.
 */
function sendTooLate (this: FastifyReply, payload?: unknown): FastifyReply {
  // The timeout's own answer still on its way (an async onError or onSend hook) goes on.
  if (!this.sent) return (Object.getPrototypeOf(this) as FastifyReply).send.call(this, payload)
  if (payload instanceof Error) {
    logUnsentError(this.request, payload, 'error after the handler timeout had answered the request: not sent')
    return this
  }
  const stream = isStreamPayload(payload)
  if (stream) release(payload)
  this.request.log.debug({ stream }, 'reply.send() after the handler timeout had answered the request: dropped')
  return this
}

/**
 * Drops a late result: a stream nobody will read is destroyed (cancelled, returned), so the
 * file, socket or generator behind it is released rather than held until the process ends.
 */
function release (value: unknown): undefined {
  if (!isStreamPayload(value)) return
  const stream = value as { destroy?: () => void, cancel?: () => Promise<void>, return?: () => Promise<unknown> }
  if (typeof stream.destroy === 'function') stream.destroy()
  else if (value instanceof Response) void value.body?.cancel().catch(() => {})
  else if (typeof stream.cancel === 'function') void stream.cancel().catch(() => {})
  else if (typeof stream.return === 'function') void Promise.resolve(stream.return()).catch(() => {})
}

/**
 * Whether the timeout answered this request. Tested on a field rather than on
 * `request.signal.reason`: Node builds a controller's signal lazily, and reading it after
 * every handler cost an AbortSignal per request (about 12 µs of CPU per request in
 * `npm run bench`; see bench/RESULTS.md).
 */
function timedOut (request: FastifyRequest): boolean {
  return (request as WithDeadline)[kDeadline] === EXPIRED
}

export default fp(spikardTimeout, { name: 'spikard-timeout', fastify: '5.x' })
