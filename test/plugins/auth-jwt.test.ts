/**
 * JWT bearer tokens: every algorithm, with tokens minted by jose (never by the verifier's
 * own signer) and keys generated for the run; then each class of attack the issue lists:
 * `alg: none` spellings, algorithm confusion, stripped/truncated/re-encoded signatures,
 * segment counts, padding, whitespace, non-JSON segments and payloads that are not
 * objects, audience arrays and multi-valued issuers, exp/nbf/iat at the edges of the
 * leeway (on a mocked clock), tokens without exp, oversized tokens, hostile kids, critical
 * headers, key rotation, and a few hundred garbage tokens that must all be plain 401s.
 */
import { describe, test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes, sign as cryptoSign } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { CompactSign } from 'jose'
import { listen, rawRequest } from '../helpers.js'
import {
  assertAccepted, assertProblem, assertRefused, authApp, bearer, craft, DETAIL, encode, get, hmacToken, invalidToken,
  keyPair, newSecret, now, secretKey, sign, type KeyPair
} from './auth-helpers.js'

const SECRET = newSecret(64)
let rsa: KeyPair
let es256: KeyPair
let es384: KeyPair
let es512: KeyPair
let ed25519: KeyPair

before(() => {
  [rsa, es256, es384, es512, ed25519] = [keyPair('rsa'), keyPair('P-256'), keyPair('P-384'), keyPair('P-521'), keyPair('ed25519')]
})

describe('every algorithm verifies with its key type', () => {
  test('HS256, HS384, HS512 with a secret; request.user is the claims, frozen; identity is the sub', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['HS256', 'HS384', 'HS512'], secret: SECRET } }, async (app) => {
      app.get('/frozen', async (request) => ({ frozen: Object.isFrozen(request.user) }))
    })
    t.after(() => app.close())
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const exp = now() + 60
      const token = await sign(secretKey(SECRET), { alg }, { sub: `user-${alg}`, exp, role: 'admin' })
      const response = await get(app, bearer(token))
      assert.equal(response.statusCode, 200, `${alg}: ${response.body}`)
      assert.deepEqual(response.json(), {
        identity: { scheme: 'jwt', id: `user-${alg}` },
        user: { sub: `user-${alg}`, iat: response.json().user.iat, exp, role: 'admin' }
      })
      assert.deepEqual((await get(app, bearer(token), '/frozen')).json(), { frozen: true })
    }
  })

  test('RS256/384/512 and PS256/384/512 with one RSA public key (PEM)', async (t) => {
    const algorithms = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const
    const { app } = await authApp({ jwt: { algorithms: [...algorithms], publicKey: rsa.pem } })
    t.after(() => app.close())
    for (const alg of algorithms) await assertAccepted(app, await sign(rsa.privateKey, { alg }))
  })

  test('ES256, ES384, ES512, each with the key of its curve; EdDSA with Ed25519 (jose) and Ed448 (node:crypto)', async (t) => {
    const ed448 = keyPair('ed448')
    const { app } = await authApp({
      jwt: {
        algorithms: ['ES256', 'ES384', 'ES512', 'EdDSA'],
        publicKey: [es256.pem, es384.pem, es512.pem, ed25519.pem, ed448.pem]
      }
    })
    t.after(() => app.close())
    for (const [alg, key] of [['ES256', es256], ['ES384', es384], ['ES512', es512], ['EdDSA', ed25519]] as const) {
      await assertAccepted(app, await sign(key.privateKey, { alg }))
    }
    const input = `${encode({ alg: 'EdDSA', typ: 'JWT' })}.${encode({ sub: 'ed448-user', exp: now() + 60 })}`
    await assertAccepted(app, `${input}.${cryptoSign(null, Buffer.from(input), ed448.privateKey).toString('base64url')}`, 'ed448-user')
  })

  test('public keys as a JWK object, a JWK JSON string and { kid, key }', async (t) => {
    const { app } = await authApp({
      jwt: {
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        publicKey: [{ ...rsa.jwk, kid: 'rsa-1' }, JSON.stringify({ ...es256.jwk, kid: 'ec-1' }), { kid: 'ed-1', key: ed25519.pem }]
      }
    })
    t.after(() => app.close())
    await assertAccepted(app, await sign(rsa.privateKey, { alg: 'RS256', kid: 'rsa-1' }))
    await assertAccepted(app, await sign(es256.privateKey, { alg: 'ES256', kid: 'ec-1' }))
    await assertAccepted(app, await sign(ed25519.privateKey, { alg: 'EdDSA', kid: 'ed-1' }))
  })

  test('a JWK\'s alg binds the key to that algorithm alone', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['RS256', 'PS256'], publicKey: { ...rsa.jwk, alg: 'PS256' } } })
    t.after(() => app.close())
    await assertAccepted(app, await sign(rsa.privateKey, { alg: 'PS256' }))
    await assertRefused(app, await sign(rsa.privateKey, { alg: 'RS256' }), DETAIL.unknownKey)
  })

  test('a valid token of an algorithm not in the list is refused, whatever the key', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['RS256'], publicKey: rsa.pem } })
    t.after(() => app.close())
    for (const alg of ['RS384', 'RS512', 'PS256']) await assertRefused(app, await sign(rsa.privateKey, { alg }), DETAIL.algorithm)
  })
})

