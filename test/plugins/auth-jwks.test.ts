/**
 * JWKS: keys served by a local HTTP server on 127.0.0.1, whose fetches are counted. Fetched
 * once at startup and cached; an unknown kid refetches, at most once per 30 s however many
 * forged kids arrive (the clock is mocked); an old set is refreshed in the background;
 * a fetch that fails keeps the known keys; keys of other uses and types are skipped; `jku`,
 * `x5u`, `jwk` and `x5c` headers are never fetched nor trusted; close() aborts a fetch.
 */
import { describe, test, before, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { FastifyBaseLogger } from 'fastify'
import { until, withTimeout } from '../helpers.js'
import { JwksKeySet, MAX_AGE_MS, MIN_REFRESH_MS } from '../../plugins/auth/jwks.js'
import { assertAccepted, assertRefused, authApp, craft, DETAIL, keyPair, now, newSecret, secretKey, sign, type KeyPair } from './auth-helpers.js'

interface JwksServer { url: string, hits: () => number, serve: (handler: http.RequestListener) => void, close: () => Promise<void> }

/** An HTTP server on 127.0.0.1 counting its requests; `serve` changes what it answers. */
async function server (handler: http.RequestListener): Promise<JwksServer> {
  let hits = 0
  let current = handler
  const s = http.createServer((request, response) => { hits++; current(request, response) })
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    hits: () => hits,
    serve: (h) => { current = h },
    close: async () => { s.closeAllConnections(); await new Promise((resolve) => s.close(resolve)) }
  }
}

