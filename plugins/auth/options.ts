/**
 * The `auth` options: JWT (`auth.jwt`) and API keys (`auth.apiKey`). A scheme is on when
 * its key is present; `auth: true` alone configures nothing and fails at startup. What the
 * schema cannot say (secret lengths, key types against algorithms, an empty key set) is
 * checked when the plugin builds its verifiers (keys.ts, api-key.ts), with messages that
 * name the key path.
 */
import { Type, type Static, type TUnsafe } from '@sinclair/typebox'
import { Duration, HttpToken, optionsResolver, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition, OperationDoc } from '../../src/feature.js'
import { declaredPolicy, routeAuthLabel } from './route.js'

/** Every algorithm spikard verifies. `none` is not one of them, in any spelling. */
export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA'
] as const
export type JwtAlgorithm = typeof JWT_ALGORITHMS[number]

/** A key with the `kid` that selects it: `{ kid, key }`. */
const KidKey = (what: string) => Type.Object({
  kid: Type.String({ minLength: 1, description: 'The `kid` (key id) of the tokens this key verifies.' }),
  key: Type.String({ minLength: 1, description: what })
}, { additionalProperties: false })

/** A JSON Web Key (RFC 7517), as a JWKS lists them. */
export interface JsonWebKeyOption { kty: string, kid?: string, alg?: string, use?: string, [param: string]: unknown }

/** A JWK: an object with a `kty` (its other members are checked when the key is loaded). Typed as a whole JWK. */
const Jwk = Type.Object({ kty: Type.String({ minLength: 1 }) }) as unknown as TUnsafe<JsonWebKeyOption>

const PUBLIC_KEY_ITEMS = [Type.String({ minLength: 1 }), KidKey('A PEM public key or certificate.'), Jwk]
const PUBLIC_KEY_EXPECTED = 'a PEM public key, a JWK object or { kid, key } (or a list of them)'

const OneOrMany = (description: string) => Type.Union([
  Type.String({ minLength: 1 }),
  Type.Array(Type.String({ minLength: 1 }))
], { default: [], expected: 'a non-empty string or a list of them', description })

export const JwtOptionsSchema = Type.Object({
  algorithms: Type.Optional(Type.Array(Type.Union(JWT_ALGORITHMS.map((a) => Type.Literal(a))), {
    default: ['HS256'],
    expected: `a list of algorithms among ${JWT_ALGORITHMS.join(', ')}`,
    description: 'The algorithms accepted, always an explicit list: a token whose header names another algorithm (`none` included) is refused, and each key only verifies the algorithms of its type (a secret HS*, an RSA key RS*/PS*, an EC key the ES* of its curve, an Ed25519/Ed448 key EdDSA).'
  })),
  secret: Type.Optional(Type.Union([
    Type.String({ minLength: 1 }),
    Type.Array(Type.Union([Type.String({ minLength: 1 }), KidKey('The secret.')]))
  ], {
    default: [],
    expected: 'a secret, or a list of secrets and { kid, key } objects',
    secret: true,
    description: 'HMAC secret(s) for the HS* algorithms, used as UTF-8 bytes: at least 32 bytes for HS256, 48 for HS384, 64 for HS512. Several are active at once for rotation; a `{ kid, key }` entry is chosen by the token\'s `kid`, the others are tried in order.'
  })),
  publicKey: Type.Optional(Type.Union([...PUBLIC_KEY_ITEMS, Type.Array(Type.Union(PUBLIC_KEY_ITEMS))], {
    default: [],
    expected: PUBLIC_KEY_EXPECTED,
    description: 'Public key(s) for the RS*, PS*, ES* and EdDSA algorithms: PEM (SPKI, PKCS#1 or an X.509 certificate), a JWK (its `kid` and `alg` are honoured) or `{ kid, key }` with a PEM. Several are active at once for rotation.'
  })),
  jwksUrl: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^https?://' })], {
    default: false,
    expected: 'false or an https:// URL',
    description: 'A JWKS endpoint (https; http only on localhost). Fetched at startup and cached; a token with an unknown `kid` triggers a refetch, at most once every 30 s; refreshed in the background after 10 minutes. `jku` and `x5u` token headers are never fetched.'
  })),
  audience: Type.Optional(OneOrMany('Accepted audience(s): a token passes when its `aud` (a string, or any value of a list) is one of them. Not checked when empty.')),
  issuer: Type.Optional(OneOrMany('Accepted issuer(s): the token\'s `iss` must be a single string equal to one of them. Not checked when empty.')),
  leeway: Type.Optional(Duration({
    default: 0,
    description: 'Clock skew tolerated on `exp`, `nbf` and `iat` (milliseconds, or a string such as `30s`).'
  })),
  requiredClaims: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    default: ['exp'],
    expected: 'a list of claim names',
    description: 'Claims every token must carry. The list replaces the default: keep `exp` in it unless your tokens may never expire.'
  }))
}, { additionalProperties: false, description: 'JWT bearer tokens (`Authorization: Bearer <token>`). Absent: no JWT.' })