describe('alg: none and unsigned tokens', () => {
  let app: FastifyInstance
  before(async () => { ({ app } = await authApp({ jwt: { algorithms: ['HS256', 'RS256'], secret: SECRET, publicKey: rsa.pem } })) })
  after(() => app.close())

  const payload = () => ({ sub: 'admin', exp: now() + 60 })

  test('none in every spelling, with and without a signature', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE', 'none ', ' none', 'none\u0000', '']) {
      await assertRefused(app, craft({ alg, typ: 'JWT' }, payload()), DETAIL.algorithm)
      await assertRefused(app, craft({ alg }, payload(), 'c2lnbmF0dXJl'), DETAIL.algorithm)
    }
  })

  test('an accepted algorithm with the signature stripped is not signed', async () => {
    const token = await sign(secretKey(SECRET), { alg: 'HS256' })
    await assertRefused(app, token.slice(0, token.lastIndexOf('.') + 1), DETAIL.unsigned)
    const rs = await sign(rsa.privateKey, { alg: 'RS256' })
    await assertRefused(app, rs.slice(0, rs.lastIndexOf('.') + 1), DETAIL.unsigned)
  })

  test('no alg, or one that is not a string', async () => {
    for (const header of [{}, { typ: 'JWT' }, { alg: null }, { alg: 256 }, { alg: ['HS256'] }, { alg: { name: 'HS256' } }, { alg: true }]) {
      await assertRefused(app, craft(header, payload(), 'c2ln'), DETAIL.noAlg)
    }
  })
})

describe('algorithm confusion: the server\'s public key used as an HMAC secret', () => {
  test('RS256 only: an HS256 token "signed" with the public key is refused for its algorithm', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['RS256'], publicKey: rsa.pem } })
    t.after(() => app.close())
    const forged = hmacToken({ alg: 'HS256', typ: 'JWT' }, { sub: 'admin', exp: now() + 60 }, rsa.pem)
    await assertRefused(app, forged, DETAIL.algorithm)
  })

  test('HS256 and RS256 both accepted: the public key is never tried as the secret, in any encoding', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['HS256', 'RS256'], secret: SECRET, publicKey: [{ kid: 'rsa', key: rsa.pem }] } })
    t.after(() => app.close())
    const claims = { sub: 'admin', exp: now() + 60 }
    const der = Buffer.from(rsa.pem.replace(/-----[^-]+-----|\s/g, ''), 'base64')
    for (const key of [rsa.pem, rsa.pem.trim(), JSON.stringify(rsa.jwk), der, String(rsa.jwk.n)]) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        const expected = alg === 'HS256' ? DETAIL.signature : DETAIL.algorithm
        await assertRefused(app, hmacToken({ alg }, claims, key), expected)
        // Naming the RSA key's kid does not make it an HMAC key: the secrets are tried, and fail.
        await assertRefused(app, hmacToken({ alg, kid: 'rsa' }, claims, key), expected)
      }
    }
    // The real keys still work.
    await assertAccepted(app, await sign(secretKey(SECRET), { alg: 'HS256' }))
    await assertAccepted(app, await sign(rsa.privateKey, { alg: 'RS256', kid: 'rsa' }))
  })

  test('an RS256 token cannot be verified with the HMAC secret either', async (t) => {
    const { app } = await authApp({ jwt: { algorithms: ['HS256', 'RS256'], secret: SECRET, publicKey: rsa.pem } })
    t.after(() => app.close())
    const hs = await sign(secretKey(SECRET), { alg: 'HS256' })
    const [, body, signature] = hs.split('.')
    await assertRefused(app, `${encode({ alg: 'RS256' })}.${body}.${signature}`, DETAIL.signature)
  })
})

