/**
 * JWT keys: from the options (secrets, public keys) or a JWKS document to verifiers, each
 * bound to the algorithms of its key type, built once; and the startup checks of which keys
 * go with which algorithms. No Fastify runtime import.
 *
 * Verification is fast-jwt's (the engine of @fastify/jwt): signature, `alg` against the
 * key's list, `exp` and `nbf` with the leeway, and its cache of verified tokens, bounded by
 * each token's `exp`. A key never verifies an algorithm of another family, so an HS token
 * "signed" with a public key as its secret finds no key to check it against.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto'
import { createVerifier, TOKEN_ERROR_CODES, type TokenError } from 'fast-jwt'
import type { JwtAlgorithm, ResolvedJwtOptions } from './options.js'

export const HS_ALGORITHMS: readonly JwtAlgorithm[] = ['HS256', 'HS384', 'HS512']
/** RFC 7518 §3.2: an HMAC key at least as long as the hash. */
const MIN_SECRET_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 }
const MIN_RSA_BITS = 2048
const RSA_ALGORITHMS: JwtAlgorithm[] = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const CURVES: Record<string, JwtAlgorithm> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' }

/** Verified tokens remembered per key; each entry lives until the token's `exp` at most. */
const CACHE_SIZE = 1000
const CACHE_TTL_MS = 10 * 60_000

export type Claims = Record<string, unknown>

export interface VerifyKey {
  /** The `kid` that selects this key, if it has one. */
  kid: string | undefined
  /** The algorithms this key verifies: its type's, among those configured. */
  algorithms: ReadonlySet<string>
  /** fast-jwt's verifier: returns the claims or throws a TokenError. */
  verify: (token: string) => Claims
  /** Where the key came from (`auth.jwt.secret[1]`, `jwks key 3 (kid abc)`), never its material. */
  id: string
}

/**
 * A signature failure is a fact about a (token, key) pair, so it is cached like a success:
 * with several keys tried in turn, a token of the second key costs one cache lookup on the
 * first, and a replayed forgery costs no cryptography. Anything that depends on the clock is not.
 */
function errorCacheTtl (error: TokenError): number {
  return error.code === TOKEN_ERROR_CODES.invalidSignature || error.code === TOKEN_ERROR_CODES.verifyError ? CACHE_TTL_MS : -1
}

function verifier (key: string, algorithms: JwtAlgorithm[], leeway: number): VerifyKey['verify'] {
  return createVerifier({
    key,
    algorithms,
    clockTolerance: leeway,
    cache: CACHE_SIZE,
    cacheTTL: CACHE_TTL_MS,
    errorCacheTTL: errorCacheTtl
  }) as VerifyKey['verify']
}

/** Accumulates configuration problems, each naming its key path. */
export type Problems = string[]

/** Why a "secret" is really a public key (the algorithm-confusion mistake), if it is one. */
function looksLikeKeyMaterial (secret: string): string | undefined {
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(secret)) return 'looks like a PEM key: public keys go in auth.jwt.publicKey'
  const trimmed = secret.trim()
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      const parsed = JSON.parse(trimmed) as unknown
      if (parsed !== null && typeof parsed === 'object') return 'looks like a JWK or JWKS: public keys go in auth.jwt.publicKey'
    } catch { /* a secret that happens to start with a brace */ }
  }
  return undefined
}

export interface SecretEntry { kid?: string, key: string }

/** HMAC secrets to verifiers, for the configured HS algorithms. */
export function loadSecrets (entries: Array<{ path: string, entry: SecretEntry }>, algorithms: JwtAlgorithm[], leeway: number, problems: Problems): VerifyKey[] {
  const hs = algorithms.filter((a) => HS_ALGORITHMS.includes(a))
  const minBytes = Math.max(...hs.map((a) => MIN_SECRET_BYTES[a]))
  const strongest = hs.find((a) => MIN_SECRET_BYTES[a] === minBytes)
  const keys: VerifyKey[] = []
  for (const { path, entry } of entries) {
    const bytes = Buffer.byteLength(entry.key, 'utf8')
    const material = looksLikeKeyMaterial(entry.key)
    if (material !== undefined) {
      problems.push(`${path}: ${material}`)
    } else if (bytes < minBytes) {
      problems.push(`${path}: must be at least ${minBytes} bytes for ${strongest} (RFC 7518), found ${bytes}; generate one with \`openssl rand -base64 ${minBytes}\``)
    } else {
      keys.push({ kid: entry.kid, algorithms: new Set(hs), verify: verifier(entry.key, hs, leeway), id: path })
    }
  }
  return keys
}

