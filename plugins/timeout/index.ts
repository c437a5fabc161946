import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify'
import { resolveTimeoutOptions, type TimeoutOptions } from './options.js'
import { serverTimeouts } from './server-timeouts.js'
import { Deadlines, type Deadline } from './deadlines.js'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { append, prepend, type OnError, type OnRequest, type OnSend } from '../../src/route-hooks.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The status a handler timeout is answered with (`timeout.status`); read by the problem-details handler. */
    spikardTimeoutStatus?: 408 | 503 | 504
  }
}

/** The error Fastify's own handler timer sends (routes spikard does not time), and aborts `request.signal` with. */
const FASTIFY_TIMED_OUT = 'FST_ERR_HANDLER_TIMEOUT'
/** Description of the symbol under which Fastify keeps a request's AbortController (lib/symbols.js). */
const SIGNAL_SYMBOL = 'fastify.request.signal'
/** Where a timed request keeps its entry in the deadline list. */
const kDeadline = Symbol('spikard.timeout.deadline')

/** The handler timeout of each route spikard times (the CLI's TIMEOUT column reads it). */
const timedRoutes = new WeakMap<object, number>()

/** The handler timeout spikard applies to a route registered after it, if any. */
export function handlerTimeoutOf (route: object): number | undefined {
  return timedRoutes.get(route)
}

type WithDeadline = FastifyRequest & { [kDeadline]: Deadline<TimedRequest> | null }

/**
 * Request timeouts. The handler timeout is spikard's own: `timeout.handler` for every route
 * registered after it (a route overrides it with Fastify's `handlerTimeout` route option),
 * from the request's arrival to the start of its response. When it fires, request.signal is
 * aborted, the request is answered with a problem (status `timeout.status`, rendered by
 * problem-details), and the handler's late result is dropped without a log line. A streamed
 * response is timed to its start, not its end. Node's server timeouts (slow headers, slow
 * bodies, idle keep-alive) are set on `app.server`.
 *
 * Why not Fastify's `handlerTimeout` (5.12): it stops timing a request, and aborts its
 * request.signal, as soon as a request body has been read, because it takes the request's
 * `close` event (which Node emits when the body is consumed) for a client disconnect
 * (fastify/fastify#6725, open). A POST handler was never timed out, and every request with a
 * body paid for an AbortError with a stack. It also arms a timer and a listener per request;
 * the list in deadlines.ts costs one small object.
 */
