import { Type, type Static } from '@sinclair/typebox'
import { HttpToken, optionsResolver, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'

export const RequestIdOptionsSchema = Type.Object({
  header: Type.Optional(HttpToken('a header name', {
    default: 'x-request-id',
    description: 'Header the id is read from (when well-formed) and echoed on every response. Not a header that carries secrets (the API key\'s, `Authorization`, `Cookie`, one in `logging.redactHeaders` or named like a secret, such as `x-auth-token`): that is refused at startup.'
  })),
  trustIncoming: Type.Optional(Type.Boolean({
    default: true,
    description: 'Reuse a well-formed incoming id (at most 128 characters of `[A-Za-z0-9._:-]`); `false` always generates one (a UUID v4, or your Fastify `genReqId`\'s).'
  }))
}, { additionalProperties: false })

export type RequestIdOptions = Static<typeof RequestIdOptionsSchema>
export type ResolvedRequestIdOptions = Defaulted<typeof RequestIdOptionsSchema>

export const resolveRequestIdOptions = optionsResolver(RequestIdOptionsSchema, 'requestId')

export const requestIdFeature = {
  plugin: async () => await import('./index.js'),
  schema: RequestIdOptionsSchema,
  summary: 'Request ids: read from the incoming header when well-formed, else a UUID v4 (or your Fastify genReqId\'s); echoed on every response.',
  enabledByDefault: true,
  settings: (o) => `header=${o.header}${o.trustIncoming ? '' : ' trustIncoming=false'}`,
  openapi: {
    operation: (_route, o) => ({
      headers: { [o.header]: { description: `The request's id${o.trustIncoming ? ' (the one the client sent, when well-formed)' : ''}; also in the access line and in every problem's \`requestId\`.`, schema: { type: 'string' } } }
    })
  }
} satisfies FeatureDefinition<typeof RequestIdOptionsSchema, ResolvedRequestIdOptions>
