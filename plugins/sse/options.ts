import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition } from '../../src/feature.js'

export const SseOptionsSchema = Type.Object({
  keepAlive: Type.Optional(Duration({
    default: '15s',
    minimum: 1000,
    minimumText: '1s',
    description: 'A comment line is sent on every open event stream this often, so proxies keep it open and a client that went away is noticed.'
  })),
  maxConnections: Type.Optional(Type.Integer({
    minimum: 1,
    default: 10_000,
    description: 'Open event streams per process; past it, a 503 problem.'
  })),
  shutdownEvent: Type.Optional(Type.Union([
    Type.Object({
      event: Type.Optional(Type.String({ minLength: 1, default: 'shutdown', description: 'The event\'s name.' })),
      data: Type.Optional(Type.String({ default: 'server shutting down', description: 'The event\'s data.' })),
      retry: Type.Optional(Duration({ default: '1s', description: 'The `retry` field: how soon a browser\'s EventSource reconnects (to another instance).' }))
    }, { additionalProperties: false }),
    Type.Literal(false)
  ], {
    default: {},
    expected: '{ event, data, retry } or false',
    description: 'The last event each open stream gets at shutdown before it is closed, within the drain budget; `false` closes without one.'
  }))
}, { additionalProperties: false })

export type SseOptions = Static<typeof SseOptionsSchema>
export type ResolvedSseOptions = Defaulted<typeof SseOptionsSchema>
export const resolveSseOptions = optionsResolver(SseOptionsSchema, 'sse')

export const sseFeature = {
  schema: SseOptionsSchema,
  summary: 'Server-Sent Events (@fastify/sse) on routes with `sse: true`: keep-alive comments, never compressed, a final event at shutdown.',
  enabledByDefault: true,
  settings: (o) => `keepAlive=${formatDuration(o.keepAlive)} maxConnections=${o.maxConnections}`
} satisfies FeatureDefinition<typeof SseOptionsSchema, ResolvedSseOptions>