async function spikardTimeout (app: FastifyInstance, options: TimeoutOptions): Promise<void> {
  const resolved = resolveTimeoutOptions(options)
  const { handler, status } = resolved
  // A user-made instance may have Fastify's own default (`Fastify({ handlerTimeout })`).
  const factoryDefault = (app.initialConfig as { handlerTimeout?: number }).handlerTimeout ?? 0
  if (factoryDefault > 0 && handler > 0) {
    throw new SpikardConfigError([`timeout.handler: Fastify was created with handlerTimeout ${factoryDefault} as well; remove it (spikard's handler timeout also times requests with a body) or set timeout.handler to 0`])
  }
  // Also passed to the factory by createServer; set here so `app.register(spikard)` on an
  // instance of your own gets them. Read by Node when the server starts listening.
  Object.assign(app.server, serverTimeouts(resolved))
  app.decorate('spikardTimeoutStatus', status)
  app.decorateRequest(kDeadline, null)

  // One list per duration, shared by the routes that have it.
  const lists = new Map<number, Deadlines<TimedRequest>>()
  app.addHook('onClose', (_app, done) => {
    for (const list of lists.values()) list.close()
    done()
  })
  let signalSymbol: symbol | undefined
  let warned = false

  /** Answers a request whose handler did not start its response in time. */
  function expire (timed: TimedRequest, ms: number): void {
    const { reply } = timed
    // Already answered (or hijacked), or the client is gone: nothing to send.
    if (reply.sent || reply.raw.destroyed) return
    const error = Object.assign(new errors.SPK_ERR_HANDLER_TIMEOUT(ms), { statusCode: status })
    timed.abort(error)
    if (reply.sent) return // a request.signal listener answered
    reply.send(error)
    reply.send = sendUnlessSent
  }

  /**
   * request.signal of a timed request is spikard's (TimedRequest, below), put where Fastify
   * keeps the signal's controller: a private symbol, found by its description on the first
   * timed request (Fastify sets it on the first read of request.signal) rather than imported
   * from fastify/lib/symbols.js, since a deep import breaks if Fastify adds an `exports` map.
   * If a release renames it, this warns once, Fastify's own signal stays, and the
   * request.signal tests fail.
   */
  function installSignal (request: FastifyRequest, timed: TimedRequest): void {
    if (signalSymbol === undefined) {
      if (warned) return
      void request.signal
      signalSymbol = Object.getOwnPropertySymbols(request).find((s) => s.description === SIGNAL_SYMBOL)
      if (signalSymbol === undefined) {
        warned = true
        return request.log.warn('spikard-timeout: cannot find Fastify\'s request.signal controller; request.signal is Fastify\'s and is not aborted at the timeout')
      }
    }
    (request as unknown as Record<symbol, TimedRequest>)[signalSymbol] = timed
  }

  app.addHook('onRoute', (route) => {
    if (factoryDefault > 0) {
      // Your instance's own default, with timeout.handler 0: every route is on Fastify's
      // timer (its default or the route's value); its late results are dropped too.
      route.handler = dropLateResults(route.handler)
      route.onError = append(route.onError, silenceLateSends as OnError)
      return
    }
    const ms = route.handlerTimeout ?? handler
    if (ms <= 0) return
    // Off for Fastify (see above); spikard times the route.
    route.handlerTimeout = undefined
    timedRoutes.set(route, ms)
    let list = lists.get(ms)
    if (list === undefined) lists.set(ms, list = new Deadlines<TimedRequest>(ms, (timed) => expire(timed, ms)))
    const deadlines = list
    // First among the route's hooks: the clock starts before anything of the route runs.
    const start = function spikardTimeoutStart (request: FastifyRequest, reply: FastifyReply, done: () => void): void {
      const timed = new TimedRequest(request, reply)
      ;(request as WithDeadline)[kDeadline] = deadlines.add(timed)
      installSignal(request, timed)
      done()
    }
    // The response has started (any payload: buffered, stream or Response): in time. A
    // stream is timed to this point, not to its first chunk: by then the later onSend hooks
    // (compression) have shaped the response, and a problem sent after them would go out
    // under their headers (JSON with `Content-Encoding: gzip`).
    const stop = function spikardTimeoutStop (request: FastifyRequest, _reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void): void {
      // Null when an earlier hook answered before the route's own ran; removing an expired
      // entry does nothing.
      const deadline = (request as WithDeadline)[kDeadline]
      if (deadline !== null) deadlines.remove(deadline)
      done(null, payload)
    }
    route.onRequest = prepend(route.onRequest, start as OnRequest)
    route.handler = dropLateResults(route.handler)
    route.onSend = append(route.onSend, stop as OnSend)
  })
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

/**
 * The handler's promise as Fastify sees it: a thenable rather than a second promise (one
 * promise per request fewer, each with its hooks when an AsyncLocalStorage is active on
 * Node 20). Fastify calls `then` once, with its own callbacks.
 */
function settle (result: PromiseLike<unknown>, reply: FastifyReply): PromiseLike<unknown> {
  const thenable = {
    then (resolved?: (value: unknown) => unknown, rejected?: (reason: unknown) => unknown) {
      return result.then(
        (value) => timedOut(reply) ? undefined : resolved?.(value),
        (error: unknown) => timedOut(reply) ? undefined : rejected?.(error))
    }
  }
  return thenable as PromiseLike<unknown>
}

/**
 * Whether the timeout answered this request: expire() (or, for Fastify's own timer,
 * silenceLateSends below) swapped its `send`.
 * Tested on the reply rather than on `request.signal.reason`: Node builds a controller's
 * signal lazily, and reading it after every handler cost an AbortSignal per request
 * (about 12 µs of CPU per request in `npm run bench`; see bench/RESULTS.md).
 */
function timedOut (reply: FastifyReply): boolean {
  return reply.send === sendUnlessSent
}

/**
 * The same for a late `reply.send()` (`return reply.send(x)`): on the timed-out reply only,
 * `send` becomes a no-op once the timeout problem is sent, instead of warning. For routes on
 * Fastify's own timer, swapped when its error goes through the route's onError hooks.
 */
function silenceLateSends (_request: FastifyRequest, reply: FastifyReply, error: { code?: unknown }, done: () => void): void {
  if (error.code === FASTIFY_TIMED_OUT) reply.send = sendUnlessSent
  done()
}

function sendUnlessSent (this: FastifyReply, payload?: unknown): FastifyReply {
  return this.sent ? this : (Object.getPrototypeOf(this) as FastifyReply).send.call(this, payload)
}

export default fp(spikardTimeout, { name: 'spikard-timeout', fastify: '5.x' })