describe('signatures, segments and encodings', () => {
  let app: FastifyInstance
  before(async () => { ({ app } = await authApp({ jwt: { algorithms: ['HS256', 'ES256'], secret: SECRET, publicKey: es256.pem } })) })
  after(() => app.close())

  test('truncated, extended, bit-flipped and borrowed signatures', async () => {
    for (const alg of ['HS256', 'ES256']) {
      const token = alg === 'HS256' ? await sign(secretKey(SECRET), { alg }) : await sign(es256.privateKey, { alg })
      const other = alg === 'HS256' ? await sign(secretKey(SECRET), { alg }, { sub: 'someone-else' }) : await sign(es256.privateKey, { alg }, { sub: 'someone-else' })
      const [h, p, s] = token.split('.')
      const flip = (text: string, i: number) => text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1)
      for (const signature of [s.slice(0, -1), s.slice(0, -4), s.slice(0, 10), `${s}AAAA`, flip(s, 0), flip(s, s.length - 2), other.split('.')[2], 'A']) {
        await assertRefused(app, `${h}.${p}.${signature}`, DETAIL.signature)
      }
      // The payload of another token under this signature.
      await assertRefused(app, `${h}.${other.split('.')[1]}.${s}`, DETAIL.signature)
    }
  })

  test('re-encoded: another spelling of the same bytes (non-canonical last character) is refused', async () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    /** The segment with its padding bits set: different text, same bytes once decoded. */
    const respell = (segment: string) => segment.slice(0, -1) + alphabet[alphabet.indexOf(segment.at(-1)!) | 1]
    let respelled = 0
    for (const alg of ['HS256', 'ES256']) {
      const token = alg === 'HS256' ? await sign(secretKey(SECRET), { alg }, { sub: 'abcde' }) : await sign(es256.privateKey, { alg }, { sub: 'abcde' })
      const [h, p, s] = token.split('.')
      assert.notEqual(s.length % 4, 0)
      assert.deepEqual(Buffer.from(respell(s), 'base64url'), Buffer.from(s, 'base64url'), 'the same signature bytes')
      await assertRefused(app, `${h}.${p}.${respell(s)}`, DETAIL.signature)
      for (const segment of [h, p].filter((x) => x.length % 4 !== 0)) {
        await assertRefused(app, token.replace(segment, respell(segment)), DETAIL.encoding)
        respelled++
      }
      // A length no base64 text has (4n + 1).
      await assertRefused(app, `${h}.${p}.${s.slice(0, s.length - (s.length % 4))}A`, DETAIL.signature)
    }
    assert.ok(respelled > 0, 'a header or payload was respelled')
  })

  test('re-encoded: base64 instead of base64url, padding, whitespace and dots', async () => {
    const token = await sign(secretKey(SECRET), { alg: 'HS256' }, { sub: 'a'.repeat(7) })
    const [h, p, s] = token.split('.')
    const b64 = (text: string) => Buffer.from(text, 'base64url').toString('base64')
    for (const bad of [
      `${b64(h)}.${b64(p)}.${b64(s)}`, `${h}=.${p}.${s}`, `${h}.${p}==.${s}`, `${h}.${p}.${s}=`, `${h}.${p}.${b64(s)}`,
      `${h} .${p}.${s}`, `${h}.${p} .${s}`, `${h}.${p}.${s.slice(0, 5)} ${s.slice(5)}`, `${h}.${p}.${s}\t`,
      `${h}.${p}.${s}.`, `.${h}.${p}.${s}`, `${h}..${p}.${s}`, `${h}.${p}.${s}.${s}`, `${h}.${p}`, h, `${h}.`, `.${p}.`, '..', '.', '',
      `${h}.${p}.${s}`.replace(/./, '%'), encodeURIComponent(`${h}+/.${p}.${s}`)
    ]) {
      await assertRefused(app, bad, DETAIL.shape)
    }
  })

  test('segments that are not JSON objects', async () => {
    const exp = now() + 60
    for (const header of ['hello', '{"alg":"HS256"', '[]', '["HS256"]', 'null', '42', '"HS256"', 'true', '\u0000\u0001']) {
      await assertRefused(app, `${encode(header)}.${encode({ exp })}.c2ln`, DETAIL.header)
    }
    for (const payload of ['hello', '{"sub":', '[]', '[1,2]', 'null', '42', '"admin"', 'true', '\u00ff\u00fe']) {
      const token = hmacToken({ alg: 'HS256' }, payload, SECRET)
      // The payload is decoded before the signature is checked: malformed, whoever signed it.
      await assertRefused(app, token, DETAIL.payload)
    }
  })

  test('a correctly signed token whose payload is a JSON object with odd values is judged on its claims', async () => {
    await assertRefused(app, hmacToken({ alg: 'HS256' }, { exp: 'tomorrow' }, SECRET), DETAIL.claimType)
    await assertRefused(app, hmacToken({ alg: 'HS256' }, { exp: now() + 60, nbf: null }, SECRET), DETAIL.claimType)
    await assertRefused(app, hmacToken({ alg: 'HS256' }, { exp: now() + 60, iat: '1700000000' }, SECRET), DETAIL.claimType)
    await assertRefused(app, hmacToken({ alg: 'HS256' }, { exp: [now() + 60] }, SECRET), DETAIL.claimType)
    // __proto__ in the claims stays a plain own property and changes nothing.
    const response = await get(app, bearer(hmacToken({ alg: 'HS256' }, JSON.parse(`{"sub":"p","exp":${now() + 60},"__proto__":{"admin":true}}`), SECRET)))
    assert.equal(response.statusCode, 200)
    assert.equal(response.json().identity.id, 'p')
  })

  test('critical headers this server does not understand', async () => {
    for (const crit of [['exp'], ['b64'], [], 'b64']) {
      await assertRefused(app, hmacToken({ alg: 'HS256', crit, b64: false }, { exp: now() + 60 }, SECRET), DETAIL.crit)
    }
  })

  test('the Authorization header: scheme case, spaces, other schemes, an empty token', async () => {
    const token = await sign(secretKey(SECRET), { alg: 'HS256' })
    for (const authorization of [`bearer ${token}`, `BEARER ${token}`, `Bearer   ${token}`]) {
      assert.equal((await get(app, { authorization })).statusCode, 200, authorization)
    }
    for (const authorization of [`Basic ${token}`, `Token ${token}`, token, `Bearer\t${token}`, `Bearer:${token}`, `Bearer-${token}`, 'Digest x', '']) {
      assertProblem(await get(app, { authorization }), 401, DETAIL.notBearer, 'Bearer')
    }
    for (const authorization of ['Bearer', 'Bearer ', `Bearer ${token} ${token}`, `Bearer ${token},Bearer ${token}`]) {
      assertProblem(await get(app, { authorization }), 401, DETAIL.shape, invalidToken(DETAIL.shape))
    }
    assertProblem(await get(app), 401, DETAIL.missingJwt, 'Bearer')
  })
})

