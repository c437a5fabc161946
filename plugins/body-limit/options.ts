import { Type, type Static } from '@sinclair/typebox'
import { Size, optionsResolver, type Defaulted } from '../../src/schema.js'

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
