import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, type Defaulted } from '../../src/schema.js'

const Path = (path: string, description: string) => Type.Union([Type.String({ pattern: '^/' }), Type.Literal(false)], {
  default: path,
  expected: 'a path starting with "/", or false',
  description
})

export const HealthOptionsSchema = Type.Object({
  liveness: Type.Optional(Path('/livez', 'Liveness route: 200 while the process runs, during shutdown too. `false` removes it.')),
  readiness: Type.Optional(Path('/readyz', 'Readiness route: 200 while serving, 503 problem from the moment shutdown begins. `false` removes it.'))
}, { additionalProperties: false })

export type HealthOptions = Static<typeof HealthOptionsSchema>
export type ResolvedHealthOptions = Defaulted<typeof HealthOptionsSchema>
export const resolveHealthOptions = optionsResolver(HealthOptionsSchema, 'health')