const json = (body: unknown): http.RequestListener => (_request, response) => {
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

let k1: KeyPair
let k2: KeyPair
let ec: KeyPair
before(() => { [k1, k2, ec] = [keyPair('rsa'), keyPair('rsa'), keyPair('P-256')] })

async function setup (t: TestContext, keys: unknown[], jwt: Record<string, unknown> = {}) {
  const jwks = await server(json({ keys }))
  t.after(() => jwks.close())
  const { app, logs } = await authApp({ jwt: { algorithms: ['RS256'], jwksUrl: `${jwks.url}/.well-known/jwks.json`, ...jwt } })
  t.after(() => app.close())
  await app.ready()
  // Fetched as the server starts, without holding up ready().
  await until(() => jwks.hits() > 0, 'the startup fetch')
  // A kid nobody has waits for the fetch under way (and, within the floor, starts none).
  await assertRefused(app, craft({ alg: 'RS256', kid: 'probe' }, { exp: now() + 60 }, 'c2ln'), DETAIL.unknownKey)
  assert.equal(jwks.hits(), 1)
  return { app, logs, jwks }
}

describe('fetching and caching', () => {
  test('fetched once at startup; every later token is verified from the cache', async (t) => {
    const { app, jwks } = await setup(t, [{ ...k1.jwk, kid: 'k1', use: 'sig', alg: 'RS256' }])
    assert.equal(jwks.hits(), 1)
    for (let i = 0; i < 20; i++) await assertAccepted(app, await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' }, { sub: `user-${i}` }), `user-${i}`)
    // A token without kid is tried against the set's keys.
    await assertAccepted(app, await sign(k1.privateKey, { alg: 'RS256' }))
    await assertRefused(app, await sign(k2.privateKey, { alg: 'RS256' }), DETAIL.signature)
    assert.equal(jwks.hits(), 1)
  })

  test('an unknown kid refetches, at most once per 30 s; a removed key stops verifying', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const { app, jwks } = await setup(t, [{ ...k1.jwk, kid: 'k1' }])
    const token1 = await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' })
    await assertAccepted(app, token1)
    const token2 = await sign(k2.privateKey, { alg: 'RS256', kid: 'k2' })
    // Rotated at the issuer right after our startup fetch: within the floor, not refetched yet.
    jwks.serve(json({ keys: [{ ...k1.jwk, kid: 'k1' }, { ...k2.jwk, kid: 'k2' }] }))
    await assertRefused(app, token2, DETAIL.unknownKey)
    assert.equal(jwks.hits(), 1)
    t.mock.timers.tick(MIN_REFRESH_MS)
    await assertAccepted(app, token2)
    assert.equal(jwks.hits(), 2)

    // A flood of forged kids: no fetch within the floor, then one, then none again.
    const forged = async (kid: string) => await sign(k2.privateKey, { alg: 'RS256', kid })
    for (let i = 0; i < 30; i++) await assertRefused(app, await forged(`forged-${i}`), DETAIL.unknownKey)
    assert.equal(jwks.hits(), 2)
    t.mock.timers.tick(MIN_REFRESH_MS)
    jwks.serve(json({ keys: [{ ...k2.jwk, kid: 'k2' }] }))
    await Promise.all(Array.from({ length: 10 }, async (_, i) => await assertRefused(app, await forged(`again-${i}`), DETAIL.unknownKey)))
    assert.equal(jwks.hits(), 3, 'concurrent unknown kids share one fetch')
    // k1 left the set with that fetch: even a token verified (and remembered) before is refused now.
    await assertRefused(app, token1, DETAIL.unknownKey)
    await assertRefused(app, await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' }), DETAIL.unknownKey)
    await assertAccepted(app, token2)
  })

  test('a set older than 10 minutes is refreshed in the background, the request served meanwhile', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const { app, jwks } = await setup(t, [{ ...k1.jwk, kid: 'k1' }])
    const token1 = await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' })
    await assertAccepted(app, token1)
    t.mock.timers.tick(MAX_AGE_MS + 1)
    jwks.serve(json({ keys: [{ ...k1.jwk, kid: 'k1' }, { ...k2.jwk, kid: 'k2' }] }))
    await assertAccepted(app, token1)
    await until(() => jwks.hits() === 2, 'the background refresh')
    // The new key arrives with it (a token of k2 waits for the refresh under way, if any).
    await assertAccepted(app, await sign(k2.privateKey, { alg: 'RS256', kid: 'k2' }))
    assert.equal(jwks.hits(), 2)
  })

  test('failures keep the keys already known and are logged; no 5xx; recovery after the floor', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const { app, jwks, logs } = await setup(t, [{ ...k1.jwk, kid: 'k1' }])
    const token1 = await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' })
    const failures: http.RequestListener[] = [
      (_q, r) => { r.writeHead(500).end('oops') },
      (_q, r) => { r.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [') },
      json({ nokeys: true }),
      json({ keys: 'no' }),
      (_q, r) => { r.writeHead(302, { location: '/elsewhere' }).end() },
      (_q, r) => { r.writeHead(200).end(JSON.stringify({ keys: [], pad: 'x'.repeat(600 * 1024) })) }
    ]
    for (const failure of failures) {
      jwks.serve(failure)
      t.mock.timers.tick(MIN_REFRESH_MS)
      await assertRefused(app, await sign(k2.privateKey, { alg: 'RS256', kid: 'k2' }), DETAIL.unknownKey)
      await assertAccepted(app, token1)
    }
    assert.equal(jwks.hits(), 1 + failures.length)
    const errors = logs.filter((l) => l.msg === 'spikard-auth: cannot fetch the JWKS; keeping the keys already known')
    assert.equal(errors.length, failures.length)
    assert.ok(errors.every((l) => l.level === 50 && l.jwksUrl === `${jwks.url}/.well-known/jwks.json`))
    jwks.serve(json({ keys: [{ ...k2.jwk, kid: 'k2' }] }))
    t.mock.timers.tick(MIN_REFRESH_MS)
    await assertAccepted(app, await sign(k2.privateKey, { alg: 'RS256', kid: 'k2' }))
  })

  test('unreachable at startup: the server starts, tokens get 401, the keys arrive once the issuer answers', async (t) => {
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const jwks = await server((request) => { request.socket.destroy() })
    t.after(() => jwks.close())
    // A key in the URL's query (some issuers want one) is masked in the log.
    const { app, logs } = await authApp({ jwt: { algorithms: ['RS256'], jwksUrl: `${jwks.url}/keys?tenant=t1&api_key=s3cr3t-value` } })
    t.after(() => app.close())
    await app.ready()
    await until(() => jwks.hits() > 0, 'the startup fetch')
    const token = await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' })
    await assertRefused(app, token, DETAIL.unknownKey)
    await assertRefused(app, await sign(k1.privateKey, { alg: 'RS256' }), DETAIL.unknownKey)
    assert.equal(jwks.hits(), 1)
    assert.equal(logs.filter((l) => l.level === 50).length, 1)
    assert.equal(logs.find((l) => l.level === 50)?.jwksUrl, `${jwks.url}/keys?tenant=t1&api_key=[REDACTED]`)
    assert.ok(!JSON.stringify(logs).includes('s3cr3t-value'))
    jwks.serve(json({ keys: [{ ...k1.jwk, kid: 'k1' }] }))
    t.mock.timers.tick(MIN_REFRESH_MS)
    await assertAccepted(app, token)
  })
})

describe('what a JWKS may hold', () => {
  test('encryption keys, symmetric keys, private keys, other types and other algorithms are skipped', async (t) => {
    const { app } = await setup(t, [
      { ...k1.jwk, kid: 'enc', use: 'enc' },
      { kty: 'oct', kid: 'oct', k: Buffer.from(newSecret(64)).toString('base64url') },
      { ...ec.jwk, kid: 'ec' },
      { ...k1.jwk, kid: 'ps', alg: 'PS256' },
      { kty: 'RSA', kid: 'broken', n: 'AQAB', e: 'AQAB' },
      { ...k1.privateKey.export({ format: 'jwk' }), kid: 'private' },
      'not a key', null, [],
      { ...k2.jwk, kid: 'good' }
    ])
    for (const kid of ['enc', 'ps', 'private']) await assertRefused(app, await sign(k1.privateKey, { alg: 'RS256', kid }), DETAIL.unknownKey)
    await assertRefused(app, await sign(ec.privateKey, { alg: 'ES256', kid: 'ec' }), DETAIL.algorithm)
    await assertAccepted(app, await sign(k2.privateKey, { alg: 'RS256', kid: 'good' }))
    // An HS token "signed" with the JWKS's symmetric key is refused for its algorithm.
    await assertRefused(app, await sign(secretKey(newSecret(64)), { alg: 'HS256', kid: 'oct' }), DETAIL.algorithm)
  })

  test('static keys and a JWKS together: a static kid wins, a kid-less static key backs unknown kids', async (t) => {
    const { app, jwks } = await setup(t, [{ ...k1.jwk, kid: 'k1' }], { algorithms: ['RS256', 'ES256'], publicKey: ec.pem })
    await assertAccepted(app, await sign(k1.privateKey, { alg: 'RS256', kid: 'k1' }))
    await assertAccepted(app, await sign(ec.privateKey, { alg: 'ES256', kid: 'whatever' }))
    await assertAccepted(app, await sign(ec.privateKey, { alg: 'ES256' }))
    assert.equal(jwks.hits(), 1)
  })
})

describe('headers that point at keys are never followed', () => {
  test('jku, x5u, jwk and x5c: no fetch, no trust, 401', async (t) => {
    const attacker = keyPair('rsa')
    const evil = await server(json({ keys: [{ ...attacker.jwk, kid: 'k1' }] }))
    t.after(() => evil.close())
    const { app, jwks } = await setup(t, [{ ...k1.jwk, kid: 'k1' }])
    const { app: fixed } = await authApp({ jwt: { algorithms: ['RS256'], publicKey: k1.pem } })
    t.after(() => fixed.close())
    const certificate = Buffer.from('not really a certificate').toString('base64')
    const headers = [
      { jku: `${evil.url}/jwks.json` }, { x5u: `${evil.url}/cert.pem` }, { jwk: attacker.jwk }, { x5c: [certificate] },
      { jku: `${evil.url}/jwks.json`, kid: 'k1' }, { x5u: `${evil.url}/cert.pem`, kid: 'k1' }, { jwk: { ...attacker.jwk, kid: 'k1' }, kid: 'k1' }
    ]
    for (const extra of headers) {
      const token = await sign(attacker.privateKey, { alg: 'RS256', ...extra } as never)
      // Verified, if at all, with the configured keys only: the signature is the attacker's.
      await assertRefused(app, token, DETAIL.signature)
      await assertRefused(fixed, token, DETAIL.signature)
    }
    assert.equal(evil.hits(), 0, 'the attacker\'s server was never asked')
    assert.equal(jwks.hits(), 1)
  })
})

test('a fetch that fails says why in the log: a redirect, a refused connection', async (t) => {
  const redirecting = await server((_q, r) => { r.writeHead(302, { location: '/elsewhere' }).end() })
  t.after(() => redirecting.close())
  // A port nothing listens on: one a server just released.
  const gone = await server(() => {})
  await gone.close()
  const errors: unknown[] = []
  const log = { error: (fields: { error: string }) => errors.push(fields.error), warn () {}, debug () {} } as unknown as FastifyBaseLogger
  for (const url of [redirecting.url, gone.url]) {
    const set = new JwksKeySet(url, ['RS256'], 0, log)
    await set.load()
    set.close()
  }
  // fetch() alone says "fetch failed", whatever went wrong.
  assert.deepEqual(errors, ['fetch failed: unexpected redirect', `fetch failed: connect ECONNREFUSED ${gone.url.slice('http://'.length)}`])
})

test('an issuer that never answers is given up on after 5 s, garbage collection or not', async (t) => {
  // On Node 20, AbortSignal.timeout() inside AbortSignal.any() could be collected before it
  // fired (nodejs/node#57736): the fetch then waited forever, and no refresh ever ran again.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const hanging = await server(() => { /* never answers */ })
  t.after(() => hanging.close())
  const errors: unknown[] = []
  const log = { error: (fields: { error: string }) => errors.push(fields.error), warn () {}, debug () {} } as unknown as FastifyBaseLogger
  const set = new JwksKeySet(hanging.url, ['RS256'], 0, log)
  t.after(() => set.close())
  const load = set.load()
  await until(() => hanging.hits() > 0, 'the fetch')
  gc()
  await withTimeout(load, 8000, 'the fetch to time out')
  assert.deepEqual(errors, ['The operation was aborted due to timeout'])
})

test('close() aborts a fetch under way', async (t) => {
  const hanging = await server(() => { /* never answers */ })
  t.after(() => hanging.close())
  const errors: unknown[] = []
  const log = { error: (...args: unknown[]) => errors.push(args), warn () {}, debug () {} } as unknown as FastifyBaseLogger
  const set = new JwksKeySet(hanging.url, ['RS256'], 0, log)
  const started = Date.now()
  const load = set.load()
  await until(() => hanging.hits() > 0, 'the fetch')
  set.close()
  await load
  assert.ok(Date.now() - started < 2000, 'the fetch was not aborted')
  assert.deepEqual(errors, [], 'an aborted fetch is not an error')
  assert.equal(set.all().length, 0)
})

test('the first fetch does not hold up startup, and close() aborts it', async (t) => {
  const hanging = await server(() => { /* never answers */ })
  t.after(() => hanging.close())
  const { app } = await authApp({ jwt: { algorithms: ['RS256'], jwksUrl: hanging.url } })
  const started = Date.now()
  await app.ready()
  await until(() => hanging.hits() > 0, 'the startup fetch')
  await app.close()
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`)
})