describe('claims: audience, issuer, required claims', () => {
  let app: FastifyInstance
  before(async () => {
    ({ app } = await authApp({
      jwt: { secret: SECRET, audience: ['api://orders', 'api://billing'], issuer: ['https://id.example', 'https://id2.example'], requiredClaims: ['exp', 'sub'] }
    }))
  })
  after(() => app.close())
  const key = () => secretKey(SECRET)
  const ok = { aud: 'api://orders', iss: 'https://id.example' }

  test('audience: one of the accepted, or a list containing one', async () => {
    await assertAccepted(app, await sign(key(), { alg: 'HS256' }, ok))
    await assertAccepted(app, await sign(key(), { alg: 'HS256' }, { ...ok, aud: ['api://other', 'api://billing'] }))
    for (const aud of ['api://other', ['api://other', 'api://x'], [], 'API://ORDERS', 'api://orders ', 42, [42], null, { aud: 'api://orders' }]) {
      await assertRefused(app, await sign(key(), { alg: 'HS256' }, { ...ok, aud: aud as string }), DETAIL.audience)
    }
  })

  test('issuer: exactly one string, one of the accepted; several values fail even if one matches', async () => {
    await assertAccepted(app, await sign(key(), { alg: 'HS256' }, { ...ok, iss: 'https://id2.example' }))
    for (const iss of [['https://id.example'], ['https://id.example', 'https://id2.example'], 'https://evil.example', 'https://id.example/', null, 7]) {
      await assertRefused(app, await sign(key(), { alg: 'HS256' }, { ...ok, iss: iss as string }), DETAIL.issuer)
    }
  })

  test('required claims: exp by default, and the configured ones', async () => {
    await assertRefused(app, await sign(key(), { alg: 'HS256' }, { ...ok, exp: null }), DETAIL.missingExp)
    await assertRefused(app, await sign(key(), { alg: 'HS256' }, { ...ok, sub: null }), 'The token lacks the required claim sub')
  })

  test('the signature is judged before the claims: a forgery with wrong claims learns only "invalid signature"', async () => {
    const token = await sign(secretKey(newSecret(64)), { alg: 'HS256' }, { aud: 'nope', iss: 'nope', exp: now() - 3600 })
    await assertRefused(app, token, DETAIL.signature)
  })
})