export const ApiKeyEntrySchema = Type.Object({
  name: Type.String({ minLength: 1, description: 'Who holds the key: the caller\'s identity in logs and for the rate limiter. Two keys may share a name (rotation).' }),
  key: Type.Optional(Type.String({ minLength: 1, description: 'The key itself.' })),
  sha256: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: 'The key\'s SHA-256, in hex, so the key itself need not be in the config.' }))
}, { additionalProperties: false })

export const ApiKeyOptionsSchema = Type.Object({
  keys: Type.Optional(Type.Array(Type.Union([Type.String({ minLength: 1 }), ApiKeyEntrySchema]), {
    default: [],
    expected: 'a list of keys: strings, { name, key } or { name, sha256 }',
    secret: true,
    description: 'Valid keys, all at once (rotation): a key (at least 16 printable ASCII characters), `{ name, key }` or `{ name, sha256 }` (`echo -n "$KEY" | sha256sum`). An unnamed key is identified by the first 12 hex digits of its SHA-256.'
  })),
  header: Type.Optional(HttpToken('a header name', {
    default: 'x-api-key',
    description: 'Header carrying the key. Sent twice or empty, the request is refused.'
  })),
  query: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^[A-Za-z0-9._~-]+$' })], {
    default: false,
    expected: 'false or a query parameter name',
    description: 'Query parameter that may carry the key instead of the header (for clients that cannot set headers). Off by default: URLs end up in browser histories and proxy logs.'
  }))
}, { additionalProperties: false, description: 'API keys. Absent: no API keys.' })

export const AuthOptionsSchema = Type.Object({
  jwt: Type.Optional(JwtOptionsSchema),
  apiKey: Type.Optional(ApiKeyOptionsSchema)
}, { additionalProperties: false })

export type AuthOptions = Static<typeof AuthOptionsSchema>
export type ResolvedAuthOptions = Defaulted<typeof AuthOptionsSchema>
/** `auth.jwt` after validation; absent (undefined) when JWT is not configured. */
export type ResolvedJwtOptions = ResolvedAuthOptions['jwt']
/** `auth.apiKey` after validation; absent (undefined) when API keys are not configured. */
export type ResolvedApiKeyOptions = ResolvedAuthOptions['apiKey']
export const resolveAuthOptions = optionsResolver(AuthOptionsSchema, 'auth')

/** Where API keys arrive (header and query names), for the logging redaction lists. */
export function apiKeyCarriers (auth: false | ResolvedAuthOptions | undefined): { headers: string[], query: string[] } {
  const apiKey = auth === false ? undefined : auth?.apiKey
  if (apiKey === undefined) return { headers: [], query: [] }
  return { headers: [apiKey.header.toLowerCase()], query: apiKey.query === false ? [] : [apiKey.query.toLowerCase()] }
}

