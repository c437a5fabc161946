/**
 * Graceful shutdown in phases, within one budget (`shutdown.timeout`), on SIGTERM or SIGINT
 * (when `shutdown.signals` is on) and on `app.close()` alike:
 *
 *   1. draining, for `preCloseDelay`: readiness answers 503 at once; requests are still
 *      served, but every response not yet started closes its connection (`Connection: close`,
 *      whoever writes its headers) so keep-alive clients reconnect elsewhere;
 *   2. closing: every new request gets a 503 problem with `Connection: close` (routes with
 *      `config.shutdown: false`, such as liveness, are still served). The listener stays open
 *      until no connection has arrived for 100 ms (at most the connection grace): closing it
 *      earlier would make the kernel reset the connections still waiting to be accepted;
 *      later ones are refused;
 *   3. in-flight requests run to completion, while
 *   4. the drain hooks (`app.spikard.onDrain`) finish long-lived connections and background
 *      work, each given the time left. A request whose body is still arriving when 90 % of the
 *      budget is spent is answered with a 503 problem, so a slow upload cannot overrun it;
 *   5. each connection is closed once it has gone the connection grace (500 ms, or a tenth of
 *      the budget when that is shorter) without a request in flight: an idle keep-alive
 *      connection, or a new one, may be carrying a request that has not arrived yet;
 *   then Fastify's own close runs the onClose hooks. After a signal the process exits 0, or
 *   1 after an uncaught error or when the budget ran out (what was pending is logged).
 *
 * After a signal the phases run before `app.close()` is called; on `app.close()` they run in
 * a preClose hook, after Fastify has flagged itself as closing. From that moment a Fastify
 * created with `return503OnClosing: true` (its default) answers every new request itself
 * with a plain JSON 503, so phases 1 and 2 need `return503OnClosing: false`, which
 * `spikardFastifyOptions()` sets.
 */
import { Server as NetServer } from 'node:net'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { resolveShutdownOptions, type ShutdownOptions } from './options.js'
import { Budget, lifecycleOf, since } from '../../src/lifecycle.js'
import { Connections } from './connections.js'
import { exitOnSignals } from '../../src/exit-on-signals.js'
import { secondaryServers } from '../../src/fastify-internals.js'
import { pathOf } from '../../src/problem-details.js'

