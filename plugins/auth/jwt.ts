/**
 * JWT bearer tokens: the options to a verifier (built once, refusing unsafe configuration),
 * and a token to its claims or to the reason it is refused. No Fastify runtime import.
 *
 * The order of the checks is deliberate. Shape, header and `alg` come first (cheap, and
 * nothing of the token is trusted yet); then the key, chosen by the configured algorithms
 * and the token's `kid`, never by anything else in the header; then fast-jwt checks the
 * signature before any claim, so a forged token only ever learns "invalid signature"; then
 * time (`exp`, `nbf` in fast-jwt, `iat` and the range of all three here) and the claims the
 * options demand.
 */
import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { TOKEN_ERROR_CODES } from 'fast-jwt'
import { SpikardConfigError } from '../../src/errors.js'
import { HS_ALGORITHMS, keySourceProblems, loadKeys, type Claims, type VerifyKey } from './keys.js'
import { JwksKeySet } from './jwks.js'
import type { JwtAlgorithm, ResolvedJwtOptions } from './options.js'

/** Longer tokens are refused before any decoding (Node's default header limit is 16 KiB in all). */
export const MAX_TOKEN_LENGTH = 16 * 1024
const MAX_KID_LENGTH = 256
/** Three base64url segments, the last (the signature) possibly empty; no padding, no whitespace. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
/** The 6-bit value of each base64url character, by char code. */
const BASE64URL = new Int8Array(128).fill(-1)
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) BASE64URL[c.charCodeAt(0)] = i

/** Why a token is refused: the problem's `detail`, and the RFC 6750 error code of the challenge. */
export interface Refusal { refused: true, detail: string, error: 'invalid_token' | 'invalid_request' }

const refuse = (detail: string, error: Refusal['error'] = 'invalid_token'): Refusal => Object.freeze({ refused: true, detail, error })

export const REFUSALS = {
  tooLarge: refuse(`The token is malformed: longer than ${MAX_TOKEN_LENGTH} characters`),
  shape: refuse('The token is malformed: expected three base64url segments separated by dots'),
  encoding: refuse('The token is malformed: a segment is not canonical base64url'),
  header: refuse('The token is malformed: its header is not a base64url-encoded JSON object'),
  payload: refuse('The token is malformed: its payload is not a base64url-encoded JSON object'),
  noAlg: refuse('The token is malformed: its header has no alg'),
  kid: refuse('The token is malformed: its kid is not a short string'),
  crit: refuse('The token is malformed: it has a critical header this server does not understand'),
  claimType: refuse('The token is malformed: a time claim (exp, nbf, iat) is not a number'),
  algorithm: refuse('The token\'s algorithm is not accepted'),
  unsigned: refuse('The token is not signed'),
  signature: refuse('The token\'s signature is invalid'),
  unknownKey: refuse('The token\'s signing key is not known'),
  expired: refuse('The token has expired'),
  notYetValid: refuse('The token is not valid yet'),
  audience: refuse('The token\'s audience is not accepted'),
  issuer: refuse('The token\'s issuer is not accepted'),
  unverifiable: refuse('The token could not be verified')
} as const

const missingClaims = new Map<string, Refusal>()
function missingClaim (claim: string): Refusal {
  let r = missingClaims.get(claim)
  if (r === undefined) missingClaims.set(claim, r = refuse(`The token lacks the required claim ${claim}`))
  return r
}

/** The caller, for the rate limiter and logs (see AuthIdentity in index.ts). */
export interface JwtIdentity { readonly scheme: 'jwt', readonly id: string }

/** A verified token: its (frozen) claims and the caller. One object per token, reused while cached. */
export interface Verified { readonly refused: false, readonly claims: Claims, readonly identity: JwtIdentity }

export type Outcome = Verified | Refusal

const FAST_JWT: Record<string, Refusal> = {
  [TOKEN_ERROR_CODES.malformed]: REFUSALS.payload,
  [TOKEN_ERROR_CODES.invalidPayload]: REFUSALS.payload,
  [TOKEN_ERROR_CODES.invalidType]: REFUSALS.header,
  [TOKEN_ERROR_CODES.invalidCritHeader]: REFUSALS.crit,
  [TOKEN_ERROR_CODES.invalidAlgorithm]: REFUSALS.algorithm,
  // Only exp and nbf are fast-jwt's to check: a value of the wrong type, or a list.
  [TOKEN_ERROR_CODES.invalidClaimType]: REFUSALS.claimType,
  [TOKEN_ERROR_CODES.invalidClaimValue]: REFUSALS.claimType,
  [TOKEN_ERROR_CODES.missingSignature]: REFUSALS.unsigned,
  [TOKEN_ERROR_CODES.invalidSignature]: REFUSALS.signature,
  [TOKEN_ERROR_CODES.verifyError]: REFUSALS.signature,
  [TOKEN_ERROR_CODES.expired]: REFUSALS.expired,
  [TOKEN_ERROR_CODES.inactive]: REFUSALS.notYetValid
}

