/**
 * The server's lifecycle, shared by every feature: where the server is (`phase`) and the
 * drain hooks through which long-lived connections and background work (WebSockets,
 * Server-Sent Events, background tasks) are told to finish when it shuts down.
 *
 * The root plugin creates one Lifecycle per app and exposes `phase` and `onDrain` on
 * `app.spikard`; the shutdown feature (./index.ts) moves it through its phases. No Fastify
 * runtime import, so anything may use these types cheaply.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Server } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { secondaryServers } from './fastify-internals.js'

/**
 * - `serving`: normal operation.
 * - `draining`: shutdown has begun. Readiness answers 503; during `shutdown.preCloseDelay`
 *   requests are still served, with `Connection: close`, so load balancers move away.
 * - `closing`: no new connections; requests arriving on open ones get a 503 problem; in-flight
 *   requests finish and the drain hooks run, within what is left of the budget.
 * - `closed`: `app.close()` has finished.
 */
export type LifecyclePhase = 'serving' | 'draining' | 'closing' | 'closed'

/** What a drain hook is given. */
export interface DrainContext {
  /** Milliseconds left in the shutdown budget when the hook is called: finish within them. */
  remainingMs: number
  /** Aborted when the budget runs out: stop waiting and release whatever is left at once. */
  signal: AbortSignal
  /**
   * Resolves once the requests in flight have finished (or the budget has run out): wait for
   * it before refusing work that a request may still hand over. Resolved at once when the
   * shutdown feature is off, which does not follow requests.
   */
  requests: Promise<void>
}

/**
 * Finishes one kind of long-lived work at shutdown, e.g. sends every WebSocket a close frame
 * and waits for the peers to answer. Resolve when done; a rejection is logged and the other
 * hooks go on. All hooks start together, once the server has stopped accepting connections.
 */
export type DrainHook = (context: DrainContext) => void | Promise<void>

/** A time budget: `remainingMs()`, and a signal aborted when it runs out (then `onExpire` runs). */
export class Budget {
  readonly #deadline: number
  readonly #controller = new AbortController()
  readonly #timer: NodeJS.Timeout
  readonly #ms: number

