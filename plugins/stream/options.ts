import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition } from '../../src/feature.js'

export const StreamOptionsSchema = Type.Object({
  idleTimeout: Type.Optional(Duration({
    default: 0,
    description: 'Cut a streamed response that has sent nothing for this long (no terminating chunk, a log line with the request id). `0` turns it off.'
  }))
}, { additionalProperties: false })

export type StreamOptions = Static<typeof StreamOptionsSchema>
export type ResolvedStreamOptions = Defaulted<typeof StreamOptionsSchema>
export const resolveStreamOptions = optionsResolver(StreamOptionsSchema, 'stream')

export const streamFeature = {
  plugin: async () => await import('./index.js'),
  schema: StreamOptionsSchema,
  summary: 'Streamed responses (Node streams, async iterables, web streams, ndjson()) with backpressure, cleanup when the client goes away, and truncation a client can see.',
  enabledByDefault: true,
  shorthand: 'idleTimeout',
  settings: (o) => o.idleTimeout > 0 ? `idleTimeout=${formatDuration(o.idleTimeout)}` : ''
} satisfies FeatureDefinition<typeof StreamOptionsSchema, ResolvedStreamOptions>
