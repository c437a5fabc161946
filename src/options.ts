/**
 * SpikardOptions: the root plugin's options, composed from each feature's options.ts.
 * Adding a feature means adding one line to `features` (its key, schema and summary);
 * types, validation, defaults and the README tables follow from it.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { validate, type Defaulted } from './schema.js'
import { Feature } from './feature.js'
import { RequestContextOptionsSchema } from '../plugins/request-context/options.js'
import { RequestIdOptionsSchema } from '../plugins/request-id/options.js'
import { LoggingOptionsSchema } from '../plugins/logging/options.js'
import { ShutdownOptionsSchema } from '../plugins/shutdown/options.js'
import { HealthOptionsSchema } from '../plugins/health/options.js'
import { BodyLimitOptionsSchema } from '../plugins/body-limit/options.js'
import { TimeoutOptionsSchema } from '../plugins/timeout/options.js'
import { CompressionOptionsSchema } from '../plugins/compression/options.js'
import { AuthOptionsSchema } from '../plugins/auth/options.js'
import { RateLimitOptionsSchema } from '../plugins/rate-limit/options.js'

/** Every feature, in the order the root plugin registers them. */
export const features = {
  requestContext: { schema: RequestContextOptionsSchema, summary: 'The request id and logger anywhere in the request\'s async context (@fastify/request-context).' },
  requestId: { schema: RequestIdOptionsSchema, summary: 'Request ids: read from the incoming header when well-formed, else a UUID v4; echoed on every response.' },
  logging: { schema: LoggingOptionsSchema, summary: 'One structured JSON access line per completed request, secrets redacted.' },
  shutdown: { schema: ShutdownOptionsSchema, summary: 'Graceful shutdown in phases within one time budget, on signals and on app.close().' },
  health: { schema: HealthOptionsSchema, summary: 'Liveness and readiness routes, public and kept out of the access log.' },
  auth: { schema: AuthOptionsSchema, summary: 'JWT (HS/RS/ES/PS) and API-key authentication, required on every route unless it opts out.' },
  rateLimit: { schema: RateLimitOptionsSchema, summary: 'Rate limiting (@fastify/rate-limit), global and per route, keyed by client, header, cookie or identity; in memory or in Redis.' },
  bodyLimit: { schema: BodyLimitOptionsSchema, summary: 'Request body size limit, on the decoded size of compressed bodies too.' },
  timeout: { schema: TimeoutOptionsSchema, summary: 'Handler timeout, and safe server timeouts for slow headers, slow bodies and idle connections.' },
  compression: { schema: CompressionOptionsSchema, summary: 'Brotli and gzip response compression (@fastify/compress), never for event streams or partial content.' }
} as const satisfies Record<string, { schema: TSchema, summary: string }>

export type FeatureName = keyof typeof features

export const SpikardOptionsSchema = Type.Object({
  requestContext: Type.Optional(Feature({ ...features.requestContext, enabledByDefault: false })),
  requestId: Type.Optional(Feature({ ...features.requestId, enabledByDefault: false })),
  logging: Type.Optional(Feature({ ...features.logging, enabledByDefault: false })),
  shutdown: Type.Optional(Feature({ ...features.shutdown, enabledByDefault: false })),
  health: Type.Optional(Feature({ ...features.health, enabledByDefault: false })),
  auth: Type.Optional(Feature({ ...features.auth, enabledByDefault: false })),
  rateLimit: Type.Optional(Feature({ ...features.rateLimit, enabledByDefault: false })),
  bodyLimit: Type.Optional(Feature({ ...features.bodyLimit, enabledByDefault: false })),
  timeout: Type.Optional(Feature({ ...features.timeout, enabledByDefault: false })),
  compression: Type.Optional(Feature({ ...features.compression, enabledByDefault: false }))
}, { additionalProperties: false })

/** What you pass to `app.register(spikard, options)`. */
export type SpikardOptions = Static<typeof SpikardOptionsSchema>
/** The options after validation: each feature `false` or its fully defaulted options. */
export type ResolvedSpikardOptions = Defaulted<typeof SpikardOptionsSchema>

export function resolveSpikardOptions (options: unknown, source?: string): ResolvedSpikardOptions {
  return validate(SpikardOptionsSchema, options ?? {}, { source }) as ResolvedSpikardOptions
}