/**
 * Tokens remembered as verified, at most this many, each until its `exp` (plus the leeway)
 * and never longer than RECENT_TTL_MS: the oldest goes first when the map is full.
 */
const RECENT_SIZE = 1000
const RECENT_TTL_MS = 10 * 60_000

/**
 * The map key of a remembered token: the end of its signature. A request's token is a new
 * string, and a Map hashes the whole key on every lookup (0.31 µs for a ~200-character
 * token in a microbenchmark, the largest part of a cached verification); 16 characters of
 * signature are as distinct, and the entry holds the whole token to compare.
 */
const recentKey = (token: string): string => token.slice(-16)

interface Recent { token: string, verified: Verified, until: number, generation: number }

const asList = (value: string | string[]): string[] => typeof value === 'string' ? [value] : value

export class JwtVerifier {
  readonly algorithms: ReadonlySet<string>
  readonly jwks: JwksKeySet | undefined
  /** Static keys able to verify each algorithm, and those among them with each `kid`. */
  readonly #byAlg = new Map<string, VerifyKey[]>()
  readonly #byKid = new Map<string, VerifyKey[]>()
  readonly #withoutKid = new Map<string, VerifyKey[]>()
  readonly #audience: ReadonlySet<string> | undefined
  readonly #issuer: ReadonlySet<string> | undefined
  readonly #required: string[]
  readonly #leeway: number
  /** The outcome of each verified claims object (fast-jwt returns the same object from its cache). */
  readonly #verified = new WeakMap<Claims, Verified>()
  /**
   * Verified tokens, by recentKey(), each with its exact text. fast-jwt caches too, but a
   * hit there still costs the shape checks, a header decode and a SHA-256 of the token per
   * request (about half of a JWT route's cost in `npm run bench`); the same string is the
   * same token, so a hit here skips all of it. Only successes are kept, and only while the
   * JWKS has not changed.
   */
  readonly #recent = new Map<string, Recent>()

  /** Builds every verifier; throws a SpikardConfigError listing every problem. */
  constructor (options: NonNullable<ResolvedJwtOptions>, log: FastifyBaseLogger) {
    const algorithms = [...new Set(options.algorithms)] as JwtAlgorithm[]
    const asymmetric = algorithms.filter((a) => !HS_ALGORITHMS.includes(a))
    const jwksUrl = options.jwksUrl === false ? undefined : options.jwksUrl
    const problems = keySourceProblems(options, algorithms)
    const keys = loadKeys(options, algorithms, problems)
    if (problems.length > 0) throw new SpikardConfigError(problems)
    if (!options.requiredClaims.includes('exp')) {
      log.warn('spikard-auth: auth.jwt.requiredClaims does not include exp: tokens that never expire are accepted')
    }

    this.algorithms = new Set(algorithms)
    for (const alg of algorithms) {
      const able = keys.filter((k) => k.algorithms.has(alg))
      this.#byAlg.set(alg, able)
      this.#withoutKid.set(alg, able.filter((k) => k.kid === undefined))
    }
    for (const key of keys) if (key.kid !== undefined) this.#byKid.set(key.kid, [key])
    this.jwks = jwksUrl === undefined ? undefined : new JwksKeySet(jwksUrl, asymmetric, options.leeway, log)
    const audience = asList(options.audience)
    const issuer = asList(options.issuer)
    this.#audience = audience.length > 0 ? new Set(audience) : undefined
    this.#issuer = issuer.length > 0 ? new Set(issuer) : undefined
    this.#required = options.requiredClaims
    this.#leeway = options.leeway
  }

