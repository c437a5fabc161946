import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, RoutePath, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'
import { nearestPackageJson } from '../../src/package-json.js'

// What the documents' schemas require of the URL fields of info and externalDocs: a value
// they refuse made the served document invalid. AsyncAPI 3.0 takes an absolute URL only;
// OpenAPI 3.1 a URI reference, so a path on the API's own server (/terms) too.
export const AbsoluteUrl = Type.String({ pattern: '^[A-Za-z][A-Za-z0-9+.-]*:[^\\s]+$', expected: 'an absolute URL (https://...)' })
const UrlReference = Type.String({ pattern: '^([A-Za-z][A-Za-z0-9+.-]*:|/)[^\\s]*$', expected: 'an absolute URL (https://...) or a path (/terms)' })
// @fastify/swagger resolves `{variables}` from `variables`, which these options do not take:
// such a URL failed the app's start with a message that named no option.
const ServerUrl = Type.String({ pattern: '^[^\\s{}]+$', expected: 'a URL, absolute or relative (/v1), without spaces or {variables}' })

/** The documents' `info`, with the URLs `url` accepts. */
export const Info = (url: typeof AbsoluteUrl) => Type.Optional(Type.Object({
  title: Type.Optional(Type.String({ minLength: 1, description: 'Default: `name` of the app\'s package.json (the one nearest the config file, else the working directory).' })),
  version: Type.Optional(Type.String({ minLength: 1, description: 'Default: `version` of that package.json.' })),
  description: Type.Optional(Type.String()),
  termsOfService: Type.Optional(url),
  contact: Type.Optional(Type.Object({ name: Type.Optional(Type.String()), url: Type.Optional(url), email: Type.Optional(Type.String({ pattern: '^[^\\s@]+@[^\\s@]+$', expected: 'an email address' })) }, { additionalProperties: false })),
  license: Type.Optional(Type.Object({ name: Type.String({ minLength: 1 }), identifier: Type.Optional(Type.String()), url: Type.Optional(url) }, { additionalProperties: false }))
}, { additionalProperties: false, default: {}, description: 'The document\'s `info`: title, version, description, contact, license.' }))

/** A link to more documentation, with the URLs `url` accepts. */
export const ExternalDocs = (url: typeof AbsoluteUrl) => Type.Optional(Type.Object({
  url,
  description: Type.Optional(Type.String())
}, { additionalProperties: false, description: 'A link to more documentation.' }))

/** A component name: what OpenAPI 3.1 allows as a key of `components.securitySchemes`. */
const SCHEME_NAME = '^[A-Za-z0-9._-]+$'
const SchemeName = { expectedKey: 'a scheme name (letters, digits, ".", "-" and "_")' }
const text = Type.Optional(Type.String())
/** OAuth 2 scopes: each name with what it grants. */
const Scopes = Type.Record(Type.String(), Type.String(), { description: 'Each scope with what it grants.' })
const flow = <T extends Record<string, typeof UrlReference>>(urls: T) => Type.Optional(Type.Object({ ...urls, refreshUrl: Type.Optional(UrlReference), scopes: Scopes }, { additionalProperties: false }))

/** An OpenAPI 3.1 Security Scheme Object, one per `type`. */
const SecurityScheme = Type.Union([
  Type.Object({ type: Type.Literal('apiKey'), name: Type.String({ minLength: 1 }), in: Type.Union([Type.Literal('header'), Type.Literal('query'), Type.Literal('cookie')]), description: text }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('http'), scheme: Type.String({ minLength: 1 }), bearerFormat: text, description: text }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('mutualTLS'), description: text }, { additionalProperties: false }),
  Type.Object({
    type: Type.Literal('oauth2'),
    flows: Type.Object({
      implicit: flow({ authorizationUrl: UrlReference }),
      password: flow({ tokenUrl: UrlReference }),
      clientCredentials: flow({ tokenUrl: UrlReference }),
      authorizationCode: flow({ authorizationUrl: UrlReference, tokenUrl: UrlReference })
    }, { additionalProperties: false }),
    description: text
  }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('openIdConnect'), openIdConnectUrl: UrlReference, description: text }, { additionalProperties: false })
], { expected: 'a security scheme: { type: apiKey, name, in }, { type: http, scheme }, { type: oauth2, flows }, { type: openIdConnect, openIdConnectUrl } or { type: mutualTLS }' })

