/**
 * A route's `config.auth`, read once when the route is registered: which schemes it accepts
 * and which claims it demands. Also the AUTH column of `spikard check`. No Fastify runtime
 * import.
 *
 *   config: { auth: false }                          public
 *   (absent), config: { auth: true }                 any configured scheme
 *   config: { auth: 'jwt' }, { auth: ['jwt', 'apiKey'] }   these schemes (any one suffices)
 *   config: { auth: { schemes: 'jwt', claims: { role: 'admin', scope: ['orders:read', 'orders:admin'] } } }
 *
 * `claims`: each named claim must be present and match: a value, or a list of acceptable
 * values (any one suffices). A claim whose value is a list (`roles`, `groups`, `aud`) matches
 * when it contains an acceptable value; `scope` and `scp` strings are split on spaces
 * (OAuth 2.0 scopes) first. Only JWTs carry claims, so `claims` alone means `schemes: 'jwt'`,
 * and a route cannot demand claims of API keys.
 */
import { SpikardConfigError } from '../../src/errors.js'

export type AuthScheme = 'jwt' | 'apiKey'
export type ClaimValue = string | number | boolean

export interface RouteAuthOptions {
  /** The schemes accepted, any one sufficing. Default: every configured scheme (with `claims`: `jwt`). */
  schemes?: AuthScheme | AuthScheme[]
  /** Claims the token must carry, each a value or a list of acceptable values; a caller without them gets 403. */
  claims?: Record<string, ClaimValue | ClaimValue[]>
}

/**
 * A route's `config.auth`. The object is `& object`: Fastify infers a route's config type
 * from its literal and intersects it with FastifyContextConfig, and an all-optional
 * interface intersected with `string` or `number` accepts `'oauth'` or `42`.
 */
export type RouteAuth = boolean | AuthScheme | AuthScheme[] | (RouteAuthOptions & object)

export interface ClaimRule {
  name: string
  accepted: ReadonlySet<ClaimValue>
  /** OAuth scopes: a space-separated string. */
  split: boolean
}

export interface RoutePolicy { jwt: boolean, apiKey: boolean, claims: ClaimRule[] }

export interface Configured { jwt: boolean, apiKey: boolean }

const SCHEMES: readonly string[] = ['jwt', 'apiKey']
const SPACE_SEPARATED = new Set(['scope', 'scp'])
const EXPECTED = 'expected true, false, "jwt", "apiKey", a list of them, or { schemes, claims }'

/** The route's policy, `null` for a public route; throws a SpikardConfigError naming the route. */
export function routePolicy (value: unknown, configured: Configured, route: string): RoutePolicy | null {
  const problems: string[] = []
  const policy = read(value, configured, problems)
  if (problems.length > 0) throw new SpikardConfigError(problems, `route ${route}`)
  return policy
}

function read (value: unknown, configured: Configured, problems: string[]): RoutePolicy | null {
  if (value === false) return null
  if (value === undefined || value === true) return { ...configured, claims: [] }
  if (typeof value === 'string' || Array.isArray(value)) return { ...schemes(value, 'config.auth', configured, problems), claims: [] }
  if (value === null || typeof value !== 'object') {
    problems.push(`config.auth: ${EXPECTED}, found ${JSON.stringify(value) ?? typeof value}`)
    return null
  }
  for (const key of Object.keys(value)) {
    if (key !== 'schemes' && key !== 'claims') problems.push(`config.auth.${key}: unknown key (expected schemes or claims)`)
  }
  const { schemes: listed, claims } = value as RouteAuthOptions
  const rules = claims === undefined ? [] : claimRules(claims, problems)
  if (listed === undefined) {
    if (rules.length > 0 && !configured.jwt) problems.push('config.auth.claims: claims come with JWTs, and auth.jwt is not configured')
    return rules.length > 0 ? { jwt: true, apiKey: false, claims: rules } : { ...configured, claims: rules }
  }
  const accepted = schemes(listed, 'config.auth.schemes', configured, problems)
  if (rules.length > 0 && accepted.apiKey) problems.push('config.auth.claims: API keys carry no claims: a route that demands claims accepts jwt only')
  return { ...accepted, claims: rules }
}

function schemes (value: unknown, path: string, configured: Configured, problems: string[]): Configured {
  const list = Array.isArray(value) ? value : [value]
  const out = { jwt: false, apiKey: false }
  if (list.length === 0) problems.push(`${path}: an empty list: name a scheme, or use auth: false for a public route`)
  for (const scheme of list) {
    if (typeof scheme !== 'string' || !SCHEMES.includes(scheme)) {
      problems.push(`${path}: ${JSON.stringify(scheme) ?? typeof scheme} is not a scheme; ${EXPECTED}`)
    } else if (!configured[scheme as AuthScheme]) {
      problems.push(`${path}: ${scheme} is not configured (auth.${scheme})`)
    } else {
      out[scheme as AuthScheme] = true
    }
  }
  return out
}

function claimRules (claims: unknown, problems: string[]): ClaimRule[] {
  if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) {
    problems.push('config.auth.claims: expected an object of claim names to a value or a list of acceptable values')
    return []
  }
  const rules: ClaimRule[] = []
  for (const [name, wanted] of Object.entries(claims)) {
    const values: unknown[] = Array.isArray(wanted) ? wanted : [wanted]
    if (values.length === 0 || !values.every((v) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')) {
      problems.push(`config.auth.claims.${name}: expected a string, number or boolean, or a non-empty list of them`)
      continue
    }
    rules.push({ name, accepted: new Set(values as ClaimValue[]), split: SPACE_SEPARATED.has(name) })
  }
  return rules
}

/** The first rule the claims fail (absent or without an acceptable value); undefined when all pass. */
export function failedClaim (claims: Record<string, unknown>, rules: ClaimRule[]): ClaimRule | undefined {
  for (const rule of rules) {
    const value = Object.hasOwn(claims, rule.name) ? claims[rule.name] : undefined
    if (!satisfies(value, rule)) return rule
  }
  return undefined
}

function satisfies (value: unknown, rule: ClaimRule): boolean {
  if (Array.isArray(value)) return value.some((v) => rule.accepted.has(v as ClaimValue))
  if (typeof value === 'string' && rule.split) return value.split(' ').some((v) => v !== '' && rule.accepted.has(v))
  return (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') && rule.accepted.has(value)
}

/**
 * What `spikard check` shows in its AUTH column: `off` (auth not enabled), `public`,
 * the schemes (`jwt`, `apiKey`, `jwt|apiKey`), then any claims (`jwt role=admin|editor`).
 */
export function routeAuthLabel (route: { config?: unknown }, auth: false | { jwt?: unknown, apiKey?: unknown } | undefined): string {
  if (auth === false || auth === undefined) return 'off'
  const policy = declaredPolicy(route, auth)
  if (policy === 'invalid') return 'invalid'
  if (policy === null) return 'public'
  const schemes = (['jwt', 'apiKey'] as const).filter((s) => policy[s]).join('|')
  return [schemes, ...policy.claims.map((c) => `${c.name}=${[...c.accepted].join('|')}`)].join(' ')
}

/** The policy a route declares (`null`: public), or `invalid` where routePolicy would refuse it; for descriptions. */
export function declaredPolicy (route: { config?: unknown }, auth: { jwt?: unknown, apiKey?: unknown }): RoutePolicy | null | 'invalid' {
  const problems: string[] = []
  const policy = read((route.config as { auth?: unknown } | undefined)?.auth, { jwt: auth.jwt !== undefined, apiKey: auth.apiKey !== undefined }, problems)
  return problems.length > 0 ? 'invalid' : policy
}
