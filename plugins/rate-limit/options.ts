// STUB: the rateLimit options contract is written with the feature
import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, type Defaulted } from '../../src/schema.js'

export const RateLimitOptionsSchema = Type.Object({}, { additionalProperties: false })

export type RateLimitOptions = Static<typeof RateLimitOptionsSchema>
export type ResolvedRateLimitOptions = Defaulted<typeof RateLimitOptionsSchema>
export const resolveRateLimitOptions = optionsResolver(RateLimitOptionsSchema, 'rateLimit')
