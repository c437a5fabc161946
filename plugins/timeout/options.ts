import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition } from '../../src/feature.js'
import { timeoutFactoryOptions } from './server-timeouts.js'

export const TimeoutOptionsSchema = Type.Object({
  handler: Type.Optional(Duration({
    default: '30s',
    description: 'Time a request may take from arrival to the start of its response; a route overrides it with Fastify\'s `handlerTimeout` route option. `0` turns it off.'
  })),
  status: Type.Optional(Type.Union([Type.Literal(408), Type.Literal(503), Type.Literal(504)], {
    default: 503,
    description: 'Status of the problem sent when the handler timeout fires: 503 (as Fastify\'s own handler timeout), 504, or 408, which browsers take for "resend": Chromium sends a request answered 408 on a reused connection again, so a slow POST handler runs twice or more.'
  })),
  headers: Type.Optional(Duration({
    default: '10s',
    description: 'Time a client has to send the request headers (Node\'s `headersTimeout`); a slow client gets 408.'
  })),
  request: Type.Optional(Duration({
    default: '60s',
    description: 'Time a client has to send the whole request, body included (Node\'s `requestTimeout`); a slow client gets 408. During a shutdown a body still arriving at 90 % of `shutdown.timeout` is cut sooner, with a 503 problem.'
  })),
  // Not 0: for Node that means no idle timeout at all, every idle connection kept for ever.
  keepAlive: Type.Optional(Duration({
    minimum: 1,
    default: '72s',
    description: 'How long an idle keep-alive connection stays open (Node\'s `keepAliveTimeout`). Keep it above your load balancer\'s idle timeout.'
  }))
}, { additionalProperties: false })

export type TimeoutOptions = Static<typeof TimeoutOptionsSchema>
export type ResolvedTimeoutOptions = Defaulted<typeof TimeoutOptionsSchema>
export const resolveTimeoutOptions = optionsResolver(TimeoutOptionsSchema, 'timeout')

/** Where a route's own `handlerTimeout` is kept once the plugin has taken the route off Fastify's timer. */
export const kOwnTimeout = Symbol('spikard.timeout.own')

/** A route's handler timeout in ms (0: none): its own `handlerTimeout`, else `timeout.handler`. */
export function routeTimeout (route: { handlerTimeout?: number, config?: unknown }, options: Pick<ResolvedTimeoutOptions, 'handler'>): number {
  const own = (route.config as Record<symbol, number | undefined> | undefined)?.[kOwnTimeout]
  return own ?? route.handlerTimeout ?? options.handler
}

export const timeoutFeature = {
  plugin: async () => await import('./index.js'),
  schema: TimeoutOptionsSchema,
  summary: 'Handler timeout, and safe server timeouts for slow headers, slow bodies and idle connections.',
  enabledByDefault: true,
  shorthand: 'handler',
  factory: (o) => timeoutFactoryOptions(o),
  settings: (o) => `handler=${formatDuration(o.handler)} headers=${formatDuration(o.headers)} request=${formatDuration(o.request)} keepAlive=${formatDuration(o.keepAlive)}`,
  columns: [{
    title: 'TIMEOUT',
    value: (route, o) => {
      const ms = o === false ? route.handlerTimeout ?? 0 : routeTimeout(route, o)
      return ms > 0 ? formatDuration(ms) : 'off'
    }
  }],
  openapi: {
    operation: (route, o) => {
      const ms = routeTimeout(route, o)
      if (ms === 0) return undefined
      return { errors: [{ code: 'SPK_ERR_HANDLER_TIMEOUT', status: o.status, note: `after ${formatDuration(ms)}` }], notes: [`Handler timeout: ${formatDuration(ms)}.`] }
    }
  }
} satisfies FeatureDefinition<typeof TimeoutOptionsSchema, ResolvedTimeoutOptions>