export const authFeature = {
  plugin: async () => await import('./index.js'),
  schema: AuthOptionsSchema,
  summary: 'JWT (HS/RS/ES/PS) and API-key authentication, required on every route unless it opts out. Off until configured.',
  enabledByDefault: false,
  settings: (o) => {
    const jwt = o.jwt as ResolvedAuthOptions['jwt'] | undefined
    const apiKey = o.apiKey as ResolvedAuthOptions['apiKey'] | undefined
    return [
      jwt === undefined ? undefined : `jwt(${jwt.algorithms.join(',')}${jwt.jwksUrl === false ? '' : ' jwks'})`,
      apiKey === undefined ? undefined : `apiKey(${apiKey.keys.length} key${apiKey.keys.length === 1 ? '' : 's'}, header=${apiKey.header}${apiKey.query === false ? '' : `, query=${apiKey.query}`})`
    ].filter((s) => s !== undefined).join(' ')
  },
  columns: [{ title: 'AUTH', value: (route, o) => routeAuthLabel(route, o) }],
  // A custom API-key header or query parameter is as secret as the default ones.
  secrets: apiKeyCarriers,
  openapi: {
    security: (o) => {
      const schemes = securitySchemes(o)
      return { schemes, requirement: Object.keys(schemes).map((name): Record<string, string[]> => ({ [name]: [] })) }
    },
    operation: (route, o) => {
      const policy = declaredPolicy(route, o)
      if (policy === 'invalid') return undefined
      const schemes = securitySchemes(o)
      // A schema.security naming none of auth's schemes names the app's own
      // (openapi.components.securitySchemes), which the app checks itself: on a route left to
      // the app (config.auth: false) its requirement stands; elsewhere each of auth's schemes
      // is needed with it. One naming auth's gives way to what auth enforces.
      const declared = (route.schema as { security?: Array<Record<string, string[]>> } | undefined)?.security
      const own = declared !== undefined && declared.length > 0 && declared.every((requirement) => Object.keys(requirement).every((name) => !Object.hasOwn(schemes, name))) ? declared : [{}]
      if (policy === null) return own === declared ? undefined : { security: [], notes: ['Public: no credentials needed.'] }
      const accepted = Object.keys(schemes).filter((name) => policy[name.startsWith('apiKey') ? 'apiKey' : 'jwt'])
      const doc: OperationDoc = {
        security: accepted.flatMap((name) => own.map((requirement) => ({ [name]: [], ...structuredClone(requirement) }))),
        errors: [{ code: 'SPK_ERR_UNAUTHORIZED', headers: { 'WWW-Authenticate': { description: 'The challenge: the schemes this route accepts.', schema: { type: 'string' } } } }]
      }
      if (policy.claims.length > 0) {
        const claims = policy.claims.map((c) => `\`${c.name}\` ${c.accepted.size === 1 ? 'equal to' : 'one of'} ${[...c.accepted].map((v) => `\`${String(v)}\``).join(', ')}`)
        doc.errors?.push({ code: 'SPK_ERR_FORBIDDEN', note: `the token lacks a required claim: ${claims.join('; ')}` })
        doc.notes = [`Requires a JWT with the claims ${claims.join('; ')}.`]
      }
      return doc
    }
  }
} satisfies FeatureDefinition<typeof AuthOptionsSchema, ResolvedAuthOptions>

/** The OpenAPI security schemes of the configured auth: a bearer JWT, an API key in its header and, when allowed, in the query. */
function securitySchemes (o: ResolvedAuthOptions): Record<string, Record<string, unknown>> {
  const schemes: Record<string, Record<string, unknown>> = {}
  if (o.jwt !== undefined) schemes.bearerAuth = { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: `A JWT signed with ${o.jwt.algorithms.join(', ')}, in \`Authorization: Bearer <token>\`.` }
  if (o.apiKey !== undefined) {
    schemes.apiKey = { type: 'apiKey', in: 'header', name: o.apiKey.header, description: `An API key in the \`${o.apiKey.header}\` header.` }
    if (o.apiKey.query !== false) schemes.apiKeyQuery = { type: 'apiKey', in: 'query', name: o.apiKey.query, description: `An API key in the \`${o.apiKey.query}\` query parameter (for clients that cannot set headers).` }
  }
  return schemes
}
