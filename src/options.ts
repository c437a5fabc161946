/**
 * SpikardOptions: the root plugin's options, composed from each feature's definition (its
 * options.ts). Adding a feature means adding its definition to `features`; types,
 * validation, defaults, the startup line, `spikard check` and the README tables follow.
 */
import { Type, type Static } from '@sinclair/typebox'
import { validate, type Defaulted } from './schema.js'
import { Feature } from './feature.js'
import { requestContextFeature } from '../plugins/request-context/options.js'
import { requestIdFeature } from '../plugins/request-id/options.js'
import { loggingFeature } from '../plugins/logging/options.js'
import { shutdownFeature } from '../plugins/shutdown/options.js'
import { healthFeature } from '../plugins/health/options.js'
import { timeoutFeature } from '../plugins/timeout/options.js'
import { rateLimitFeature } from '../plugins/rate-limit/options.js'
import { authFeature } from '../plugins/auth/options.js'
import { bodyLimitFeature } from '../plugins/body-limit/options.js'
import { compressionFeature } from '../plugins/compression/options.js'

/** Every feature, in the order the root plugin registers them (and their hooks run). */
export const features = {
  requestContext: requestContextFeature,
  requestId: requestIdFeature,
  logging: loggingFeature,
  shutdown: shutdownFeature,
  health: healthFeature,
  timeout: timeoutFeature,
  rateLimit: rateLimitFeature,
  auth: authFeature,
  bodyLimit: bodyLimitFeature,
  compression: compressionFeature
} as const

export type FeatureName = keyof typeof features

export const SpikardOptionsSchema = Type.Object({
  requestContext: Type.Optional(Feature(features.requestContext)),
  requestId: Type.Optional(Feature(features.requestId)),
  logging: Type.Optional(Feature(features.logging)),
  shutdown: Type.Optional(Feature(features.shutdown)),
  health: Type.Optional(Feature(features.health)),
  timeout: Type.Optional(Feature(features.timeout)),
  rateLimit: Type.Optional(Feature(features.rateLimit)),
  auth: Type.Optional(Feature(features.auth)),
  bodyLimit: Type.Optional(Feature(features.bodyLimit)),
  compression: Type.Optional(Feature(features.compression))
}, { additionalProperties: false })

/** What you pass to `app.register(spikard, options)`. */
export type SpikardOptions = Static<typeof SpikardOptionsSchema>
/** The options after validation: each feature `false` or its fully defaulted options. */
export type ResolvedSpikardOptions = Defaulted<typeof SpikardOptionsSchema>

export function resolveSpikardOptions (options: unknown, source?: string): ResolvedSpikardOptions {
  return validate(SpikardOptionsSchema, options ?? {}, { source }) as ResolvedSpikardOptions
}