  /** The token's claims and caller id, or why it is refused. A promise only when the JWKS must be refetched. */
  verify (token: string): Outcome | Promise<Outcome> {
    if (token.length > MAX_TOKEN_LENGTH) return REFUSALS.tooLarge
    const key = recentKey(token)
    const recent = this.#recent.get(key)
    if (recent !== undefined && recent.token === token) {
      if (recent.until > Date.now() && recent.generation === (this.jwks?.generation ?? 0)) return recent.verified
      this.#recent.delete(key)
    }
    if (!TOKEN_SHAPE.test(token)) return REFUSALS.shape
    // Node decodes "xyz" and "xy{z+1}" alike when the last character's low bits are padding:
    // one token would have many spellings (a signature could be altered and still verify).
    const first = token.indexOf('.')
    const last = token.lastIndexOf('.')
    if (!canonical(token, 0, first) || !canonical(token, first + 1, last)) return REFUSALS.encoding
    if (!canonical(token, last + 1, token.length)) return REFUSALS.signature
    const header = decodeHeader(token)
    if (header === undefined) return REFUSALS.header
    const { alg, kid } = header
    if (typeof alg !== 'string') return REFUSALS.noAlg
    if (!this.algorithms.has(alg)) return REFUSALS.algorithm
    if (kid !== undefined && (typeof kid !== 'string' || kid.length > MAX_KID_LENGTH)) return REFUSALS.kid

    const keys = this.#keysFor(alg, kid)
    if (keys !== undefined) return this.#verifyWith(token, keys)
    // An unknown kid: the issuer may have rotated its keys.
    if (this.jwks === undefined) return REFUSALS.unknownKey
    return this.jwks.refreshForUnknownKid().then(() => {
      const keys = this.#keysFor(alg, kid) ?? (kid === undefined ? undefined : nonEmpty(this.#withoutKid.get(alg)))
      return keys === undefined ? REFUSALS.unknownKey : this.#verifyWith(token, keys)
    })
  }

  /**
   * The keys to try: those with the token's `kid` (and the algorithm); without a match, the
   * keys that have no kid (a PEM configured for an issuer that sends kids). A token without
   * a kid tries every key of its algorithm. Undefined: none, or the JWKS should be asked.
   */
  #keysFor (alg: string, kid: string | undefined): VerifyKey[] | undefined {
    if (kid === undefined) {
      const fixed = this.#byAlg.get(alg)!
      if (this.jwks === undefined) return nonEmpty(fixed)
      const fetched = this.jwks.all().filter((k) => k.algorithms.has(alg))
      return nonEmpty(fetched.length === 0 ? fixed : [...fixed, ...fetched])
    }
    const fixed = this.#byKid.get(kid)?.filter((k) => k.algorithms.has(alg))
    if (fixed !== undefined && fixed.length > 0) return fixed
    const fetched = this.jwks?.byKid(kid)?.filter((k) => k.algorithms.has(alg))
    if (fetched !== undefined && fetched.length > 0) return fetched
    // With a JWKS, an unknown kid first asks it (the caller falls back to the kid-less keys after).
    return this.jwks === undefined ? nonEmpty(this.#withoutKid.get(alg)) : undefined
  }

