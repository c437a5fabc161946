/**
 * The rateLimit options: the global limit (`max` per `timeWindow`, keyed by `keyBy`), the
 * response headers, the allow-list, IPv6 grouping, and the store (memory, or Redis shared
 * by every instance). A route overrides `max`, `timeWindow` and `keyBy` with
 * `config: { rateLimit: {...} }` (RouteRateLimitSchema) or opts out with `false`.
 */
import { isIP } from 'node:net'
import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition, type HeaderDoc } from '../../src/feature.js'
import { describeRouteLimit } from './describe.js'

/** An HTTP token (RFC 9110 §5.6.2): what a header or cookie name is made of. */
const TOKEN = "[A-Za-z0-9!#$%&'*+.^_`|~-]+"

/** `ip`, `identity`, `header:<name>` or `cookie:<name>`. */
export type KeyBy = 'ip' | 'identity' | `header:${string}` | `cookie:${string}`

const max = (description: string, fallback?: number) => Type.Integer({ minimum: 0, description, ...(fallback === undefined ? {} : { default: fallback }) })
// A window is no timer (the stores compare times): a month is a window like any other. But
// it must stay an exact integer: Redis's script formats a larger one as 1e+17, its PEXPIRE
// fails after the INCR, and the key, left without expiry, refuses its client for ever.
const timeWindow = (description: string, fallback?: string) => Duration({ minimum: 1000, minimumText: '1s', maximum: Number.MAX_SAFE_INTEGER, description, ...(fallback === undefined ? {} : { default: fallback }) })
const keyBy = (description: string, fallback?: KeyBy) => Type.Unsafe<KeyBy>(Type.String({
  pattern: `^(ip|identity|header:${TOKEN}|cookie:${TOKEN})$`,
  expected: '"ip", "identity", "header:<name>" or "cookie:<name>"',
  description,
  ...(fallback === undefined ? {} : { default: fallback })
}))

/** An allow-list entry that is an IP address or a CIDR range. */
export function parseAddressEntry (entry: string): { address: string, prefix?: number, family: 'ipv4' | 'ipv6' } | undefined {
  const slash = entry.indexOf('/')
  const address = slash === -1 ? entry : entry.slice(0, slash)
  const version = isIP(address)
  if (version === 0) return undefined
  const family = version === 4 ? 'ipv4' : 'ipv6'
  if (slash === -1) return { address, family }
  const text = entry.slice(slash + 1)
  const prefix = Number(text)
  if (!/^\d{1,3}$/.test(text) || prefix > (version === 4 ? 32 : 128)) return undefined
  return { address, prefix, family }
}

export const RateLimitOptionsSchema = Type.Object({
  max: Type.Optional(max(
    'Requests a client may make per `timeWindow`, counted across every route without a limit of its own. A route sets its own with `config: { rateLimit: { max } }` (counted apart), or opts out with `config: { rateLimit: false }`. `0` refuses every request with 429: it never means "unlimited".',
    100)),
  timeWindow: Type.Optional(timeWindow(
    'Length of the window the count is kept for (a fixed window starting at the client\'s first request). At least `1s`, since `Retry-After` counts whole seconds.',
    '1m')),
  keyBy: Type.Optional(keyBy(
    'What a count belongs to: `ip`, the client address (as `server.trustProxy` resolves it; checked before auth and body parsing); `header:<name>` or `cookie:<name>`, that value as the client sends it (before auth: only for values a gateway sets or checks, since a client can send a new one each time; use `identity` for API keys); `identity`, the authenticated JWT subject or API-key name (checked after auth). A request without the header, cookie or identity is counted by its address.',
    'ip')),
  headers: Type.Optional(Type.Union([Type.Literal('x-ratelimit'), Type.Literal('ietf'), Type.Literal(false)], {
    default: 'x-ratelimit',
    description: 'Limit headers on limited responses: `x-ratelimit` (`X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` in seconds), `ietf` (`RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=99;t=60`, draft-ietf-httpapi-ratelimit-headers; a route with its own limit is policy `"route"`) or `false` (none). A 429 always carries `Retry-After`.'
  })),
  allowList: Type.Optional(Type.Array(Type.String({ minLength: 1 }), {
    default: [],
    expected: 'a list of IP addresses, CIDR ranges (10.0.0.0/8) or keys',
    description: 'Callers never limited (internal services, monitors): client addresses or CIDR ranges (`10.0.0.0/8`, `2001:db8::/32`), whatever `keyBy` is; and, with `keyBy` `header:`/`cookie:`, exact values; with `identity`, `<scheme>:<id>` (`apiKey:batch-jobs`, `jwt:svc-reports`).'
  })),
  ipv6Subnet: Type.Optional(Type.Integer({
    minimum: 32,
    maximum: 128,
    default: 64,
    description: 'IPv6 clients are counted per network of this prefix length: a /64 is what one home or one server usually gets, so rotating addresses inside it changes nothing. `128` counts each address alone. IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as their IPv4 address.'
  })),
  redis: Type.Optional(Type.String({
    pattern: '^rediss?://[^\\s]+$',
    expected: 'a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS)',
    secret: true,
    // eslint-disable-next-line no-template-curly-in-string -- the config file syntax, shown to users
    description: 'Redis server the counts are kept in, shared by every instance using it (`redis://[user:password@]host[:port][/db]`, `rediss://` for TLS; use `${REDIS_URL}` in a config file). Absent: counted in this process\'s memory. The client is closed on shutdown.'
  })),
  redisPrefix: Type.Optional(Type.String({
    minLength: 1,
    default: 'spikard:rate-limit:',
    description: 'Prefix of every Redis key the counts are kept under. Services sharing one Redis count apart only with distinct prefixes (or databases).'
  })),
  redisTimeout: Type.Optional(Duration({
    minimum: 1,
    minimumText: '1ms',
    default: '500ms',
    description: 'Longest a request waits for Redis before `onStoreError` applies. Once two commands in a row fail (Redis unreachable, or timing out), one request a second asks it and the others get `onStoreError` at once.'
  })),
  onStoreError: Type.Optional(Type.Union([Type.Literal('allow'), Type.Literal('reject')], {
    default: 'allow',
    description: 'When the store (Redis) cannot be reached: `allow` lets requests through unlimited, `reject` answers 503 (SPK_ERR_RATE_LIMIT_UNAVAILABLE). Either way the outage is logged once a minute, without the driver\'s message ever reaching a client.'
  })),
  cacheSize: Type.Optional(Type.Integer({
    minimum: 100,
    default: 10000,
    description: 'Memory store only: most clients counted at once per limit; past it the least recently seen client is forgotten (its count starts over).'
  }))
}, { additionalProperties: false })

