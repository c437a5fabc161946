import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, RoutePath, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'

export const HealthOptionsSchema = Type.Object({
  liveness: Type.Optional(RoutePath('/livez', 'Liveness route: 200 while the process runs, during shutdown too. `false` removes it.')),
  readiness: Type.Optional(RoutePath('/readyz', 'Readiness route: 200 while serving, 503 problem from the moment shutdown begins. `false` removes it.'))
}, { additionalProperties: false })

export type HealthOptions = Static<typeof HealthOptionsSchema>
export type ResolvedHealthOptions = Defaulted<typeof HealthOptionsSchema>
export const resolveHealthOptions = optionsResolver(HealthOptionsSchema, 'health')

export const healthFeature = {
  plugin: async () => await import('./index.js'),
  schema: HealthOptionsSchema,
  summary: 'Liveness and readiness routes, public and kept out of the access log.',
  enabledByDefault: true,
  settings: (o) => `liveness=${o.liveness === false ? 'off' : o.liveness} readiness=${o.readiness === false ? 'off' : o.readiness}`,
  openapi: { operation: (route, o) => route.url === o.readiness ? { errors: [{ code: 'SPK_ERR_SHUTTING_DOWN' }] } : undefined }
} satisfies FeatureDefinition<typeof HealthOptionsSchema, ResolvedHealthOptions>
