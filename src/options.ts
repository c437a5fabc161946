/**
 * SpikardOptions: the root plugin's options, composed from each feature's definition (its
 * options.ts). Adding a feature means adding its definition to `features`; types,
 * validation, defaults, the startup line, `spikard check` and the README tables follow.
 */
import { Type, type Static } from '@sinclair/typebox'
import { validate, type Defaulted } from './schema.js'
import { Feature } from './feature.js'
import { SpikardConfigError } from './errors.js'
import { secretName, secretNames } from './redact.js'
import { requestContextFeature } from '../plugins/request-context/options.js'
import { requestIdFeature } from '../plugins/request-id/options.js'
import { loggingFeature } from '../plugins/logging/options.js'
import { corsFeature } from '../plugins/cors/options.js'
import { shutdownFeature } from '../plugins/shutdown/options.js'
import { tasksFeature } from '../plugins/tasks/options.js'
import { healthFeature } from '../plugins/health/options.js'
import { timeoutFeature } from '../plugins/timeout/options.js'
import { rateLimitFeature } from '../plugins/rate-limit/options.js'
import { authFeature } from '../plugins/auth/options.js'
import { bodyLimitFeature } from '../plugins/body-limit/options.js'
import { compressionFeature } from '../plugins/compression/options.js'
import { openapiFeature } from '../plugins/openapi/options.js'
import { asyncapiFeature } from '../plugins/asyncapi/options.js'
import { streamFeature } from '../plugins/stream/options.js'
import { sseFeature } from '../plugins/sse/options.js'
import { websocketFeature } from '../plugins/websocket/options.js'
import { staticFeature } from '../plugins/static/options.js'

/** Every feature, in the order the root plugin registers them (and their hooks run). */
export const features = {
  openapi: openapiFeature,
  asyncapi: asyncapiFeature,
  requestContext: requestContextFeature,
  requestId: requestIdFeature,
  logging: loggingFeature,
  cors: corsFeature,
  shutdown: shutdownFeature,
  tasks: tasksFeature,
  health: healthFeature,
  timeout: timeoutFeature,
  rateLimit: rateLimitFeature,
  auth: authFeature,
  bodyLimit: bodyLimitFeature,
  stream: streamFeature,
  sse: sseFeature,
  websocket: websocketFeature,
  static: staticFeature,
  compression: compressionFeature
} as const

export type FeatureName = keyof typeof features

export const SpikardOptionsSchema = Type.Object({
  openapi: Type.Optional(Feature(features.openapi)),
  asyncapi: Type.Optional(Feature(features.asyncapi)),
  requestContext: Type.Optional(Feature(features.requestContext)),
  requestId: Type.Optional(Feature(features.requestId)),
  logging: Type.Optional(Feature(features.logging)),
  cors: Type.Optional(Feature(features.cors)),
  shutdown: Type.Optional(Feature(features.shutdown)),
  tasks: Type.Optional(Feature(features.tasks)),
  health: Type.Optional(Feature(features.health)),
  timeout: Type.Optional(Feature(features.timeout)),
  rateLimit: Type.Optional(Feature(features.rateLimit)),
  auth: Type.Optional(Feature(features.auth)),
  bodyLimit: Type.Optional(Feature(features.bodyLimit)),
  stream: Type.Optional(Feature(features.stream)),
  sse: Type.Optional(Feature(features.sse)),
  websocket: Type.Optional(Feature(features.websocket)),
  static: Type.Optional(Feature(features.static)),
  compression: Type.Optional(Feature(features.compression))
}, { additionalProperties: false })

/** What you pass to `app.register(spikard, options)`. */
export type SpikardOptions = Static<typeof SpikardOptionsSchema>
/** The options after validation: each feature `false` or its fully defaulted options. */
export type ResolvedSpikardOptions = Defaulted<typeof SpikardOptionsSchema>

export function resolveSpikardOptions (options: unknown, source?: string): ResolvedSpikardOptions {
  return checkAcrossFeatures(offInProduction(options, validate(SpikardOptionsSchema, options ?? {}, { source }) as ResolvedSpikardOptions), source)
}

/**
 * What no one feature's schema can see, refused naming both options:
 *
 * - Two of spikard's own routes at one path (`openapi.json: /livez` beside the liveness
 *   probe). Fastify would refuse the second route with its duplicate-route error, which
 *   names neither (and the probe would blame a route of yours).
 * - The request id read from the API key's header: a client's key would become its request
 *   id, sent back on every response and written, unmasked, in every log line and problem body.
 */
export function checkAcrossFeatures<T extends Partial<Record<FeatureName, unknown>>> (resolved: T, source?: string): T {
  const owners = new Map<string, string>()
  const problems: string[] = []
  for (const [name, feature] of Object.entries(features)) {
    const options = resolved[name as FeatureName]
    if (options === undefined || options === false) continue
    for (const [key, schema] of Object.entries(feature.schema.properties)) {
      const path = (options as Record<string, unknown>)[key]
      if ((schema as { route?: unknown }).route !== true || typeof path !== 'string') continue
      const owner = owners.get(path)
      if (owner === undefined) owners.set(path, `${name}.${key}`)
      else problems.push(`${name}.${key}: ${path} is ${owner} already; give each its own path`)
    }
  }
  // A static mount answers at its prefix with and without the slash (`/docs`, `/docs/`): one at
  // a path of the others is theirs twice (otherwise that feature's own check would blame a
  // route "of yours" for it, naming its option instead of the mount's).
  const served = resolved.static as { mounts?: Array<{ prefix?: string }> } | false | undefined
  const mounts = served === undefined || served === false ? [] : served.mounts ?? []
  mounts.forEach(({ prefix }, i) => {
    const path = prefix?.replace(/\/$/, '')
    const owner = path === undefined || path === '' ? undefined : owners.get(path) ?? owners.get(`${path}/`)
    if (owner !== undefined) problems.push(`static.mounts[${i}].prefix: ${prefix as string} is ${owner} already; give each its own path`)
  })
  const requestId = resolved.requestId as { header?: string } | false | undefined
  const auth = resolved.auth as { apiKey?: { header?: string } } | false | undefined
  const idHeader = requestId === false ? undefined : requestId?.header
  const keyHeader = auth === false ? undefined : auth?.apiKey?.header
  if (idHeader !== undefined && keyHeader !== undefined && idHeader.toLowerCase() === keyHeader.toLowerCase()) {
    problems.push(`requestId.header: ${idHeader} is auth.apiKey.header too: a client's API key would become its request id, sent back on every response and logged unmasked; give each its own header`)
  } else if (idHeader !== undefined && (secretNames(resolved).headers.has(idHeader.toLowerCase()) || secretName(idHeader.toLowerCase()))) {
    // The same for any header the logs mask (Authorization, Cookie, logging.redactHeaders, a name like x-auth-token).
    problems.push(`requestId.header: ${idHeader} carries secrets (the logs mask it): its value would become the request id, sent back on every response and logged unmasked; choose another header`)
  }
  if (problems.length > 0) throw new SpikardConfigError(problems, source)
  return resolved
}

/** With NODE_ENV=production, the features that are `offInProduction` and absent from `given` turn off. */
export function offInProduction<T extends Partial<Record<FeatureName, unknown>>> (given: unknown, resolved: T): T {
  if (process.env.NODE_ENV !== 'production') return resolved
  for (const [name, feature] of Object.entries(features)) {
    if ('offInProduction' in feature && (given as Record<string, unknown> | undefined)?.[name] === undefined) (resolved as Record<string, unknown>)[name] = false
  }
  return resolved
}
