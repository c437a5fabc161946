/**
 * Shared by the auth test files: tokens minted with `jose` (an independent JOSE library,
 * not the verifier's own signer) and keys generated for the run, an app with auth options,
 * and the expected 401/403 problems.
 */
import assert from 'node:assert/strict'
import { createHmac, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { SignJWT, type JWSHeaderParameters } from 'jose'
import type { FastifyInstance, FastifyPluginAsync, LightMyRequestResponse } from 'fastify'
import { build, type TestApp } from '../helpers.js'
import type { CreateServerConfig } from '../../src/server.js'

export const PROBLEM_JSON = 'application/problem+json; charset=utf-8'
export const TYPE = 'https://spikard.dev/errors/'

/** Seconds since the epoch, as JWT claims count. */
export const now = (): number => Math.floor(Date.now() / 1000)

/** A random secret of `bytes` bytes (as base64url text; its UTF-8 length is what counts). */
export function newSecret (chars = 64): string {
  return randomBytes(chars).toString('base64url').slice(0, chars)
}

export const encode = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A token put together by hand: any header, payload and signature, signed or not. */
export function craft (header: unknown, payload: unknown, signature = ''): string {
  return `${encode(header)}.${encode(payload)}.${signature}`
}

/** A token HMAC-signed by hand with any bytes as the key (for algorithm-confusion attacks). */
export function hmacToken (header: Record<string, unknown>, payload: unknown, key: string | Buffer): string {
  const input = `${encode(header)}.${encode(payload)}`
  const bits = String(header.alg).slice(2) || '256'
  return `${input}.${createHmac(`sha${bits}`, key).update(input).digest('base64url')}`
}

export type SigningKey = KeyObject | Uint8Array

/**
 * A token signed with jose. `sub` is user-1, `iat` now and `exp` an hour from now unless the
 * payload says otherwise; a claim given as null is left out.
 */
export async function sign (key: SigningKey, header: JWSHeaderParameters & { alg: string }, payload: Record<string, unknown> = {}): Promise<string> {
  const claims: Record<string, unknown> = { sub: 'user-1', iat: now(), exp: now() + 3600, ...payload }
  for (const [k, v] of Object.entries(claims)) if (v === null) delete claims[k]
  return await new SignJWT(claims).setProtectedHeader(header).sign(key)
}

export const secretKey = (secret: string): Uint8Array => new TextEncoder().encode(secret)

export interface PublicJwk { kty: string, [param: string]: unknown }
export interface KeyPair { privateKey: KeyObject, publicKey: KeyObject, pem: string, jwk: PublicJwk }

/**
 * A key pair generated for the run: `rsa` (2048 bits), `P-256`, `P-384`, `P-521`, `ed25519`
 * or `ed448`, with its public half as PEM and JWK. Node KeyObjects, which jose signs with
 * for any algorithm of the key's type (a WebCrypto key is bound to one).
 */
export function keyPair (type: 'rsa' | 'P-256' | 'P-384' | 'P-521' | 'ed25519' | 'ed448', modulusLength = 2048): KeyPair {
  const { privateKey, publicKey } = type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength })
    : type.startsWith('P-') ? generateKeyPairSync('ec', { namedCurve: type }) : generateKeyPairSync(type as 'ed25519')
  return { privateKey, publicKey, pem: publicKey.export({ type: 'spki', format: 'pem' }) as string, jwk: publicKey.export({ format: 'jwk' }) as PublicJwk }
}

/** createServer with auth options and routes: GET /me (echoes identity and user), a public route, whatever `routes` adds. */
export async function authApp (auth: CreateServerConfig['auth'], routes?: FastifyPluginAsync, config: Partial<CreateServerConfig> = {}): Promise<TestApp> {
  return await build({ server: { logger: { level: 'info' } }, auth, ...config }, async (app) => {
    app.get('/me', async (request) => ({ identity: request.identity ?? null, user: request.user ?? null }))
    app.get('/public', { config: { auth: false } }, async (request) => ({ identity: request.identity ?? null }))
    if (routes !== undefined) await routes(app, {})
  })
}

export async function get (app: FastifyInstance, headers: Record<string, string> = {}, url = '/me'): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url, headers })
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

/** Asserts a whole 401 (or 403) problem: status, content type, body and challenge. */
export function assertProblem (response: LightMyRequestResponse, status: 401 | 403, detail: string, challenge: string | RegExp, instance = '/me'): void {
  assert.equal(response.statusCode, status, response.body)
  assert.equal(response.headers['content-type'], PROBLEM_JSON)
  const body = response.json()
  assert.deepEqual(body, {
    type: TYPE + (status === 401 ? 'unauthorized' : 'forbidden'),
    title: status === 401 ? 'Unauthorized' : 'Forbidden',
    status,
    detail,
    instance,
    requestId: body.requestId
  })
  assert.equal(typeof body.requestId, 'string')
  if (typeof challenge === 'string') assert.equal(response.headers['www-authenticate'], challenge)
  else assert.match(String(response.headers['www-authenticate']), challenge)
}

/** The challenge of a bearer token refused with this detail, on a JWT-only route. */
export const invalidToken = (detail: string): string => `Bearer error="invalid_token", error_description="${detail}"`

export async function assertRefused (app: FastifyInstance, token: string, detail: string): Promise<void> {
  assertProblem(await get(app, bearer(token)), 401, detail, invalidToken(detail))
}

export async function assertAccepted (app: FastifyInstance, token: string, sub = 'user-1'): Promise<void> {
  const response = await get(app, bearer(token))
  assert.equal(response.statusCode, 200, response.body)
  assert.deepEqual(response.json().identity, { scheme: 'jwt', id: sub })
}

export const DETAIL = {
  tooLarge: 'The token is malformed: longer than 16384 characters',
  shape: 'The token is malformed: expected three base64url segments separated by dots',
  encoding: 'The token is malformed: a segment is not canonical base64url',
  header: 'The token is malformed: its header is not a base64url-encoded JSON object',
  payload: 'The token is malformed: its payload is not a base64url-encoded JSON object',
  noAlg: 'The token is malformed: its header has no alg',
  kid: 'The token is malformed: its kid is not a short string',
  crit: 'The token is malformed: it has a critical header this server does not understand',
  claimType: 'The token is malformed: a time claim (exp, nbf, iat) is not a number',
  algorithm: 'The token\'s algorithm is not accepted',
  unsigned: 'The token is not signed',
  signature: 'The token\'s signature is invalid',
  unknownKey: 'The token\'s signing key is not known',
  expired: 'The token has expired',
  notYetValid: 'The token is not valid yet',
  audience: 'The token\'s audience is not accepted',
  issuer: 'The token\'s issuer is not accepted',
  missingExp: 'The token lacks the required claim exp',
  notBearer: 'The Authorization header is not a Bearer token',
  missingJwt: 'Missing credentials: send a Bearer token in the Authorization header'
} as const
