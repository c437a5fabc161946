/**
 * Authentication: JWT bearer tokens (`auth.jwt`) and API keys (`auth.apiKey`).
 *
 * Every route requires a valid credential unless its config says `auth: false` (spikard's
 * health routes do); the not-found handler does not (an unknown path is a 404 whoever
 * asks). One onRequest hook for the whole app checks the credentials before the body is
 * read; what it checks on each route (its schemes and claims, or nothing on a public route)
 * is decided once per route (src/route-decision.ts), and a route whose `config.auth` is
 * invalid is refused at startup, whether it was registered before spikard or after. A
 * valid credential sets `request.identity` (and, for a JWT, `request.user` to its claims);
 * anything else is a 401 problem with a `WWW-Authenticate` challenge, or a 403 when a valid
 * token lacks a claim the route demands. Whatever the input, the answer is never a 5xx.
 *
 * Verifiers and key digests are built at registration; nothing is re-read per request.
 * See jwt.ts (tokens), keys.ts (keys), jwks.ts (JWKS), api-key.ts and route.ts (config.auth).
 */
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyRequest, onRequestHookHandler } from 'fastify'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { decide, decideEarlier, decisionOf, registered, routeName, type RouteView } from '../../src/route-decision.js'
import { resolveAuthOptions, type AuthOptions } from './options.js'
import { JwtVerifier, REFUSALS, type Outcome, type Refusal, type JwtIdentity } from './jwt.js'
import { ApiKeys, type ApiKeyIdentity, type ApiKeyRefusal } from './api-key.js'
import { failedClaim, routePolicy, type RouteAuth, type RoutePolicy } from './route.js'

export type { RouteAuth, RouteAuthOptions, AuthScheme, ClaimValue } from './route.js'
/** A verified token's claims, as the token carries them (frozen). */
export type { Claims as JwtClaims } from './keys.js'
import type { Claims } from './keys.js'
/**
 * `request.user`: the claims of the caller's verified JWT (frozen). Declare the claims your
 * tokens carry by augmenting it:
 *
 *     declare module 'spikard' { interface AuthUser { role: string, tenant?: string } }
 */
export interface AuthUser extends Claims {}

/** The authenticated caller: the scheme, and the JWT's `sub` (see jwt.ts) or the API key's name. */
export type AuthIdentity = JwtIdentity | ApiKeyIdentity

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The authenticated caller, set by the route's first onRequest hook (app-level onRequest
     * hooks run before it): `{ scheme: 'jwt', id }` where id is the token's `sub` (without one,
     * `~` and a digest of its `iss` and `jti`, or of the token), or `{ scheme: 'apiKey', id }`
     * where id is the key's name (unnamed: the first 12 hex digits of its SHA-256). Undefined
     * on public routes. Never the credential itself.
     */
    identity?: AuthIdentity
  }
  interface FastifyRequest {
    /** The verified JWT's claims; undefined on public routes and for API-key callers. */
    user?: AuthUser
  }
  interface FastifyContextConfig {
    /**
     * `false`: public. Absent or `true`: any configured scheme. `'jwt'`, `'apiKey'` or a list:
     * those schemes. `{ schemes?, claims? }`: claims the token must carry (403 otherwise).
     */
    auth?: RouteAuth
  }
}

/** Where a route keeps its check (src/route-decision.ts). */
const kAuth = Symbol('spikard.auth')

/** The query parameter (and subprotocol) a browser's token comes in on a WebSocket route that opted in. */
const BROWSER_TOKEN = 'access_token'
const NOT_BEARER = 'The Authorization header is not a Bearer token'
const SENT_TWICE = 'The request has more than one Authorization header'

