import { Type, type Static } from '@sinclair/typebox'
import { Size, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatBytes, type FeatureDefinition } from '../../src/feature.js'

export const BodyLimitOptionsSchema = Type.Object({
  max: Type.Optional(Size({
    minimum: 1,
    default: '1mb',
    description: 'Largest request body accepted, after decoding any `Content-Encoding`. A route overrides it with Fastify\'s `bodyLimit` route option.'
  })),
  decode: Type.Optional(Type.Boolean({
    default: true,
    description: 'Decode `gzip`, `deflate` and `br` request bodies (the limit applies to the decoded size); `false` answers 415 to any encoded body.'
  }))
}, { additionalProperties: false })

export type BodyLimitOptions = Static<typeof BodyLimitOptionsSchema>
export type ResolvedBodyLimitOptions = Defaulted<typeof BodyLimitOptionsSchema>
export const resolveBodyLimitOptions = optionsResolver(BodyLimitOptionsSchema, 'bodyLimit')

export const bodyLimitFeature = {
  schema: BodyLimitOptionsSchema,
  summary: 'Request body size limit, on the decoded size of compressed bodies too.',
  enabledByDefault: true,
  shorthand: 'max',
  // Fastify's own limit, for every route and its parsers (404s included).
  factory: (o) => ({ bodyLimit: o.max }),
  settings: (o) => `max=${formatBytes(o.max)} decode=${o.decode ? 'on' : 'off'}`,
  columns: [{ title: 'BODY LIMIT', value: (route, o) => o === false ? 'off' : formatBytes(route.bodyLimit ?? o.max) }]
} satisfies FeatureDefinition<typeof BodyLimitOptionsSchema, ResolvedBodyLimitOptions>