  constructor (ms: number, onExpire: () => void = () => {}) {
    this.#ms = ms
    this.#deadline = performance.now() + ms
    this.#timer = setTimeout(() => {
      this.abort()
      onExpire()
    }, ms).unref()
  }

  /**
   * Aborts the signal now, without `onExpire`: for a caller that ends the process at the
   * budget's end itself (the shutdown's signal handler), so the drain hooks still see the
   * end of the budget (and log what they leave unfinished) before it exits.
   */
  abort (): void {
    clearTimeout(this.#timer)
    if (!this.expired) this.#controller.abort(new Error(`shutdown budget of ${this.#ms} ms exceeded`))
  }

  get signal (): AbortSignal { return this.#controller.signal }
  get expired (): boolean { return this.#controller.signal.aborted }
  remainingMs (): number { return Math.max(0, Math.round(this.#deadline - performance.now())) }

  /** Resolves after `ms`, or at once when the budget runs out first. */
  async sleep (ms: number): Promise<void> {
    await this.until(new Promise((resolve) => setTimeout(resolve, ms).unref()))
  }

  /** Resolves when `promise` settles or the budget runs out, whichever comes first. */
  async until (promise: Promise<unknown>): Promise<void> {
    if (this.expired) return
    let onAbort!: () => void
    const aborted = new Promise<void>((resolve) => { onAbort = resolve })
    this.signal.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.race([promise.then(() => {}, () => {}), aborted])
    } finally {
      this.signal.removeEventListener('abort', onAbort)
    }
  }

  clear (): void { clearTimeout(this.#timer) }
}

/** Milliseconds since a performance.now() reading, to the tenth. */
export function since (start: number): number {
  return Math.round((performance.now() - start) * 10) / 10
}

export class Lifecycle {
  #phase: LifecyclePhase = 'serving'
  readonly #hooks = new Map<string, DrainHook>()
  readonly #running = new Set<string>()
  /** The budget of the drain under way, for abortDrain(); undefined once the drain has settled. */
  #budget: Budget | undefined

  get phase (): LifecyclePhase { return this.#phase }
  enter (phase: LifecyclePhase): void { this.#phase = phase }

  /** Registers a drain hook under a unique name (logged, and reported if it overruns). Returns a function that removes it. */
  onDrain (name: string, hook: DrainHook): () => void {
    if (typeof name !== 'string' || name === '') throw new TypeError('onDrain: expected a non-empty name')
    if (typeof hook !== 'function') throw new TypeError(`onDrain("${name}"): expected a function, found ${typeof hook}`)
    if (this.#hooks.has(name)) throw new Error(`onDrain: a drain hook named "${name}" is already registered`)
    if (this.#phase === 'closing' || this.#phase === 'closed') throw new Error(`onDrain("${name}"): the server is already ${this.#phase}`)
    this.#hooks.set(name, hook)
    return () => { if (this.#hooks.get(name) === hook) this.#hooks.delete(name) }
  }

  get drainHookNames (): string[] { return [...this.#hooks.keys()] }
  /** Drain hooks started and not finished yet. */
  get pendingDrainHooks (): string[] { return [...this.#running] }

  /**
   * Aborts the budget of the drain under way, as if it had run out: for a signal handler
   * that ends the process at its own deadline (`spikard start` without the shutdown
   * feature's signals), so the drain hooks still log and stop what they leave unfinished.
   */
  abortDrain (): void { this.#budget?.abort() }

  /**
   * Runs every drain hook at once; resolves when all have settled or the budget runs out.
   * `requests`: see DrainContext. `level`: of the line each finished hook logs (debug for an
   * app that never listened, as `spikard check` closes one).
   */
  async drain (budget: Budget, log: FastifyBaseLogger, requests = Promise.resolve(), level: 'info' | 'debug' = 'info'): Promise<void> {
    this.#budget = budget
    const runs = [...this.#hooks].map(async ([name, hook]) => {
      const start = performance.now()
      this.#running.add(name)
      try {
        await hook({ remainingMs: budget.remainingMs(), signal: budget.signal, requests })
        log[level]({ drainHook: name, durationMs: since(start) }, 'shutdown: drain hook finished')
      } catch (err) {
        log.error({ err, drainHook: name, durationMs: since(start) }, 'shutdown: drain hook failed')
      } finally {
        this.#running.delete(name)
      }
    })
    await budget.until(Promise.all(runs))
    // Settled: a later abortDrain() (spikard start's deadline, the close still waiting for a
    // request; a second signal) must not abort a budget its hooks finished within, which
    // would run the 'abort' listeners a hook left on its signal, as if it had been cut.
    if (this.#budget === budget) this.#budget = undefined
  }
}

/**
 * The budget of a close without the shutdown feature: the shutdown feature's default
 * (`shutdown.timeout`), one number for all three that bound such a close. The drain hooks
 * are told it; `spikard start` exits 1 when the close has not finished that long after the
 * signal; the Fastify factory options (spikardFastifyOptions) raise `pluginTimeout` above it,
 * as for the feature's own budget, or Fastify would cut the drain at its 10 s.
 */
export const DRAIN_BUDGET_MS = 30_000

/** Node publishes each response that has finished here (its `server` and `socket`). */
const RESPONSE_FINISHED = 'http.server.response.finish'

/**
 * What `app.close()` does when the shutdown feature is off: the phase still moves to
 * `closing` then `closed`, and the drain hooks still run in a preClose hook (they are how
 * long-lived connections let the server close), with DRAIN_BUDGET_MS.
 *
 * Node's `server.close()` (Fastify's, after the preClose hooks) closes the keep-alive
 * connections idle at that moment, not those whose request is in flight: answered, each kept
 * the close waiting for its keepAliveTimeout (72 s), past the budget, and `spikard start`
 * exited 1. From the close on, a connection is closed once its response has finished and
 * nothing else is in flight on it (https://github.com/fastify/fastify/issues/7044).
 */
export function closeWithoutShutdown (app: FastifyInstance, lifecycle: Lifecycle, budgetMs = DRAIN_BUDGET_MS): void {
  let servers: Server[] = []
  const closeIdle = (message: unknown): void => {
    // An HTTP/2 server answering HTTP/1 (allowHTTP1) has no closeIdleConnections(): its sessions close with it.
    const { server } = message as { server: Partial<Pick<Server, 'closeIdleConnections'>> }
    if (servers.includes(server as Server)) setImmediate(() => { server.closeIdleConnections?.() })
  }
  app.addHook('preClose', async () => {
    lifecycle.enter('closing')
    servers = [app.server, ...secondaryServers(app)]
    subscribe(RESPONSE_FINISHED, closeIdle)
    const budget = new Budget(budgetMs, () => {
      app.log.error({ timeoutMs: budgetMs, pendingDrainHooks: lifecycle.pendingDrainHooks }, 'shutdown: drain hooks did not finish in time')
    })
    await lifecycle.drain(budget, app.log, undefined, app.server.listening ? 'info' : 'debug')
    budget.clear()
  })
  app.addHook('onClose', (_app, done) => {
    unsubscribe(RESPONSE_FINISHED, closeIdle)
    lifecycle.enter('closed')
    done()
  })
}

const lifecycles = new WeakMap<object, Lifecycle>()

/** Links the `app.spikard` object to its lifecycle, for the features that drive it. */
export function attachLifecycle (state: object, lifecycle: Lifecycle): void {
  lifecycles.set(state, lifecycle)
}

/** The lifecycle behind `app.spikard`; throws when a feature is registered without the root plugin. */
export function lifecycleOf (app: { spikard?: object }): Lifecycle {
  const lifecycle = app.spikard === undefined ? undefined : lifecycles.get(app.spikard)
  if (lifecycle === undefined) throw new Error('spikard features must be registered by the spikard plugin (app.register(spikard, options))')
  return lifecycle
}