/** `config: { rateLimit: {...} }` on a route: its own limit, counted apart; absent keys come from the global options. */
export const RouteRateLimitSchema = Type.Object({
  max: Type.Optional(max('Requests per `timeWindow` on this route.')),
  timeWindow: Type.Optional(timeWindow('Window of this route\'s count.')),
  keyBy: Type.Optional(keyBy('What this route\'s count belongs to.'))
}, { additionalProperties: false })

export type RateLimitOptions = Static<typeof RateLimitOptionsSchema>
/** The options the plugin works with: every default filled in; `redis` stays absent unless set. */
export type ResolvedRateLimitOptions = Omit<Defaulted<typeof RateLimitOptionsSchema>, 'redis'> & { redis?: string }
/** What a route may set under `config.rateLimit`. */
export type RouteRateLimitOptions = Static<typeof RouteRateLimitSchema>

export const resolveRateLimitOptions: (options?: RateLimitOptions) => ResolvedRateLimitOptions =
  optionsResolver(RateLimitOptionsSchema, 'rateLimit')

export const rateLimitFeature = {
  plugin: async () => await import('./index.js'),
  schema: RateLimitOptionsSchema,
  summary: 'Rate limiting (@fastify/rate-limit), global and per route, keyed by client, header, cookie or identity; in memory or in Redis. Off until configured.',
  enabledByDefault: false,
  shorthand: 'max',
  settings: (o) => `${o.max}/${formatDuration(o.timeWindow)} by ${o.keyBy} store=${o.redis === undefined ? 'memory' : 'redis'}`,
  columns: [{ title: 'RATE LIMIT', value: (route, o) => describeRouteLimit(route.config?.rateLimit, o) }],
  openapi: {
    operation: (route, o) => {
      const limit = describeRouteLimit(route.config?.rateLimit, o)
      if (limit === 'off') return undefined
      const count = (description: string) => ({ description, schema: { type: 'integer' as const } })
      const text = (description: string) => ({ description, schema: { type: 'string' as const } })
      const headers: Record<string, HeaderDoc> = o.headers === 'x-ratelimit'
        ? { 'X-RateLimit-Limit': count('Requests allowed in the window.'), 'X-RateLimit-Remaining': count('Requests left in the window.'), 'X-RateLimit-Reset': count('Seconds until the window resets.') }
        : o.headers === 'ietf'
          ? { 'RateLimit-Policy': text('The quota policy (draft-ietf-httpapi-ratelimit-headers).'), RateLimit: text('Requests left and seconds until the window resets.') }
          : {}
      return {
        headers,
        errors: [
          { code: 'SPK_ERR_RATE_LIMITED', note: `limit ${limit}`, headers: { 'Retry-After': count('Seconds to wait before retrying.') } },
          ...(o.redis !== undefined && o.onStoreError === 'reject' ? [{ code: 'SPK_ERR_RATE_LIMIT_UNAVAILABLE' as const }] : [])
        ],
        notes: [`Rate limit: ${limit}.`]
      }
    }
  }
} satisfies FeatureDefinition<typeof RateLimitOptionsSchema, ResolvedRateLimitOptions>