/** The most a connection may go without a request before the shutdown closes it; a tenth of the budget when that is shorter. */
const CONNECTION_GRACE_MS = 500
/** The listener closes once no connection has arrived for this long. */
const LISTEN_QUIET_MS = 100
/** Where in the budget a request whose body is still arriving is cut. */
const UPLOAD_CUT_AT = 0.9

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false`: keep serving this route normally while the server closes, instead of a 503 (health probes do). */
    shutdown?: boolean
  }
}

async function spikardShutdown (app: FastifyInstance, options: ShutdownOptions): Promise<void> {
  const { timeout, preCloseDelay, signals } = resolveShutdownOptions(options)
  if (preCloseDelay > 0 && preCloseDelay >= timeout) {
    throw new SpikardConfigError([`shutdown.preCloseDelay: expected less than shutdown.timeout (${timeout} ms), found ${preCloseDelay} ms`])
  }
  const lifecycle = lifecycleOf(app)
  const server = app.server
  const connections = new Connections(server)
  /** How long a connection may go without a request before the shutdown closes it. */
  const grace = Math.min(CONNECTION_GRACE_MS, Math.round(timeout / 10))
  let running: Promise<void> | undefined
  let started = 0
  let ended = 0
  /** What the shutdown is waiting for, for the log line when the budget runs out. */
  let waitingFor = ''
  let overrun = false
  /** The running shutdown's budget, for the signal handler that exits when it runs out. */
  let current: Budget | undefined
  /** A server that never listened (`spikard check`, inject-only tests) logs its shutdown at debug level. */
  let level: 'info' | 'debug' = 'info'

  function logPhase (phase: string, start: number, extra: Record<string, unknown> = {}): void {
    app.log[level]({ phase, durationMs: since(start), ...extra }, 'shutdown phase finished')
  }

  /** What the shutdown is still waiting for, for the line logged when it does not finish in time. */
  function pending (): Record<string, unknown> {
    return { elapsedMs: since(started), waitingFor, pendingDrainHooks: lifecycle.pendingDrainHooks, inFlightRequests: connections.count }
  }

  /** The phases. Run once: a signal and the `app.close()` that follows share them. */
  async function shutdown (trigger: string): Promise<void> {
    running ??= phases(trigger)
    await running
  }

  async function phases (trigger: string): Promise<void> {
    started = performance.now()
    const budget = current = new Budget(timeout, () => {
      overrun = true
      app.log.error({ reason: 'budget exceeded', timeoutMs: timeout, ...pending() }, 'shutdown did not finish in time')
      // The budget is spent: cut what is left, so that close() can finish.
      connections.closeAll()
    })
    lifecycle.enter('draining')
    connections.drain()
    const listening = server.listening
    level = listening ? 'info' : 'debug'
    app.log[level]({ trigger, timeoutMs: timeout, preCloseDelayMs: preCloseDelay }, 'shutdown started')
    // Leaves the last tenth of the budget for the cut requests' answers and the onClose hooks.
    const cut = setTimeout(cutUploads, Math.round(timeout * UPLOAD_CUT_AT)).unref()

    try {
      if (preCloseDelay > 0 && listening) {
        waitingFor = 'the pre-close delay'
        await budget.sleep(preCloseDelay)
        logPhase('pre-close-delay', started)
      }

      lifecycle.enter('closing')
      connections.close()
      let start = performance.now()
      if (listening) {
        waitingFor = 'the listener to go quiet'
        await stopAccepting(budget)
      }
      logPhase('stop-accepting', start, { inFlightRequests: connections.count })

      start = performance.now()
      waitingFor = 'in-flight requests and drain hooks'
      const requests = connections.count
      const hooks = lifecycle.drainHookNames
      const finished = requestsDone(budget)
      await Promise.all([
        finished.then(() => { if (!budget.expired) logPhase('in-flight-requests', start, { requests }) }),
        lifecycle.drain(budget, app.log, finished, level).then(() => { if (!budget.expired) logPhase('drain-hooks', start, { hooks }) })
      ])
      waitingFor = 'open connections'
      await connectionsQuiet(budget)
    } finally {
      clearTimeout(cut)
    }
    // What is left: connections without a request, quiet for the whole grace.
    connections.closeAll()
    budget.clear()
    ended = performance.now()
    waitingFor = 'onClose hooks'
  }

  /**
   * Closes the listener once no connection has arrived for a moment (or after the grace):
   * connections still in the kernel's accept queue when it closes are reset, not refused.
   */
  async function stopAccepting (budget: Budget): Promise<void> {
    const quiet = Math.min(LISTEN_QUIET_MS, grace)
    const latest = performance.now() + grace
    let last = performance.now()
    const onConnection = (): void => { last = performance.now() }
    const listeners = connections.servers.filter((s) => s.listening)
    for (const s of listeners) s.on('connection', onConnection)
    try {
      for (let wait = quiet; wait > 0 && !budget.expired; wait = Math.min(last + quiet, latest) - performance.now()) {
        await budget.sleep(wait)
      }
    } finally {
      for (const s of listeners) s.off('connection', onConnection)
    }
    // net's close, not http's: that one also closes idle keep-alive connections at once, and
    // one of them may be carrying the client's next request (they get their grace below).
    // Fastify closes the other addresses' listeners only once app.server has closed.
    for (const s of listeners) NetServer.prototype.close.call(s)
  }

  async function requestsDone (budget: Budget): Promise<void> {
    while (connections.count > 0 && !budget.expired) await budget.until(connections.settled())
  }

  /** Requests that arrived on open connections meanwhile (answered 503) finish too; each connection gets its grace. */
  async function connectionsQuiet (budget: Budget): Promise<void> {
    while (!budget.expired) {
      await requestsDone(budget)
      const wait = connections.quietIn(grace)
      if (wait <= 0) return
      await budget.sleep(wait)
    }
  }

  /** Answers the requests whose body is still arriving with a 503 problem. */
  function cutUploads (): void {
    for (const request of connections.receiving()) {
      // The path only: a query string may carry a secret (this line is not the access line's redaction).
      app.log.warn({ url: pathOf(request.url ?? ''), elapsedMs: since(started) }, 'shutdown: cutting a request whose body is still arriving')
      // Whoever reads the body (Fastify's parser, or the handler's stream) gets the error and
      // the reply renders it; nobody reading it: nobody could answer, so the connection goes.
      if (request.listenerCount('error') > 0) request.emit('error', new errors.SPK_ERR_SHUTTING_DOWN())
      else request.socket.destroy()
    }
  }

  app.addHook('onRequest', function spikardShutdown (request, _reply, done) {
    if (lifecycle.phase === 'serving' || lifecycle.phase === 'draining' || request.routeOptions.config?.shutdown === false) return done()
    done(new errors.SPK_ERR_SHUTTING_DOWN())
  })

  app.addHook('preClose', async () => { await shutdown('close') })
  // Listening on `localhost` binds its other addresses (::1) on servers of their own: their
  // requests must finish before the process exits, and their connections close too.
  app.addHook('onListen', (done) => {
    for (const secondary of secondaryServers(app)) connections.track(secondary)
    done()
  })

  const uninstall = signals
    ? exitOnSignals({
      log: app.log,
      timeout,
      pending,
      expire: () => current?.abort(),
      close: async (trigger) => {
        await shutdown(trigger)
        await app.close()
        return !overrun
      }
    })
    : () => {}

  app.addHook('onClose', (_app, done) => {
    uninstall()
    connections.stop()
    lifecycle.enter('closed')
    if (running !== undefined && ended > 0) {
      logPhase('close', ended)
      app.log[level]({ durationMs: since(started) }, 'shutdown complete')
    }
    done()
  })
}

export default fp(spikardShutdown, { name: 'spikard-shutdown', fastify: '5.x', decorators: { fastify: ['spikard'] } })
