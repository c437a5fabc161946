import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, Size, type Defaulted } from '../../src/schema.js'
import { formatBytes, formatDuration, type FeatureDefinition, type OperationDoc } from '../../src/feature.js'
import { sseRoute } from './events.js'

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
  maxBuffered: Type.Optional(Size({
    default: '4mb',
    minimum: 1,
    description: 'The most a stream may hold unsent when an event is sent to it: a client that does not read past it has its stream closed (and logged at warn), so memory stays bounded.'
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
    description: 'The last event each open stream gets at shutdown before it is closed, within the drain budget: `event` (default `shutdown`), `data` (`server shutting down`) and `retry` (`1s`, when a browser\'s EventSource reconnects); `false` closes without one.'
  }))
}, { additionalProperties: false })

export type SseOptions = Static<typeof SseOptionsSchema>
export type ResolvedSseOptions = Defaulted<typeof SseOptionsSchema>
export const resolveSseOptions = optionsResolver(SseOptionsSchema, 'sse')

export const sseFeature = {
  plugin: async () => await import('./index.js'),
  schema: SseOptionsSchema,
  summary: 'Server-Sent Events (@fastify/sse) on routes with `sse: true`: keep-alive comments, never compressed, a final event at shutdown.',
  enabledByDefault: true,
  settings: (o) => `keepAlive=${formatDuration(o.keepAlive)} maxConnections=${o.maxConnections} maxBuffered=${formatBytes(o.maxBuffered)}`,
  // The response's media type (text/event-stream) is written by plugins/openapi/document.ts:
  // an OperationDoc has no field for a success response's content.
  openapi: { operation: (route, o) => sseRoute(route as { sse?: unknown, schema?: unknown }) === undefined ? undefined : sseOperation(o) }
} satisfies FeatureDefinition<typeof SseOptionsSchema, ResolvedSseOptions>

function sseOperation (o: ResolvedSseOptions): OperationDoc {
  const shutdown = o.shutdownEvent === false
    ? 'at shutdown the stream is closed'
    : `at shutdown a final \`${o.shutdownEvent.event}\` event (retry ${formatDuration(o.shutdownEvent.retry)}) ends it`
  return {
    errors: [{ code: 'SPK_ERR_SSE_TOO_MANY_STREAMS', note: `${o.maxConnections} open streams per process` }],
    notes: [`Server-Sent Events (text/event-stream): a comment line every ${formatDuration(o.keepAlive)}; ${shutdown}.`]
  }
}