  /**
   * Tries the keys in order; the next one only when the signature does not match this one.
   * Any other failure (expired, malformed) is the token's, whichever key signed it.
   */
  #verifyWith (token: string, keys: VerifyKey[]): Outcome {
    let claims: Claims | undefined
    for (let i = 0; claims === undefined; i++) {
      try {
        claims = keys[i].verify(token)
      } catch (error) {
        const code = (error as { code?: string }).code
        const retry = code === TOKEN_ERROR_CODES.invalidSignature || code === TOKEN_ERROR_CODES.verifyError
        if (retry && i + 1 < keys.length) continue
        // fast-jwt checks exp and nbf after the signature, and only their type: -Infinity is
        // "expired", and a time past the Date range makes it throw a RangeError building its
        // message. The signature is good by then, so the claims can be judged as ours.
        const afterSignature = code === TOKEN_ERROR_CODES.expired || code === TOKEN_ERROR_CODES.inactive || (code === undefined && error instanceof RangeError)
        if (afterSignature && payloadTimeUnusable(token)) return REFUSALS.claimType
        return (code === undefined ? undefined : FAST_JWT[code]) ?? REFUSALS.unverifiable
      }
    }
    return this.#checkClaims(claims, token)
  }

  #checkClaims (claims: Claims, token: string): Outcome {
    for (const claim of this.#required) if (!Object.hasOwn(claims, claim)) return missingClaim(claim)
    if (timeUnusable(claims)) return REFUSALS.claimType
    const iat = claims.iat
    if (typeof iat === 'number' && iat * 1000 > Date.now() + this.#leeway) return REFUSALS.notYetValid
    if (this.#audience !== undefined) {
      const aud = claims.aud
      const ok = typeof aud === 'string' ? this.#audience.has(aud) : Array.isArray(aud) && aud.some((a) => typeof a === 'string' && this.#audience!.has(a))
      if (!ok) return REFUSALS.audience
    }
    if (this.#issuer !== undefined && (typeof claims.iss !== 'string' || !this.#issuer.has(claims.iss))) return REFUSALS.issuer

    let verified = this.#verified.get(claims)
    if (verified === undefined) {
      // Handlers get the cached object itself: frozen, so no request can change the next one's claims.
      deepFreeze(claims)
      verified = Object.freeze({ refused: false, claims, identity: Object.freeze({ scheme: 'jwt', id: callerId(claims, token) }) })
      this.#verified.set(claims, verified)
    }
    this.#remember(token, verified)
    return verified
  }

  #remember (token: string, verified: Verified): void {
    const exp = verified.claims.exp
    const now = Date.now()
    const until = Math.min(now + RECENT_TTL_MS, typeof exp === 'number' ? exp * 1000 + this.#leeway : Infinity)
    const key = recentKey(token)
    // A new key when the map is full evicts the oldest; another token with the same end replaces its entry.
    if (this.#recent.size >= RECENT_SIZE && !this.#recent.has(key)) this.#recent.delete(this.#recent.keys().next().value as string)
    this.#recent.set(key, { token, verified, until, generation: this.jwks?.generation ?? 0 })
  }
}

/**
 * The largest NumericDate a JavaScript Date can hold (8.64e15 ms, in the year 275760), in
 * seconds. Beyond it a time claim means no instant: `1e400` parses as Infinity (a token
 * that never expires, or was issued at -Infinity), and `1e300` breaks every Date made of it.
 */
const MAX_NUMERIC_DATE = 8.64e12
const TIME_CLAIMS = ['exp', 'nbf', 'iat'] as const

/** Whether exp, nbf or iat is present but not a finite number within the Date range (fractions are fine: RFC 7519). */
function timeUnusable (claims: Record<string, unknown>): boolean {
  for (const claim of TIME_CLAIMS) {
    if (!Object.hasOwn(claims, claim)) continue
    const value = claims[claim]
    if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_NUMERIC_DATE) return true
  }
  return false
}

/** timeUnusable() of a token's payload, decoded here; false when it does not decode (fast-jwt judged it already). */
function payloadTimeUnusable (token: string): boolean {
  try {
    const payload = JSON.parse(Buffer.from(token.slice(token.indexOf('.') + 1, token.lastIndexOf('.')), 'base64url').toString('utf8')) as unknown
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) && timeUnusable(payload as Record<string, unknown>)
  } catch {
    return false
  }
}

/** Whether token[start, end) is canonical base64url: no length of 4n+1, and zero padding bits in the last character. */
function canonical (token: string, start: number, end: number): boolean {
  const rest = (end - start) % 4
  if (rest === 0) return true
  if (rest === 1) return false
  const bits = BASE64URL[token.charCodeAt(end - 1)]
  return rest === 2 ? (bits & 0b1111) === 0 : (bits & 0b11) === 0
}

function nonEmpty<T> (list: T[] | undefined): T[] | undefined {
  return list !== undefined && list.length > 0 ? list : undefined
}

function decodeHeader (token: string): { alg?: unknown, kid?: unknown } | undefined {
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString('utf8')) as unknown
    return header !== null && typeof header === 'object' && !Array.isArray(header) ? header : undefined
  } catch {
    return undefined
  }
}

/**
 * The caller's id for the rate limiter and logs: `sub`; without one, a digest of `iss` and
 * `jti` (stable for the token's life); without those either, a digest of the token itself.
 */
function callerId (claims: Claims, token: string): string {
  if (typeof claims.sub === 'string' && claims.sub !== '') return claims.sub
  const source = typeof claims.jti === 'string' && claims.jti !== ''
    ? `jti\0${typeof claims.iss === 'string' ? claims.iss : ''}\0${claims.jti}`
    : `token\0${token}`
  return `~${createHash('sha256').update(source).digest('hex').slice(0, 16)}`
}

function deepFreeze (value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return
  Object.freeze(value)
  for (const v of Object.values(value)) deepFreeze(v)
}
