import { Type, type Static } from '@sinclair/typebox'
import { Duration, MAX_TIMER_MS, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition } from '../../src/feature.js'
import { DRAIN_BUDGET_MS } from '../../src/lifecycle.js'

export const ShutdownOptionsSchema = Type.Object({
  // Not 0: a budget spent before the shutdown begins cut every request and exited 1 on every signal.
  timeout: Type.Optional(Duration({
    minimum: 1,
    default: '30s',
    description: 'Budget for the whole shutdown. A request whose body is still arriving when 90 % of it is spent (a slow upload; `timeout.request` may be longer) is answered with a 503 problem, so it cannot overrun the budget. When the budget runs out, what is still pending is logged and the process exits 1.'
  })),
  preCloseDelay: Type.Optional(Duration({
    default: 0,
    description: 'Once shutdown begins (a signal or `app.close()`), keep serving for this long so load balancers can deregister the instance: readiness answers 503 and every response closes its connection (`Connection: close`). Then new requests get a 503 problem; the listener closes once no connection has arrived for 100 ms, and each open connection gets 500 ms (a tenth of `timeout` if shorter) to send a request before it is closed.'
  })),
  signals: Type.Optional(Type.Boolean({
    default: true,
    description: 'Shut down gracefully on SIGTERM and SIGINT and after an uncaught exception or unhandled rejection, then exit. `false` leaves signals to you; `app.close()` still drains.'
  }))
}, { additionalProperties: false })

export type ShutdownOptions = Static<typeof ShutdownOptionsSchema>
export type ResolvedShutdownOptions = Defaulted<typeof ShutdownOptionsSchema>
export const resolveShutdownOptions = optionsResolver(ShutdownOptionsSchema, 'shutdown')
export const defaultShutdownOptions = resolveShutdownOptions()

/** Fastify's default `pluginTimeout`. */
const FASTIFY_PLUGIN_TIMEOUT = 10_000

/**
 * Fastify gives each close hook `pluginTimeout` (10 s by default), then fails app.close()
 * with "Plugin did not start in time", cutting the drain (a preClose hook) short of its
 * budget: a little more than the budget, never less than Fastify's default.
 * The budget is at most MAX_TIMER_MS (the schema); the pluginTimeout derived from it may not exceed it either.
 */
function closeTimeout (budgetMs: number): { pluginTimeout: number } {
  return { pluginTimeout: Math.min(MAX_TIMER_MS, Math.max(FASTIFY_PLUGIN_TIMEOUT, budgetMs + 5000)) }
}

export const shutdownFeature = {
  plugin: async () => await import('./index.js'),
  factory: (o) => closeTimeout(o.timeout),
  // Off, app.close() still runs the drain hooks, with DRAIN_BUDGET_MS (src/lifecycle.ts).
  factoryWhenOff: () => closeTimeout(DRAIN_BUDGET_MS),
  schema: ShutdownOptionsSchema,
  summary: 'Graceful shutdown in phases within one time budget, on signals and on app.close().',
  enabledByDefault: true,
  shorthand: 'timeout',
  settings: (o) => `timeout=${formatDuration(o.timeout)}${o.preCloseDelay > 0 ? ` preCloseDelay=${formatDuration(o.preCloseDelay)}` : ''} signals=${o.signals ? 'on' : 'off'}`,
  // Routes with `config.shutdown: false` are still served while draining (liveness).
  openapi: { operation: (route) => (route.config as { shutdown?: unknown } | undefined)?.shutdown === false ? undefined : { errors: [{ code: 'SPK_ERR_SHUTTING_DOWN' }] } }
} satisfies FeatureDefinition<typeof ShutdownOptionsSchema, ResolvedShutdownOptions>