describe('time: exp, nbf and iat at the edges of the leeway (mocked clock)', () => {
  const T = Math.floor(Date.now() / 1000) * 1000 + 1_000_000
  const at = (seconds: number) => T / 1000 + seconds

  test('leeway 5s: exp, nbf and iat each accepted exactly up to the edge, refused one second past it', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: T })
    const { app } = await authApp({ jwt: { secret: SECRET, leeway: '5s' } })
    t.after(() => app.close())
    const key = secretKey(SECRET)
    await assertAccepted(app, await sign(key, { alg: 'HS256' }, { exp: at(-5) }))
    await assertRefused(app, await sign(key, { alg: 'HS256' }, { exp: at(-6) }), DETAIL.expired)
    await assertAccepted(app, await sign(key, { alg: 'HS256' }, { nbf: at(5) }))
    await assertRefused(app, await sign(key, { alg: 'HS256' }, { nbf: at(6) }), DETAIL.notYetValid)
    await assertAccepted(app, await sign(key, { alg: 'HS256' }, { iat: at(5) }))
    await assertRefused(app, await sign(key, { alg: 'HS256' }, { iat: at(6) }), DETAIL.notYetValid)
  })

  test('a cached token stops being accepted the moment it expires; a not-yet-valid one starts at nbf', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: T })
    const { app } = await authApp({ jwt: { secret: SECRET } }, async (app) => {
      let first: unknown
      app.get('/same', async (request) => {
        const same = first === request.user
        first ??= request.user
        return { same }
      })
    })
    t.after(() => app.close())
    const key = secretKey(SECRET)
    const token = await sign(key, { alg: 'HS256' }, { iat: at(-10), exp: at(2) })
    assert.deepEqual((await get(app, bearer(token), '/same')).json(), { same: false })
    // Verified once, then served from the cache: the very same claims object.
    assert.deepEqual((await get(app, bearer(token), '/same')).json(), { same: true })
    t.mock.timers.tick(2000)
    await assertAccepted(app, token)
    t.mock.timers.tick(1)
    await assertRefused(app, token, DETAIL.expired)

    const later = await sign(key, { alg: 'HS256' }, { nbf: at(10), exp: at(60) })
    await assertRefused(app, later, DETAIL.notYetValid)
    t.mock.timers.tick(7999)
    await assertAccepted(app, later)
  })

  test('a token that ends like a cached one but differs before is verified, not served from the cache', async (t) => {
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    const token = await sign(secretKey(SECRET), { alg: 'HS256' }, { sub: 'user-1', exp: now() + 60 })
    await assertAccepted(app, token)
    // Another payload (sub user-2) under the cached token's signature: the cache is keyed by
    // the signature's end, and only the whole token may hit it.
    const [header, , signature] = token.split('.')
    const payload = Buffer.from(JSON.stringify({ sub: 'user-2', exp: now() + 60 })).toString('base64url')
    await assertRefused(app, `${header}.${payload}.${signature}`, DETAIL.signature)
    await assertAccepted(app, token)
  })

  test('without leeway, a token is refused the millisecond after its exp', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: T })
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    const token = await sign(secretKey(SECRET), { alg: 'HS256' }, { iat: at(-1), exp: at(0) })
    await assertAccepted(app, token)
    t.mock.timers.tick(1)
    await assertRefused(app, token, DETAIL.expired)
  })

  test('requiredClaims without exp accepts tokens that never expire, and warns at startup', async (t) => {
    const { app, logs } = await authApp({ jwt: { secret: SECRET, requiredClaims: [] } })
    t.after(() => app.close())
    await assertAccepted(app, await sign(secretKey(SECRET), { alg: 'HS256' }, { exp: null }))
    assert.ok(logs.some((l) => l.level === 40 && /requiredClaims does not include exp/.test(l.msg)))
  })
})