export const OpenApiOptionsSchema = Type.Object({
  json: Type.Optional(RoutePath('/openapi.json', 'Route of the OpenAPI 3.1 document as JSON. `false` removes it.')),
  yaml: Type.Optional(RoutePath('/openapi.yaml', 'Route of the same document as YAML. `false` removes it.')),
  docs: Type.Optional(RoutePath('/docs', 'Swagger UI (@fastify/swagger-ui), served from the package: no CDN. `false` removes it.')),
  redoc: Type.Optional(RoutePath('/redoc', 'Redoc, from the `redoc` package\'s own bundle: no CDN. `false` removes it.')),
  info: Info(UrlReference),
  servers: Type.Optional(Type.Array(Type.Object({
    url: ServerUrl,
    description: Type.Optional(Type.String())
  }, { additionalProperties: false }), { default: [], description: 'The document\'s `servers`, e.g. `[{ url: "https://api.example.com" }]`. With a path (`https://api.example.com/v1`), the routes under it are documented relative to it (`/v1/items` as `/items`).' })),
  tags: Type.Optional(Type.Array(Type.Object({
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String())
  }, { additionalProperties: false }), { default: [], description: 'Tags with their descriptions, in the order the UIs list them.' })),
  externalDocs: ExternalDocs(UrlReference),
  components: Type.Optional(Type.Object({
    securitySchemes: Type.Optional(Type.Record(Type.String({ pattern: SCHEME_NAME }), SecurityScheme, {
      ...SchemeName,
      expected: 'an object of security schemes by name ({ session: { type: apiKey, in: cookie, name: sid } })',
      description: 'The security schemes your app checks itself (an OAuth2 flow, a session cookie), as in @fastify/swagger\'s `openapi.components.securitySchemes`, beside those of `auth` (a name of theirs is refused). Routes name them in `schema.security`.'
    }))
  }, { additionalProperties: false })),
  security: Type.Optional(Type.Array(Type.Record(Type.String({ pattern: SCHEME_NAME }), Type.Array(Type.String()), { ...SchemeName, expected: 'a requirement ({ scheme: [scopes] })' }), {
    description: 'The document\'s default `security`, naming schemes of `openapi.components.securitySchemes` (`[{ session: [] }]`), for routes without a `schema.security` of their own. With `auth` on, refused: auth states every route\'s.'
  })),
  auth: Type.Optional(Type.Boolean({
    default: false,
    description: 'Protect the document and the UIs with the app\'s auth (the `auth` feature must be on). Default: public.'
  }))
}, { additionalProperties: false })

export type OpenApiOptions = Static<typeof OpenApiOptionsSchema>
export type ResolvedOpenApiOptions = Defaulted<typeof OpenApiOptionsSchema>
export const resolveOpenApiOptions = optionsResolver(OpenApiOptionsSchema, 'openapi')

const OPENAPI_METHODS = new Set(['GET', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'TRACE'])

/**
 * The route's operation is in the document: not hidden by `schema.hide` or `config.openapi: false`,
 * not a HEAD route Fastify added, and not a WebSocket route (@fastify/websocket hides them all,
 * giving a route without a schema a new one, which a copy of the route taken before it misses).
 */
export function documented (route: { method: string | string[], schema?: { hide?: boolean }, config?: unknown }): boolean {
  // A method added with addHttpMethod (SEARCH) has no field in an OpenAPI 3.1 path item: a
  // route of such methods alone is left out (plugins/openapi/document.ts drops them from the others).
  return route.method !== 'HEAD' && [route.method].flat().some((m) => OPENAPI_METHODS.has(m)) &&
    route.schema?.hide !== true && (route.config as { openapi?: unknown } | undefined)?.openapi !== false &&
    (route as { websocket?: unknown }).websocket !== true
}

export const openapiFeature = {
  plugin: async () => await import('./index.js'),
  schema: OpenApiOptionsSchema,
  summary: 'OpenAPI 3.1 document (@fastify/swagger) with auth, limits, timeouts and problems documented for every route, Swagger UI and Redoc, served offline. Off when NODE_ENV=production unless set.',
  enabledByDefault: true,
  offInProduction: true,
  besideConfig: withPackageInfo,
  settings: (o) => ['json', 'yaml', 'docs', 'redoc'].map((k) => `${k}=${o[k as 'json'] === false ? 'off' : o[k as 'json'] as string}`).join(' ') + (o.auth ? ' auth' : ''),
  columns: [{ title: 'DOCS', value: (route, o) => o === false ? 'off' : documented(route) ? 'yes' : 'hidden' }]
} satisfies FeatureDefinition<typeof OpenApiOptionsSchema, ResolvedOpenApiOptions>

/** The title and version, where not set, from the `name` and `version` of the package.json nearest `dir`. */
export function withPackageInfo (o: ResolvedOpenApiOptions, dir: string): ResolvedOpenApiOptions {
  if (o.info.title !== undefined && o.info.version !== undefined) return o
  const pkg = nearestPackageJson(dir)
  const text = (value: unknown) => typeof value === 'string' && value !== '' ? value : undefined
  return { ...o, info: { ...o.info, title: o.info.title ?? text(pkg?.name), version: o.info.version ?? text(pkg?.version) } }
}