async function spikardAuth (app: FastifyInstance, options: AuthOptions): Promise<void> {
  const resolved = resolveAuthOptions(options)
  // Absent keys stay absent at run time, whatever the defaulted type says.
  const jwtOptions = resolved.jwt as typeof resolved.jwt | undefined
  const apiKeyOptions = resolved.apiKey as typeof resolved.apiKey | undefined
  if (jwtOptions === undefined && apiKeyOptions === undefined) {
    throw new SpikardConfigError(['auth: nothing to check credentials against: configure auth.jwt, auth.apiKey or both'])
  }
  const problems: string[] = []
  const build = <T>(make: () => T): T | undefined => {
    try {
      return make()
    } catch (error) {
      if (!(error instanceof SpikardConfigError)) throw error
      problems.push(...error.problems)
      return undefined
    }
  }
  const jwt = jwtOptions === undefined ? undefined : build(() => new JwtVerifier(jwtOptions, app.log))
  const apiKeys = apiKeyOptions === undefined ? undefined : build(() => new ApiKeys(apiKeyOptions))
  if (problems.length > 0) throw new SpikardConfigError(problems)
  const configured = { jwt: jwtOptions !== undefined, apiKey: apiKeyOptions !== undefined }

  /** The route's check, or null for a public route (and the not-found handler). */
  function checkOf (route: RouteView): onRequestHookHandler | null {
    if (route.is404) return null
    const policy = routePolicy(route.config?.auth, configured, routeName(route))
    // A WebSocket route's opt-in (plugins/websocket): browsers cannot set headers on an upgrade.
    const browser = (route.config?.websocket as { accessToken?: unknown } | undefined)?.accessToken === true
    if (browser && policy !== null && policy.jwt && policy.apiKey && apiKeys?.query === BROWSER_TOKEN) {
      // The API key's parameter is read first: a browser's JWT there would be refused as a bad key.
      throw new SpikardConfigError([`config.websocket.accessToken: auth.apiKey.query is ${BROWSER_TOKEN} too, so a browser's JWT in ?${BROWSER_TOKEN}= would be checked as an API key and refused; give auth.apiKey.query another name, or accept one scheme on this route (config.auth)`], `route ${routeName(route)}`)
    }
    return policy === null ? null : authenticate(policy, jwt, apiKeys, browser)
  }

  app.decorateRequest('identity', undefined)
  // Routes registered before spikard too: an invalid config.auth fails at startup, not at each request.
  decideEarlier(app, kAuth, checkOf)
  app.addHook('onRoute', (route) => { decide(route, kAuth, checkOf(registered(route))) })
  app.addHook('onRequest', function spikardAuth (request, reply, done) {
    const check = decisionOf(request, kAuth, checkOf)
    if (check === null) return done()
    check.call(this, request, reply, done)
  })

  const jwks = jwt?.jwks
  if (jwks !== undefined) {
    // Fetched as the server starts, without holding it up: a token that needs the keys
    // before they arrive waits for that fetch (at most its 5 s timeout).
    app.addHook('onReady', (done) => { void jwks.load(); done() })
    app.addHook('onClose', (_app, done) => { jwks.close(); done() })
  }
}

/** A route's onRequest hook, for its policy. */
function authenticate (policy: RoutePolicy, jwt: JwtVerifier | undefined, apiKeys: ApiKeys | undefined, browser: boolean): onRequestHookHandler {
  const bearer = policy.jwt ? jwt : undefined
  const keys = policy.apiKey ? apiKeys : undefined
  const challenges = new Challenges(policy, keys)

  /** Checks every credential presented for the route's schemes: each must be valid. */
  function check (request: FastifyRequest): FastifyError | undefined | Promise<FastifyError | undefined> {
    let caller: ApiKeyIdentity | undefined
    if (keys !== undefined) {
      let presented = apiKeyOf(request, keys)
      // A browser's token is an API key on a route that takes no JWT.
      if (presented === undefined && browser && bearer === undefined) presented = browserToken(request)
      if (presented !== undefined) {
        const result = typeof presented === 'string' ? keys.check(presented) : presented
        if (result.refused) return challenges.badApiKey(result)
        caller = result.identity
      }
    }
    if (bearer !== undefined) {
      const authorization = request.headers.authorization
      const browsers = authorization === undefined && caller === undefined && browser ? browserToken(request) : undefined
      if (browsers !== undefined) {
        const outcome = bearer.verify(browsers)
        return outcome instanceof Promise ? outcome.then((o) => verified(request, o)) : verified(request, outcome)
      }
      if (authorization !== undefined) {
        if (occurrences(request.raw.rawHeaders, 'authorization') > 1) return challenges.badToken(SENT_TWICE, 'invalid_request')
        const token = bearerToken(authorization)
        if (token === undefined) return challenges.unauthorized(NOT_BEARER, challenges.missing)
        const outcome = bearer.verify(token)
        return outcome instanceof Promise ? outcome.then((o) => verified(request, o)) : verified(request, outcome)
      }
    }
    if (caller === undefined) return challenges.unauthorized(challenges.missingDetail, challenges.missing)
    request.identity = caller
    return undefined
  }

  function verified (request: FastifyRequest, outcome: Outcome): FastifyError | undefined {
    if (outcome.refused) return challenges.badToken(outcome.detail, outcome.error)
    if (policy.claims.length > 0) {
      const failed = failedClaim(outcome.claims, policy.claims)
      if (failed !== undefined) return challenges.forbidden(failed.name, Object.hasOwn(outcome.claims, failed.name))
    }
    request.user = outcome.claims
    request.identity = outcome.identity
    return undefined
  }

  function unexpected (request: FastifyRequest, error: unknown): FastifyError {
    request.log.error({ err: error }, 'spikard-auth: credential check failed unexpectedly; answered 401')
    return challenges.badToken(REFUSALS.unverifiable.detail, 'invalid_token')
  }

  return function spikardAuthenticate (request, _reply, done) {
    let result: ReturnType<typeof check>
    try {
      result = check(request)
    } catch (error) {
      return done(unexpected(request, error))
    }
    if (result instanceof Promise) result.then((e) => done(e), (error: unknown) => done(unexpected(request, error)))
    else done(result)
  }
}