describe('oversized tokens and headers', () => {
  test('a token over 16 KiB is refused before decoding; a large valid one under it is fine', async (t) => {
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    await assertRefused(app, 'a'.repeat(16 * 1024 + 1), DETAIL.tooLarge)
    await assertRefused(app, `${'a'.repeat(10_000)}.${'b'.repeat(10_000)}.c`, DETAIL.tooLarge)
    await assertRefused(app, craft({ alg: 'HS256' }, { pad: 'x'.repeat(1_000_000) }, 'c2ln'), DETAIL.tooLarge)
    await assertAccepted(app, await sign(secretKey(SECRET), { alg: 'HS256' }, { groups: Array.from({ length: 400 }, (_, i) => `group-${i}`) }))
  })

  test('headers past Node\'s limit are a 431 over a real socket, not a 5xx', async (t) => {
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    const { port } = await listen(app)
    const response = await rawRequest(port, `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(70_000)}\r\n\r\n`)
    assert.equal(response.status, 431)
  })

  test('two Authorization headers are refused (Node would keep the first one only)', async (t) => {
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    const { port } = await listen(app)
    const token = await sign(secretKey(SECRET), { alg: 'HS256' })
    const response = await rawRequest(port, `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
    assert.equal(response.status, 401)
    assert.equal(JSON.parse(response.body).detail, 'The request has more than one Authorization header')
    assert.equal(response.headers['www-authenticate'], 'Bearer error="invalid_request", error_description="The request has more than one Authorization header"')
    const once = await rawRequest(port, `GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`)
    assert.equal(once.status, 200)
  })
})

describe('kid: selection, unknown and hostile values', () => {
  const OLD = newSecret(64)
  const NEW = newSecret(64)

  test('rotation without kids: each secret is tried in turn, the next one only after a signature mismatch', async (t) => {
    const { app } = await authApp({ jwt: { secret: [NEW, OLD] } })
    t.after(() => app.close())
    await assertAccepted(app, await sign(secretKey(NEW), { alg: 'HS256' }))
    await assertAccepted(app, await sign(secretKey(OLD), { alg: 'HS256' }))
    await assertRefused(app, await sign(secretKey(newSecret(64)), { alg: 'HS256' }), DETAIL.signature)
    // Expired under the second key: the first key's mismatch led on to it, and it says "expired".
    await assertRefused(app, await sign(secretKey(OLD), { alg: 'HS256' }, { exp: now() - 60 }), DETAIL.expired)
  })

  test('rotation with kids: the kid picks the key; a kid of nothing is an unknown key', async (t) => {
    const { app } = await authApp({ jwt: { secret: [{ kid: '2025-01', key: OLD }, { kid: '2025-06', key: NEW }] } })
    t.after(() => app.close())
    await assertAccepted(app, await sign(secretKey(NEW), { alg: 'HS256', kid: '2025-06' }))
    await assertAccepted(app, await sign(secretKey(OLD), { alg: 'HS256', kid: '2025-01' }))
    await assertRefused(app, await sign(secretKey(OLD), { alg: 'HS256', kid: '2025-06' }), DETAIL.signature)
    await assertRefused(app, await sign(secretKey(NEW), { alg: 'HS256', kid: '2024-12' }), DETAIL.unknownKey)
    // No kid: every key is tried.
    await assertAccepted(app, await sign(secretKey(OLD), { alg: 'HS256' }))
  })

  test('RSA rotation: two public keys active at once', async (t) => {
    const next = keyPair('rsa')
    const { app } = await authApp({ jwt: { algorithms: ['RS256'], publicKey: [next.pem, rsa.pem] } })
    t.after(() => app.close())
    await assertAccepted(app, await sign(rsa.privateKey, { alg: 'RS256' }))
    await assertAccepted(app, await sign(next.privateKey, { alg: 'RS256' }))
    await assertAccepted(app, await sign(next.privateKey, { alg: 'RS256', kid: 'anything' }))
  })

  test('hostile kids: paths, injections, prototype names, huge and non-string values', async (t) => {
    const { app } = await authApp({ jwt: { secret: [{ kid: 'k1', key: NEW }] } })
    t.after(() => app.close())
    const { app: kidless } = await authApp({ jwt: { secret: NEW } })
    t.after(() => kidless.close())
    const attacker = secretKey(newSecret(64))
    for (const kid of ['../../../../etc/passwd', '/dev/null', '\' OR 1=1 --', '"; DROP TABLE keys; --', '__proto__', 'constructor',
      // eslint-disable-next-line no-template-curly-in-string -- a literal ${...} as a kid
      'toString', 'hasOwnProperty', '', '\u0000', 'k1\u0000', 'K1', ' k1', '${jndi:ldap://x}', 'https://evil.example/key', 'k'.repeat(256)]) {
      await assertRefused(app, await sign(attacker, { alg: 'HS256', kid }), DETAIL.unknownKey)
      await assertRefused(kidless, await sign(attacker, { alg: 'HS256', kid }), DETAIL.signature)
      await assertAccepted(kidless, await sign(secretKey(NEW), { alg: 'HS256', kid }))
    }
    for (const kid of ['k'.repeat(257), 1, null, ['k1'], { kid: 'k1' }, true]) {
      await assertRefused(app, craft({ alg: 'HS256', kid }, { exp: now() + 60 }, 'c2ln'), DETAIL.kid)
    }
  })
})

describe('caller identity without sub', () => {
  test('iss + jti: a stable digest; neither: a digest of the token; never the token', async (t) => {
    const { app } = await authApp({ jwt: { secret: SECRET } })
    t.after(() => app.close())
    const key = secretKey(SECRET)
    const a = await sign(key, { alg: 'HS256' }, { sub: null, iss: 'https://id.example', jti: 'j-1' })
    const b = await sign(key, { alg: 'HS256' }, { sub: null, iss: 'https://id.example', jti: 'j-1', extra: 1 })
    const c = await sign(key, { alg: 'HS256' }, { sub: null, iss: 'https://id.example', jti: 'j-2' })
    const ids = await Promise.all([a, b, c].map(async (token) => (await get(app, bearer(token))).json().identity))
    assert.equal(ids[0].id, `~${createHash('sha256').update('jti\0https://id.example\0j-1').digest('hex').slice(0, 16)}`)
    assert.equal(ids[0].id, ids[1].id)
    assert.notEqual(ids[0].id, ids[2].id)
    const bare = await sign(key, { alg: 'HS256' }, { sub: null })
    const id = (await get(app, bearer(bare))).json().identity.id
    assert.equal(id, `~${createHash('sha256').update(`token\0${bare}`).digest('hex').slice(0, 16)}`)
    assert.equal((await get(app, bearer(await sign(key, { alg: 'HS256' }, { sub: '' })))).json().identity.id.startsWith('~'), true)
  })
})

test('fuzz: hundreds of garbage tokens and Authorization headers all get a 401 problem, never a 5xx', async (t) => {
  const { app, logs } = await authApp({ jwt: { algorithms: ['HS256', 'RS256', 'ES256'], secret: SECRET, publicKey: [rsa.pem, es256.pem], audience: 'api' } })
  t.after(() => app.close())
  const valid = await sign(secretKey(SECRET), { alg: 'HS256' }, { aud: 'api' })
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]
  const chars = (n: number, alphabet: string) => Array.from({ length: n }, () => pick([...alphabet])).join('')
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const JUNK = `${B64URL}.=+/ \t!"#$%&'()*,:;<>?@[\\]^\`{|}~é漢\u0000\u007f`
  const jsons = ['{}', '[]', 'null', '{"alg":"HS256"}', '{"alg":"RS256","kid":"x"}', '{"alg":"ES256"}', '{"alg":"none"}', '{"alg":"HS256","crit":["x"]}', '{"alg":{"$ne":1}}', '{"alg":"HS256","jku":"http://127.0.0.1:1/"}', '{"exp":1e400}', '{"exp":-1}', '{"aud":"api","exp":9999999999}', '"x"', '1e999', '{"a":' + '['.repeat(500) + ']'.repeat(500) + '}']
  const tokens: string[] = []
  for (let i = 0; i < 120; i++) tokens.push(chars(1 + Math.floor(random() * 300), JUNK))
  for (let i = 0; i < 120; i++) tokens.push([0, 1, 2].map(() => chars(Math.floor(random() * 80), B64URL)).join('.'))
  for (let i = 0; i < 80; i++) tokens.push(`${encode(pick(jsons))}.${encode(pick(jsons))}.${chars(Math.floor(random() * 90), B64URL)}`)
  for (let i = 0; i < 80; i++) {
    const position = Math.floor(random() * valid.length)
    tokens.push(valid.slice(0, position) + pick([...JUNK]) + valid.slice(position + 1))
  }
  tokens.push(randomBytes(3000).toString('latin1'), '.'.repeat(5000), 'a.'.repeat(4000), '\u0000'.repeat(100))
  let checked = 0
  for (const token of tokens) {
    if (token === valid) continue
    for (const authorization of [`Bearer ${token}`, token]) {
      let response
      try {
        response = await app.inject({ method: 'GET', url: '/me', headers: { authorization } })
      } catch {
        continue // a value no HTTP request could carry (light-my-request refuses it)
      }
      assert.equal(response.statusCode, 401, `${JSON.stringify(authorization).slice(0, 200)} -> ${response.statusCode} ${response.body}`)
      assert.equal(response.json().status, 401)
      assert.ok(response.headers['www-authenticate'] !== undefined)
      checked++
    }
  }
  assert.ok(checked > 700, `only ${checked} requests checked`)
  assert.equal(logs.filter((l) => l.level >= 50).length, 0, 'no error was logged')
  assert.equal((await get(app, bearer(valid))).statusCode, 200, 'the server still serves')
})

test('time claims that are not finite (1e400 parses as Infinity) or beyond any Date are malformed, and never remembered; fractions are fine', async (t) => {
  const { app } = await authApp({ jwt: { secret: SECRET } })
  t.after(() => app.close())
  // jose signs the payload bytes as given: JSON.stringify would write Infinity as null.
  const signRaw = async (payload: string): Promise<string> =>
    await new CompactSign(new TextEncoder().encode(payload)).setProtectedHeader({ alg: 'HS256' }).sign(secretKey(SECRET))
  const n = now()
  const hostile = [
    '{"sub":"user-1","exp":1e400}',
    '{"sub":"user-1","exp":-1e400}',
    `{"sub":"user-1","exp":${n + 60},"nbf":-1e400}`,
    `{"sub":"user-1","exp":${n + 60},"nbf":1e400}`,
    `{"sub":"user-1","exp":${n + 60},"iat":-1e400}`,
    `{"sub":"user-1","exp":${n + 60},"iat":1e400}`,
    // Finite, but past the last instant a Date can hold (8.64e15 ms): no meaningful time.
    '{"sub":"user-1","exp":1e300}',
    '{"sub":"user-1","exp":-1e300}',
    `{"sub":"user-1","exp":${n + 60},"nbf":1e300}`,
    `{"sub":"user-1","exp":${n + 60},"nbf":-8640000000001}`,
    `{"sub":"user-1","exp":${n + 60},"iat":-1e300}`
  ]
  for (const payload of hostile) {
    const token = await signRaw(payload)
    // Twice: the second answer comes after any caching (ours and fast-jwt's).
    for (let i = 0; i < 2; i++) {
      const response = await get(app, bearer(token))
      assert.equal(response.json().detail, DETAIL.claimType, `${payload} (try ${i + 1}): ${response.body}`)
      assertProblem(response, 401, DETAIL.claimType, invalidToken(DETAIL.claimType))
    }
  }
  // RFC 7519 NumericDate: fractions are allowed; the edge of the Date range too.
  await assertAccepted(app, await signRaw(`{"sub":"user-1","iat":${n - 0.5},"nbf":${n - 1.25},"exp":${n + 60.75}}`))
  await assertAccepted(app, await signRaw('{"sub":"user-1","exp":8640000000000}'))
})
