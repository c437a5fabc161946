import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, type Defaulted } from '../../src/schema.js'

/** No options: `requestContext: true` switches it on. */
export const RequestContextOptionsSchema = Type.Object({}, { additionalProperties: false })

export type RequestContextOptions = Static<typeof RequestContextOptionsSchema>
export type ResolvedRequestContextOptions = Defaulted<typeof RequestContextOptionsSchema>

export const resolveRequestContextOptions = optionsResolver(RequestContextOptionsSchema, 'requestContext')
