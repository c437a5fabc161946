/**
 * Credentials the app under test accepts, from its own auth config: a JWT signed with
 * fast-jwt (the library spikard verifies with) and a configured API key.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { createSigner } from 'fast-jwt'
import type { FastifyInstance } from 'fastify'

export interface JwtOptions {
  /** A PEM private key (or a KeyObject) for RS*, PS*, ES* and EdDSA; without one, the configured HS secret signs. */
  privateKey?: string | KeyObject
  /** The algorithm: by default the first configured one the key can sign with. */
  algorithm?: string
  /** The `kid` header: by default the configured secret's, when it has one. */
  kid?: string
}

interface JwtConfig { algorithms: string[], secret: Array<string | { kid: string, key: string }> | string, audience: string[] | string, issuer: string[] | string }
interface ApiKeyConfig { header: string, keys: Array<string | { name: string, key?: string }> }

function authConfig (app: FastifyInstance): { jwt?: JwtConfig, apiKey?: ApiKeyConfig } {
  const auth = app.spikard?.options.auth
  if (auth === undefined || auth === false) throw new Error('the app has no auth configured (the auth feature is off)')
  return auth as { jwt?: JwtConfig, apiKey?: ApiKeyConfig }
}

const first = (value: string[] | string): string | undefined => Array.isArray(value) ? value[0] : value

/** Which algorithms a private key can sign, by its type. */
function algorithmsFor (key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa': return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
    case 'rsa-pss': return ['PS256', 'PS384', 'PS512']
    case 'ec': return [{ 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' }[String(key.asymmetricKeyDetails?.namedCurve).replace('prime256v1', 'P-256').replace('secp384r1', 'P-384').replace('secp521r1', 'P-521')] ?? 'ES256']
    case 'ed25519': case 'ed448': return ['EdDSA']
    default: return []
  }
}

/** A token for `claims`, with `iat` now, `exp` an hour ahead and the configured audience and issuer unless the claims set them. */
export function mintJwt (app: FastifyInstance, claims: Record<string, unknown>, options: JwtOptions = {}): string {
  const jwt = authConfig(app).jwt
  if (jwt === undefined) throw new Error('withJwt(): the app does not accept JWTs (auth.jwt is not configured)')
  let key: string
  let usable: string[]
  let kid = options.kid
  if (options.privateKey !== undefined) {
    const privateKey = typeof options.privateKey === 'string' ? createPrivateKey(options.privateKey) : options.privateKey
    usable = algorithmsFor(privateKey)
    key = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  } else {
    const secret = [jwt.secret].flat()[0]
    if (secret === undefined) throw new Error('withJwt(): auth.jwt has no secret; pass { privateKey } for RS/ES/PS/EdDSA tokens')
    key = typeof secret === 'string' ? secret : secret.key
    kid ??= typeof secret === 'string' ? undefined : secret.kid
    usable = ['HS256', 'HS384', 'HS512']
  }
  const algorithm = options.algorithm ?? jwt.algorithms.find((a) => usable.includes(a))
  if (algorithm === undefined || !jwt.algorithms.includes(algorithm)) {
    throw new Error(`withJwt(): no algorithm for this key among auth.jwt.algorithms (${jwt.algorithms.join(', ')})${options.algorithm === undefined ? '' : `: ${options.algorithm} is not one of them`}`)
  }
  const now = Math.floor(Date.now() / 1000)
  const audience = first(jwt.audience)
  const issuer = first(jwt.issuer)
  const payload = {
    iat: now,
    exp: now + 3600,
    ...(audience === undefined ? {} : { aud: audience }),
    ...(issuer === undefined ? {} : { iss: issuer }),
    ...claims
  }
  const sign = createSigner({ key, algorithm: algorithm as 'HS256', ...(kid === undefined ? {} : { kid }) })
  return sign(payload)
}

/** The configured header and the key to send: `key` itself, or the first configured key the config holds in clear. */
export function configuredApiKey (app: FastifyInstance, key?: string): { header: string, key: string } {
  const apiKey = authConfig(app).apiKey
  if (apiKey === undefined) throw new Error('withApiKey(): the app does not accept API keys (auth.apiKey is not configured)')
  const chosen = key ?? apiKey.keys.map((k) => typeof k === 'string' ? k : k.key).find((k) => k !== undefined)
  if (chosen === undefined) throw new Error('withApiKey(): every configured key is given by its sha256; pass the key itself: withApiKey(key)')
  return { header: apiKey.header.toLowerCase(), key: chosen }
}