/** The algorithms a public key can verify, or why it cannot be used. */
export function keyAlgorithms (key: KeyObject): JwtAlgorithm[] | string {
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
      return bits >= MIN_RSA_BITS ? RSA_ALGORITHMS : `an RSA key of ${bits} bits is too short: at least ${MIN_RSA_BITS} bits (RFC 7518)`
    }
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve ?? 'unknown'
      return CURVES[curve] !== undefined ? [CURVES[curve]] : `EC curve ${curve} is not supported (P-256, P-384 and P-521 are)`
    }
    case 'ed25519':
    case 'ed448':
      return ['EdDSA']
    case 'rsa-pss':
      return 'RSA-PSS-restricted keys are not supported: give the plain RSA public key (it verifies PS256/384/512 too)'
    default:
      return `${String(key.asymmetricKeyType)} keys are not supported`
  }
}

const KEY_TYPES: Record<string, string> = { rsa: 'an RSA key', ec: 'an EC key', ed25519: 'an Ed25519 key', ed448: 'an Ed448 key' }

export interface PublicKeyInput {
  /** `auth.jwt.publicKey[0]`, or `jwks key 3`: where the key came from, for messages. */
  path: string
  /** A PEM string, a JWK (object or JSON string) or `{ kid, key }` with a PEM. */
  value: unknown
}

/**
 * A public key to a verifier bound to the algorithms its type verifies, among those
 * configured (and to its JWK's `alg`, when it names one). Returns the problem instead when
 * the key is unusable: private, symmetric, of an unsupported type, or fit for none of the
 * configured algorithms.
 */
export function loadPublicKey ({ path, value }: PublicKeyInput, algorithms: JwtAlgorithm[], leeway: number): VerifyKey | string {
  let kid: string | undefined
  let jwkAlg: unknown
  let key: KeyObject
  try {
    let jwk: Record<string, unknown> | undefined
    let pem: string | undefined
    if (typeof value === 'string') {
      const trimmed = value.trim()
      if (trimmed.startsWith('{')) jwk = JSON.parse(trimmed) as Record<string, unknown>
      else pem = trimmed
    } else if (value !== null && typeof value === 'object' && 'kty' in value) {
      jwk = value as Record<string, unknown>
    } else if (value !== null && typeof value === 'object' && 'key' in value) {
      kid = String((value as { kid?: unknown }).kid)
      pem = String((value as { key: unknown }).key).trim()
    } else {
      return `${path}: expected a PEM public key, a JWK or { kid, key }`
    }
    if (jwk !== undefined) {
      if (jwk.kty === 'oct') return `${path}: a symmetric (oct) JWK is a secret: HMAC secrets go in auth.jwt.secret`
      if ('d' in jwk) return `${path}: is a private key: give the public key only`
      if (jwk.use !== undefined && jwk.use !== 'sig') return `${path}: its use is ${JSON.stringify(jwk.use)}, not "sig"`
      if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return `${path}: its kid must be a string`
      kid = jwk.kid as string | undefined
      jwkAlg = jwk.alg
      key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
    } else {
      if (/-----BEGIN (?:RSA |EC |ENCRYPTED |OPENSSH )?PRIVATE KEY-----/.test(pem!)) return `${path}: is a private key: give the public key only`
      if (!/-----BEGIN /.test(pem!)) return `${path}: is not a PEM key (expected -----BEGIN PUBLIC KEY----- or a certificate)`
      key = createPublicKey(pem!)
    }
  } catch {
    return `${path}: is not a valid public key (PEM or JWK)`
  }

  const fit = keyAlgorithms(key)
  if (typeof fit === 'string') return `${path}: ${fit}`
  if (jwkAlg !== undefined && !fit.includes(jwkAlg as JwtAlgorithm)) {
    return `${path}: its alg ${JSON.stringify(jwkAlg)} does not match ${KEY_TYPES[key.asymmetricKeyType!] ?? 'its key type'} (${fit.join(', ')})`
  }
  const usable = (jwkAlg !== undefined ? [jwkAlg as JwtAlgorithm] : fit).filter((a) => algorithms.includes(a))
  if (usable.length === 0) {
    return `${path}: ${KEY_TYPES[key.asymmetricKeyType!] ?? 'this key'} verifies ${jwkAlg !== undefined ? jwkAlg : fit.join(', ')}, none of which is in auth.jwt.algorithms (${algorithms.join(', ')})`
  }
  const spki = key.export({ type: 'spki', format: 'pem' }) as string
  return { kid, algorithms: new Set(usable), verify: verifier(spki, usable, leeway), id: path }
}

function isLoopback (url: URL): boolean {
  return url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)
}

type JwtOptions = NonNullable<ResolvedJwtOptions>

const secretsOf = (options: JwtOptions): Array<string | SecretEntry> => typeof options.secret === 'string' ? [options.secret] : options.secret
const publicKeysOf = (options: JwtOptions): unknown[] => Array.isArray(options.publicKey) ? options.publicKey : [options.publicKey]

