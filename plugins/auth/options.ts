// STUB: the auth options contract is written with the feature
import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, type Defaulted } from '../../src/schema.js'

export const AuthOptionsSchema = Type.Object({}, { additionalProperties: false })

export type AuthOptions = Static<typeof AuthOptionsSchema>
export type ResolvedAuthOptions = Defaulted<typeof AuthOptionsSchema>
export const resolveAuthOptions = optionsResolver(AuthOptionsSchema, 'auth')
