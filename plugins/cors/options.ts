import { Type, type Static } from '@sinclair/typebox'
import { HttpToken, optionsResolver, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'

/** An origin as a browser sends it: scheme, host and optional port; no path, no trailing slash. */
const Origin = Type.String({
  pattern: '^https?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$',
  expected: 'an origin such as https://app.example.com (scheme, host and port; no path)'
})

export const CorsOptionsSchema = Type.Object({
  origin: Type.Optional(Type.Union([Type.Literal('*'), Origin, Type.Array(Origin, { minItems: 1 })], {
    default: '*',
    expected: '"*", an origin such as https://app.example.com, or a list of origins',
    description: 'The origins whose pages may read the responses: a list (each request\'s `Origin` is echoed when it is one of them, with `Vary: Origin`), or `*` for any page (never with `credentials`).'
  })),
  credentials: Type.Optional(Type.Boolean({
    default: false,
    description: '`Access-Control-Allow-Credentials: true`: the listed origins\' pages may send cookies and read the responses to them. Needs a list of origins, and no `*` in the methods and headers (browsers take it literally then).'
  })),
  methods: Type.Optional(Type.Array(HttpToken('an HTTP method'), {
    expected: 'a list of HTTP methods',
    default: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
    description: 'The methods a preflight allows (`Access-Control-Allow-Methods`), in upper case as browsers send them.'
  })),
  allowedHeaders: Type.Optional(Type.Array(HttpToken('a header name'), {
    expected: 'a list of header names',
    description: 'The request headers a preflight allows (`Access-Control-Allow-Headers`). Absent: the headers the preflight asks for (with `Vary: Access-Control-Request-Headers`).'
  })),
  exposedHeaders: Type.Optional(Type.Array(HttpToken('a header name'), {
    expected: 'a list of header names',
    default: [],
    description: 'Response headers the pages may read, besides those spikard sets (the request id, `Retry-After`, the rate limit headers and `WWW-Authenticate` of the features that are on).'
  })),
  maxAge: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 86400,
    default: 600,
    description: 'Seconds a browser may keep a preflight\'s answer (`Access-Control-Max-Age`; browsers cap it, Chromium at 2 hours).'
  }))
}, { additionalProperties: false })

export type CorsOptions = Static<typeof CorsOptionsSchema>
export type ResolvedCorsOptions = Defaulted<typeof CorsOptionsSchema>
export const resolveCorsOptions = optionsResolver(CorsOptionsSchema, 'cors')

export const corsFeature = {
  plugin: async () => await import('./index.js'),
  schema: CorsOptionsSchema,
  summary: 'Cross-origin requests: preflights answered before auth and rate limiting, and every response, problems included, readable by the allowed origins\' pages. Off until configured.',
  enabledByDefault: false,
  shorthand: 'origin',
  settings: (o) => `origin=${[o.origin].flat().join(',')}${o.credentials ? ' credentials=on' : ''} maxAge=${o.maxAge}s`
} satisfies FeatureDefinition<typeof CorsOptionsSchema, ResolvedCorsOptions>
