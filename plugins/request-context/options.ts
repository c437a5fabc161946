import { Type, type Static } from '@sinclair/typebox'
import type { FastifyBaseLogger } from 'fastify'
import { optionsResolver, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'

// Declared here, with the options the package's entry point re-exports, so the published
// types carry it: `requestContext.get('requestId')` is a string.
declare module '@fastify/request-context' {
  interface RequestContextData {
    /** The request's id, as in the response header and every log line. */
    requestId: string
    /** The request's logger (bound to its id). */
    log: FastifyBaseLogger
  }
}

/** No options: `requestContext: true` switches it on. */
export const RequestContextOptionsSchema = Type.Object({}, { additionalProperties: false })

export type RequestContextOptions = Static<typeof RequestContextOptionsSchema>
export type ResolvedRequestContextOptions = Defaulted<typeof RequestContextOptionsSchema>

export const resolveRequestContextOptions = optionsResolver(RequestContextOptionsSchema, 'requestContext')

export const requestContextFeature = {
  plugin: async () => await import('./index.js'),
  schema: RequestContextOptionsSchema,
  summary: 'The request id and logger anywhere in the request\'s async context (@fastify/request-context). Off by default: on Node 20 its async hooks cost every request.',
  enabledByDefault: false,
  settings: () => ''
} satisfies FeatureDefinition<typeof RequestContextOptionsSchema, ResolvedRequestContextOptions>