/** The credential in the API-key header or query parameter, why it cannot be used, or undefined when absent. */
function apiKeyOf (request: FastifyRequest, keys: ApiKeys): string | ApiKeyRefusal | undefined {
  const header = request.headers[keys.header]
  let query: unknown
  if (keys.query !== undefined) {
    const q = request.query as Record<string, unknown> | null | undefined
    if (q !== null && typeof q === 'object' && Object.hasOwn(q, keys.query)) query = q[keys.query]
  }
  if (header === undefined && query === undefined) return undefined
  if (header !== undefined && query !== undefined) return keys.refusals.both
  if (header !== undefined) {
    // Node joins a repeated custom header into one value: count the raw ones.
    if (typeof header !== 'string' || occurrences(request.raw.rawHeaders, keys.header) > 1) return keys.refusals.duplicated
    return header === '' ? keys.refusals.empty : header
  }
  if (typeof query !== 'string') return keys.refusals.duplicated
  return query === '' ? keys.refusals.empty : query
}

/**
 * A browser's token on a WebSocket route that opted in (`config.websocket.accessToken`):
 * the protocol after `access_token` in `Sec-WebSocket-Protocol` (a browser's
 * `new WebSocket(url, ['access_token', token])`), or the `access_token` query parameter.
 * Both are masked in the logs (plugins/websocket/options.ts `secrets`).
 */
function browserToken (request: FastifyRequest): string | undefined {
  const protocols = request.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    const list = protocols.split(',')
    for (let i = 0; i < list.length - 1; i++) {
      if (list[i].trim() === BROWSER_TOKEN) return list[i + 1].trim()
    }
  }
  const q = request.query as Record<string, unknown> | null | undefined
  const token = q !== null && typeof q === 'object' && Object.hasOwn(q, BROWSER_TOKEN) ? q[BROWSER_TOKEN] : undefined
  return typeof token === 'string' && token !== '' ? token : undefined
}

/** `Bearer <token>` (RFC 6750 §2.1; the scheme is case-insensitive): the token, or undefined for another scheme. */
function bearerToken (authorization: string): string | undefined {
  if (authorization.length < 6 || authorization.slice(0, 6).toLowerCase() !== 'bearer') return undefined
  if (authorization.length === 6) return ''
  if (authorization.charCodeAt(6) !== 32) return undefined
  let start = 7
  while (authorization.charCodeAt(start) === 32) start++
  return authorization.slice(start)
}

/** How many times a header (lower-case name) was sent. Node keeps only the first Authorization. */
function occurrences (rawHeaders: string[], name: string): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === name.length && rawHeaders[i].toLowerCase() === name) n++
  }
  return n
}

/** A quoted-string of a challenge (RFC 9110 §5.6.4) carries no quote, backslash or control character. */
function quoted (text: string): string {
  return `"${text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '')}"`
}

/** The problems and `WWW-Authenticate` challenges of one route (RFC 6750 for Bearer). */
class Challenges {
  /** The challenges for a request without credentials: one per scheme the route accepts. */
  readonly missing: string
  readonly missingDetail: string
  readonly #jwt: boolean
  readonly #apiKey: string | undefined

  constructor (policy: RoutePolicy, keys: ApiKeys | undefined) {
    this.#jwt = policy.jwt
    this.#apiKey = keys === undefined ? undefined : `ApiKey header=${quoted(keys.header)}${keys.query === undefined ? '' : `, query=${quoted(keys.query)}`}`
    this.missing = [policy.jwt ? 'Bearer' : undefined, this.#apiKey].filter((c) => c !== undefined).join(', ')
    const ways = [
      policy.jwt ? 'a Bearer token in the Authorization header' : undefined,
      keys === undefined ? undefined : `an API key in the ${keys.header} header${keys.query === undefined ? '' : ` or the ${keys.query} query parameter`}`
    ].filter((w) => w !== undefined)
    this.missingDetail = `Missing credentials: send ${ways.join(' or ')}`
  }

  unauthorized (detail: string, challenge: string): FastifyError {
    return Object.assign(new errors.SPK_ERR_UNAUTHORIZED(detail), { headers: { 'www-authenticate': challenge } })
  }

  badToken (detail: string, error: Refusal['error']): FastifyError {
    const bearer = `Bearer error="${error}", error_description=${quoted(detail)}`
    return this.unauthorized(detail, this.#apiKey === undefined ? bearer : `${bearer}, ${this.#apiKey}`)
  }

  badApiKey (refusal: ApiKeyRefusal): FastifyError {
    return this.unauthorized(refusal.detail, this.missing)
  }

  forbidden (claim: string, present: boolean): FastifyError {
    const detail = present ? `The token's ${claim} claim does not grant access to this route` : `The token lacks the ${claim} claim this route requires`
    return Object.assign(new errors.SPK_ERR_FORBIDDEN(detail), {
      headers: { 'www-authenticate': `Bearer error="insufficient_scope", error_description=${quoted(detail)}` }
    })
  }
}

export default fp(spikardAuth, { name: 'spikard-auth', fastify: '5.x' })
