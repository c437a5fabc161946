/**
 * SpikardOptions: the root plugin's options, composed from each feature's options.ts.
 * Adding a feature means adding one line to `features` (its key, schema and summary);
 * types, validation, defaults and the README tables follow from it.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Feature, validate, type Defaulted } from './schema.js'
import { RequestIdOptionsSchema } from '../plugins/request-id/options.js'
import { LoggingOptionsSchema } from '../plugins/logging/options.js'

/** Every feature, in the order the root plugin registers them. */
export const features = {
  requestId: { schema: RequestIdOptionsSchema, summary: 'Request ids: read from the incoming header when well-formed, else a UUID v4; echoed on every response.' },
  logging: { schema: LoggingOptionsSchema, summary: 'One structured JSON access line per completed request, secrets redacted.' }
} as const satisfies Record<string, { schema: TSchema, summary: string }>

export type FeatureName = keyof typeof features

export const SpikardOptionsSchema = Type.Object({
  requestId: Type.Optional(Feature(features.requestId.schema, features.requestId.summary)),
  logging: Type.Optional(Feature(features.logging.schema, features.logging.summary))
}, { additionalProperties: false })

/** What you pass to `app.register(spikard, options)`. */
export type SpikardOptions = Static<typeof SpikardOptionsSchema>
/** The options after validation: each feature `false` or its fully defaulted options. */
export type ResolvedSpikardOptions = Defaulted<typeof SpikardOptionsSchema>

export function resolveSpikardOptions (options: unknown, source?: string): ResolvedSpikardOptions {
  return validate(SpikardOptionsSchema, options ?? {}, { source }) as ResolvedSpikardOptions
}