/**
 * Which keys go with which algorithms: a secret with HS* only, a public key (or JWKS) with
 * the asymmetric ones only, every listed algorithm with a key, and some key at all.
 */
export function keySourceProblems (options: JwtOptions, algorithms: JwtAlgorithm[]): Problems {
  const problems: Problems = []
  const hs = algorithms.filter((a) => HS_ALGORITHMS.includes(a))
  const asymmetric = algorithms.filter((a) => !HS_ALGORITHMS.includes(a))
  const secret = secretsOf(options).length > 0
  const publicKey = publicKeysOf(options).length > 0
  const jwks = options.jwksUrl !== false
  if (algorithms.length === 0) {
    problems.push('auth.jwt.algorithms: an empty list: name the algorithms your tokens are signed with, e.g. ["RS256"]')
  } else if (!secret && !publicKey && !jwks) {
    problems.push('auth.jwt: no key to verify tokens with: set auth.jwt.secret (HS*), auth.jwt.publicKey or auth.jwt.jwksUrl (RS*, PS*, ES*, EdDSA)')
  } else {
    if (secret && hs.length === 0) {
      problems.push(`auth.jwt.secret: a secret verifies HS256/HS384/HS512 tokens, but auth.jwt.algorithms lists only ${algorithms.join(', ')}, which verify with a public key (auth.jwt.publicKey or auth.jwt.jwksUrl)`)
    }
    if ((publicKey || jwks) && asymmetric.length === 0) {
      problems.push(`auth.jwt.${publicKey ? 'publicKey' : 'jwksUrl'}: public keys verify RS*, PS*, ES* and EdDSA tokens, but auth.jwt.algorithms lists only ${hs.join(', ')}; an HS algorithm never verifies with a public key (anyone holding it could sign tokens)`)
    }
    if (hs.length > 0 && !secret && asymmetric.length > 0) {
      problems.push(`auth.jwt.algorithms: ${hs.join(', ')} verify with auth.jwt.secret, which is not set; a public key never verifies HS tokens (anyone holding it could sign them)`)
    }
    if (asymmetric.length > 0 && !publicKey && !jwks && hs.length > 0) {
      problems.push(`auth.jwt.algorithms: ${asymmetric.join(', ')} verify with a public key: set auth.jwt.publicKey or auth.jwt.jwksUrl, or remove them`)
    }
  }
  if (options.jwksUrl !== false) {
    let url: URL | undefined
    try { url = new URL(options.jwksUrl) } catch { problems.push(`auth.jwt.jwksUrl: not a valid URL: ${JSON.stringify(options.jwksUrl)}`) }
    if (url !== undefined && url.protocol !== 'https:' && !isLoopback(url)) {
      problems.push('auth.jwt.jwksUrl: must be https:// (http only on localhost): keys fetched in the clear can be swapped on the way')
    }
    // fetch() refuses such a URL, and its error (logged at every attempt) would carry the password.
    if (url !== undefined && (url.username !== '' || url.password !== '')) {
      problems.push('auth.jwt.jwksUrl: must not hold credentials (user:password@): a JWKS is public, and fetch() refuses such a URL')
    }
  }
  return problems
}

/** Every configured key as a verifier; adds a problem for each unusable key. */
export function loadKeys (options: JwtOptions, algorithms: JwtAlgorithm[], problems: Problems): VerifyKey[] {
  const keys: VerifyKey[] = []
  const path = (key: 'secret' | 'publicKey', i: number, list: boolean): string => list ? `auth.jwt.${key}[${i}]` : `auth.jwt.${key}`
  if (algorithms.some((a) => HS_ALGORITHMS.includes(a))) {
    const seen = new Set<string>()
    const entries = secretsOf(options).map((s, i) => {
      const entry: SecretEntry = typeof s === 'string' ? { key: s } : s
      const where = path('secret', i, typeof options.secret !== 'string')
      if (seen.has(entry.key)) problems.push(`${where}: the same secret is listed twice`)
      seen.add(entry.key)
      return { path: where, entry }
    })
    keys.push(...loadSecrets(entries, algorithms, options.leeway, problems))
  }
  if (algorithms.some((a) => !HS_ALGORITHMS.includes(a))) {
    publicKeysOf(options).forEach((value, i) => {
      const loaded = loadPublicKey({ path: path('publicKey', i, Array.isArray(options.publicKey)), value }, algorithms, options.leeway)
      if (typeof loaded === 'string') problems.push(loaded)
      else keys.push(loaded)
    })
  }
  const kids = new Set<string>()
  for (const key of keys) {
    if (key.kid === undefined) continue
    if (kids.has(key.kid)) problems.push(`${key.id}: kid ${JSON.stringify(key.kid)} is given to another key too`)
    kids.add(key.kid)
  }
  return keys
}
