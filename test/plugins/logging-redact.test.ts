/**
 * Which query parameters count as secrets (their values masked in the access line and in
 * any logged `req`): names split into parts on `-`, `_`, `.`, `[`, `]`, spaces and camelCase
 * boundaries, secret when a part or the joined name is a secret word; plus the names given
 * in logging.redactQuery and the API key's query parameter.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyPluginAsync } from 'fastify'
import { REDACTED, redactQuery } from '../../src/redact.js'
import { build, listen } from '../helpers.js'

const none = new Set<string>()
const masked = (name: string): boolean => redactQuery(`${name}=v`, none) === `${name}=${REDACTED}`

test('names that carry secrets are masked: the old list, the new words, and bracketed names', () => {
  const secret = [
    // Already masked before.
    'token', 'access_token', 'accessToken', 'refresh-token', 'id_token', 'secret', 'client_secret', 'password', 'passwd', 'pwd',
    'api_key', 'apiKey', 'api-key', 'APIKey', 'x-api-key', 'signature', 'X-Amz-Signature', 'X-Amz-Credential', 'credentials',
    'key', 'auth', 'authorization', 'sig', 'jwt', 'code', 'session', 'sessionid', 'session_id', 'sessionId', 'TOKEN', 'Password',
    'accesstoken', 'authtoken', 'clientsecret',
    // Missing before.
    'pass', 'passphrase', 'bearer', 'sid', 'private_key', 'privateKey', 'access-key', 'accesskey', 'AccessKey', 'otp', 'pin',
    'key[0]', 'api_key[]', 'token[a]', 'user[password]', 'pin_code', 'otp.code', 'auth.token', 'my key'
  ]
  for (const name of secret) assert.ok(masked(name), `${name} should be masked`)
})

test('names that merely contain a secret word are kept: no false positives on substrings', () => {
  const plain = [
    'keyword', 'keywords', 'spinach', 'passenger', 'compass', 'monkey', 'page', 'sort', 'q', 'query', 'limit', 'offset', 'author',
    'authors', 'sidebar', 'position', 'opinion', 'bypass', 'passport', 'encode', 'codec', 'tokenizer', 'donkey', 'turkey',
    'hockey', 'pinned', 'spine', 'otpauth_like', 'pages[0]', 'filter[status]', 'sort_by', 'keys', 'sidekick', 'passage'
  ]
  for (const name of plain) assert.ok(!masked(name), `${name} should be kept`)
})

test('redactQuery keeps names, order, empty values and pairs without "="; decodes names; extra names match exactly or before a [', () => {
  assert.equal(redactQuery('q=shoes&token=abc&page=2&flag&pin=&x=1', none), `q=shoes&token=${REDACTED}&page=2&flag&pin=${REDACTED}&x=1`)
  // Names are decoded before they are judged: %5B is [, + is a space, %6B is k.
  assert.equal(redactQuery('api%5Fkey%5B%5D=1&my+key=2&%6Bey=3&%zz=4', none), `api%5Fkey%5B%5D=${REDACTED}&my+key=${REDACTED}&%6Bey=${REDACTED}&%zz=4`)
  const extra = new Set(['email', 'ssn'])
  assert.equal(redactQuery('EMAIL=a@b&email[0]=c&ssn=1&emails=2&q=x', extra), `EMAIL=${REDACTED}&email[0]=${REDACTED}&ssn=${REDACTED}&emails=2&q=x`)
  // A value with = in it is masked whole.
  assert.equal(redactQuery('token=a=b=c', none), `token=${REDACTED}`)
})

test('the access line masks the new names end to end, with the API key\'s query parameter and logging.redactQuery', async (t) => {
  const routes: FastifyPluginAsync = async (app) => {
    app.get('/search', { config: { auth: false } }, async () => ({ ok: true }))
  }
  const { app, logs } = await build({
    server: { logger: { level: 'info' } },
    logging: { redactQuery: ['ssn'] },
    auth: { apiKey: { keys: [{ name: 'ci', key: 'k'.repeat(32) }], query: 'ak' } }
  }, routes)
  t.after(() => app.close())
  const res = await app.inject({ url: '/search?q=spinach&pass=SECRET1&key[0]=SECRET2&sid=SECRET3&otp=SECRET4&keyword=kept&ak=SECRET5&ssn=SECRET6&page=2' })
  assert.equal(res.statusCode, 200)
  const lines = logs.filter((l) => l.msg === 'request completed')
  assert.equal(lines.length, 1, JSON.stringify(logs))
  assert.equal(lines[0].query, `q=spinach&pass=${REDACTED}&key[0]=${REDACTED}&sid=${REDACTED}&otp=${REDACTED}&keyword=kept&ak=${REDACTED}&ssn=${REDACTED}&page=2`)
  assert.ok(!JSON.stringify(logs).includes('SECRET'), JSON.stringify(logs))
})

test('a `req` the user logs through request.log keeps Fastify\'s fields, its URL masked by the same rule, with or without the logging feature', async (t) => {
  for (const logging of [{ redactQuery: ['ssn'] }, false as const]) {
    const routes: FastifyPluginAsync = async (app) => {
      app.get('/user-log', { config: { auth: false } }, async (request) => {
        request.log.info({ req: request }, 'user logged req')
        return { ok: true }
      })
    }
    const { app, logs } = await build({
      server: { logger: { level: 'info' } },
      logging,
      auth: { apiKey: { keys: [{ name: 'ci', key: 'k'.repeat(32) }], query: 'ak' } }
    }, routes)
    t.after(() => app.close())
    const res = await app.inject({
      url: '/user-log?token=SECRET1&page=2&ak=SECRET2&ssn=SECRET3&passphrase=SECRET4&q=x',
      headers: { 'accept-version': '1.x', authorization: 'Bearer SECRET5' },
      remoteAddress: '203.0.113.7'
    })
    assert.equal(res.statusCode, 200)
    const line = logs.find((l) => l.msg === 'user logged req')
    assert.ok(line !== undefined, JSON.stringify(logs))
    // Fastify 5's own req serializer gives method, url, version, host, remoteAddress, remotePort.
    assert.deepStrictEqual(line.req, {
      method: 'GET',
      url: `/user-log?token=${REDACTED}&page=2&ak=${REDACTED}&ssn=${logging === false ? 'SECRET3' : REDACTED}&passphrase=${REDACTED}&q=x`,
      version: '1.x',
      host: 'localhost:80',
      remoteAddress: '203.0.113.7'
      // remotePort: undefined under inject(), checked over a socket below
    }, String(logging))
    const leaked = JSON.stringify(logs).match(/SECRET\d/g) ?? []
    assert.deepStrictEqual(leaked, logging === false ? ['SECRET3'] : [], JSON.stringify(logs))

    // Over a real socket the remote port is there too.
    const { url } = await listen(app)
    const http = await fetch(`${url}/user-log?token=SECRET6`)
    assert.equal(http.status, 200)
    const overSocket = logs.filter((l) => l.msg === 'user logged req').at(-1)
    assert.deepStrictEqual(overSocket?.req, {
      method: 'GET', url: `/user-log?token=${REDACTED}`, host: new URL(url).host, remoteAddress: '127.0.0.1', remotePort: overSocket?.req.remotePort
    })
    assert.equal(typeof overSocket?.req.remotePort, 'number')
  }
})
