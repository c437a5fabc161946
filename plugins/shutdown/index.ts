/**
 * Graceful shutdown in phases, within one budget (`shutdown.timeout`), on SIGTERM or SIGINT
 * (when `shutdown.signals` is on) and on `app.close()` alike:
 *
 *   1. draining: readiness answers 503 at once; for `preCloseDelay` requests are still
 *      served, with `Connection: close` so keep-alive clients reconnect elsewhere;
 *   2. closing: the server stops accepting connections and closes idle ones; requests that
 *      arrive on open connections get a 503 problem with `Connection: close`;
 *   3. in-flight requests run to completion, while
 *   4. the drain hooks (`app.spikard.onDrain`) finish long-lived connections and background
 *      work, each given the time left;
 *   then Fastify's own close runs the onClose hooks. After a signal the process exits 0, or
 *   1 after an uncaught error or when the budget ran out (what was pending is logged).
 *
 * After a signal the phases run before `app.close()` is called; on `app.close()` they run in
 * a preClose hook, after Fastify has flagged itself as closing. From that moment a Fastify
 * created with `return503OnClosing: true` (its default) answers every new request itself
 * with a plain JSON 503, so phases 1 and 2 need `return503OnClosing: false`, which
 * `spikardFastifyOptions()` should set.
 */
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { resolveShutdownOptions, type ShutdownOptions } from './options.js'
import { Budget, lifecycleOf, since } from '../../src/lifecycle.js'
import { InFlight } from './connections.js'
import { exitOnSignals } from './signals.js'

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
  const inFlight = new InFlight(server)
  let running: Promise<void> | undefined
  let started = 0
  let ended = 0
  /** What the shutdown is waiting for, for the log line when the budget runs out. */
  let waitingFor = ''
  let overrun = false
  /** A server that never listened (`spikard check`, inject-only tests) logs its shutdown at debug level. */
  let level: 'info' | 'debug' = 'info'

  function logPhase (phase: string, start: number, extra: Record<string, unknown> = {}): void {
    app.log[level]({ phase, durationMs: since(start), ...extra }, 'shutdown phase finished')
  }

  /** What the shutdown is still waiting for, for the line logged when it does not finish in time. */
  function pending (): Record<string, unknown> {
    return { elapsedMs: since(started), waitingFor, pendingDrainHooks: lifecycle.pendingDrainHooks, inFlightRequests: inFlight.count }
  }

  /** Phases 1 to 4. Runs once: a signal and the `app.close()` that follows share it. */
  async function shutdown (trigger: string): Promise<void> {
    running ??= phases(trigger)
    await running
  }

  async function phases (trigger: string): Promise<void> {
    started = performance.now()
    const budget = new Budget(timeout, () => {
      overrun = true
      app.log.error({ reason: 'budget exceeded', timeoutMs: timeout, ...pending() }, 'shutdown did not finish in time')
      // The budget is spent: cut what is left, so that close() can finish.
      inFlight.closeAll()
    })
    lifecycle.enter('draining')
    level = server.listening ? 'info' : 'debug'
    app.log[level]({ trigger, timeoutMs: timeout, preCloseDelayMs: preCloseDelay }, 'shutdown started')

    if (preCloseDelay > 0 && server.listening) {
      waitingFor = 'the pre-close delay'
      await budget.sleep(preCloseDelay)
      logPhase('pre-close-delay', started)
    }

    lifecycle.enter('closing')
    let start = performance.now()
    if (server.listening) server.close()
    inFlight.closeWhenIdle()
    logPhase('stop-accepting', start, { inFlightRequests: inFlight.count })

    start = performance.now()
    waitingFor = 'in-flight requests and drain hooks'
    const requests = inFlight.count
    const hooks = lifecycle.drainHookNames
    await Promise.all([
      requestsDone(budget).then(() => { if (!budget.expired) logPhase('in-flight-requests', start, { requests }) }),
      lifecycle.drain(budget, app.log).then(() => { if (!budget.expired) logPhase('drain-hooks', start, { hooks }) })
    ])
    // Requests that arrived on open connections meanwhile (answered 503) finish too.
    await requestsDone(budget)
    // Nothing is in flight: what is left are connections without a complete request.
    inFlight.closeAll()
    budget.clear()
    ended = performance.now()
    waitingFor = 'onClose hooks'
  }

  async function requestsDone (budget: Budget): Promise<void> {
    while (inFlight.count > 0 && !budget.expired) await budget.until(inFlight.settled())
  }

  function closeConnection (request: FastifyRequest, reply: FastifyReply): void {
    if (request.raw.httpVersionMajor < 2) reply.header('connection', 'close') // HTTP/2 has no such header
  }

  app.addHook('onRequest', (request, reply, done) => {
    if (lifecycle.phase === 'serving') return done()
    closeConnection(request, reply)
    if (lifecycle.phase !== 'draining' && request.routeOptions.config?.shutdown !== false) return done(new errors.SPK_ERR_SHUTTING_DOWN())
    done()
  })
  // Responses to requests that arrived before the shutdown began.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (lifecycle.phase !== 'serving') closeConnection(request, reply)
    done(null, payload)
  })

  app.addHook('preClose', async () => { await shutdown('close') })

  const uninstall = signals
    ? exitOnSignals({
      log: app.log,
      timeout,
      pending,
      close: async (trigger) => {
        await shutdown(trigger)
        await app.close()
        return !overrun
      }
    })
    : () => {}

  app.addHook('onClose', (_app, done) => {
    uninstall()
    inFlight.stop()
    lifecycle.enter('closed')
    if (running !== undefined && ended > 0) {
      logPhase('close', ended)
      app.log[level]({ durationMs: since(started) }, 'shutdown complete')
    }
    done()
  })
}

export default fp(spikardShutdown, { name: 'spikard-shutdown', fastify: '5.x', decorators: { fastify: ['spikard'] } })
