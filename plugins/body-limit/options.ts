import { Type, type Static } from '@sinclair/typebox'
import { Size, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatBytes, type FeatureDefinition } from '../../src/feature.js'
import type { RouteOptions } from 'fastify'

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
  plugin: async () => await import('./index.js'),
  schema: BodyLimitOptionsSchema,
  summary: 'Request body size limit, on the decoded size of compressed bodies too.',
  enabledByDefault: true,
  shorthand: 'max',
  // Fastify's own limit, for every route and its parsers (404s included).
  factory: (o) => ({ bodyLimit: o.max }),
  settings: (o) => `max=${formatBytes(o.max)} decode=${o.decode ? 'on' : 'off'}`,
  columns: [{ title: 'BODY LIMIT', value: (route, o) => o === false ? 'off' : formatBytes(route.bodyLimit ?? o.max) }],
  openapi: {
    operation: (route, o) => {
      if (!takesBody(route)) return undefined
      const limit = formatBytes(route.bodyLimit ?? o.max)
      return {
        errors: [
          { code: 'SPK_ERR_BODY_TOO_LARGE', note: `limit ${limit}${o.decode ? ', after decoding' : ''}` },
          ...(o.decode ? [] : [{ code: 'SPK_ERR_UNSUPPORTED_ENCODING' as const, note: 'bodies with a Content-Encoding are refused' }])
        ],
        notes: [`Request body limit: ${limit}${o.decode ? ' (gzip, deflate and br bodies are decoded; the limit applies to the decoded size)' : ''}.`]
      }
    }
  }
} satisfies FeatureDefinition<typeof BodyLimitOptionsSchema, ResolvedBodyLimitOptions>

/** A route that reads a request body: it declares one, or its method carries one. */
export function takesBody (route: Pick<RouteOptions, 'method' | 'schema'>): boolean {
  return route.schema?.body !== undefined || [route.method].flat().some((m) => m === 'POST' || m === 'PUT' || m === 'PATCH')
}
