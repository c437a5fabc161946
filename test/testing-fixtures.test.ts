/**
 * spikard/testing's fixture runner: runFixtures over a directory (recursively), the one
 * error naming every failing fixture and why, schema errors named, fixtures without options
 * run against the client given (its credentials included), each kind of exchange failing
 * with a message that says where; the matcher's markers; ws()'s upgrade response and ping.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { createTestClient, expectMatch, FixtureFailures, loadFixtures, runFixture, runFixtures, type Fixture, type TestClient } from '../src/testing/index.js'
import { until } from './helpers.js'

const API_KEY = 'fixture-api-key-0123456789abcdef'

/** A directory holding these files (path → content; objects written as JSON), removed after the test. */
async function directory (t: TestContext, files: Record<string, unknown>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'spikard-fixtures-'))
  t.after(async () => await rm(dir, { recursive: true, force: true }))
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true })
    await writeFile(join(dir, path), typeof content === 'string' ? content : JSON.stringify(content))
  }
  return dir
}

const hello = (body: unknown = { hello: 'world' }): Fixture => ({
  description: 'an app of its own',
  options: {},
  routes: [{ method: 'GET', url: '/hello', handler: { reply: { body } } }],
  requests: [{ request: { method: 'GET', url: '/hello' }, expect: { status: 200, body: { hello: 'world' } } }]
})

async function appClient (t: TestContext): Promise<TestClient> {
  const client = await createTestClient({
    auth: { apiKey: { keys: [{ name: 'ci', key: API_KEY }] } },
    app: async (app: FastifyInstance) => {
      app.get('/whoami', async (request) => ({ identity: request.identity?.id ?? null }))
      app.get('/ws', { websocket: true, config: { auth: false } }, (socket) => {
        socket.on('message', (data) => socket.send(data.toString()))
      })
    }
  })
  t.after(async () => await client.close())
  return client
}

test('runFixtures: every fixture under the directory, nested ones included; *.schema.json and other files left alone', async (t) => {
  const dir = await directory(t, {
    'a.json': hello(),
    'nested/deeper/b.json': hello(),
    'nested/fixture.schema.json': { not: 'a fixture' },
    'nested/notes.txt': 'not JSON'
  })
  const results = await runFixtures(undefined, dir)
  assert.deepEqual(results.map((r) => [r.name, r.description, r.exchanges]), [['a.json', 'an app of its own', 1], ['nested/deeper/b.json', 'an app of its own', 1]])
  assert.ok(results.every((r) => r.durationMs >= 0 && r.path.startsWith(dir)))
})

test('runFixtures: one error naming each failing fixture and why, after running them all', async (t) => {
  const dir = await directory(t, {
    '1-passes.json': hello(),
    '2-wrong-body.json': hello({ hello: 'moon' }),
    '3-wrong-status.json': { ...hello(), requests: [{ name: 'missing', request: { method: 'GET', url: '/nowhere' }, expect: { status: 200 } }] },
    '4-not-json.json': '{ "description": ',
    '5-invalid.json': { description: 'no requests', options: {} }
  })
  const error = await runFixtures(undefined, dir).then(() => assert.fail('resolved'), (e: unknown) => e)
  assert.ok(error instanceof FixtureFailures)
  const lines = error.message.split('\n')
  assert.equal(lines[0], `runFixtures(${dir}): 4 of 5 fixtures failed`)
  assert.equal(lines[1], '- 2-wrong-body.json: requests[0] body.hello: expected "world", got "moon"')
  assert.match(lines[2], /^- 3-wrong-status\.json: requests\[0\] \(missing\): status: expected 200, got 404 \(body: \{"type":"https:\/\/spikard\.dev\/errors\/not-found"/)
  assert.match(lines[3], /^- 4-not-json\.json: not JSON: /)
  assert.equal(lines[4], "- 5-invalid.json: does not match the fixture schema: /: must have required property 'requests'")
  assert.equal(lines.length, 5)
  assert.deepEqual(error.failures.map((f) => f.name), ['2-wrong-body.json', '3-wrong-status.json', '4-not-json.json', '5-invalid.json'])
  assert.deepEqual(error.results.map((r) => r.name), ['1-passes.json'])
})

test('runFixtures: a directory without fixtures is an error, not a pass', async (t) => {
  const dir = await directory(t, { 'readme.txt': 'nothing here' })
  await assert.rejects(runFixtures(undefined, dir), { message: `runFixtures(${dir}): no *.json fixtures there` })
})

test('schema errors name the place and what is wrong', async (t) => {
  const dir = await directory(t, {
    'handler.json': { ...hello(), routes: [{ method: 'GET', url: '/x', handler: { replay: {} } }] },
    'expect.json': { ...hello(), requests: [{ request: { method: 'GET', url: '/hello' }, expect: { body: 1 } }] },
    'kind.json': { ...hello(), requests: [{ expect: { status: 200 } }] },
    'step.json': { ...hello(), requests: [{ ws: { url: '/ws' }, steps: [{ send: 1, receive: 1 }] }] },
    'sse.json': { ...hello(), requests: [{ sse: { url: '/e' }, expect: { events: [{ event: 'x' }] } }] }
  })
  const invalid = Object.fromEntries((await loadFixtures(dir)).map((f) => [f.name, f.invalid]))
  assert.deepEqual(invalid, {
    'expect.json': "does not match the fixture schema: /requests/0/expect: must have required property 'status'",
    'handler.json': 'does not match the fixture schema: /routes/0/handler: needs one of reply, throw, stream, ndjson, echo, recorded, sse, websocket; /routes/0/handler: must NOT have additional properties (replay)',
    'kind.json': 'does not match the fixture schema: /requests/0: needs one of request, stream, sse, ws',
    'sse.json': "does not match the fixture schema: /requests/0/expect/events/0: must have required property 'data'",
    'step.json': 'does not match the fixture schema: /requests/0/steps/0: must NOT have more than 1 properties'
  })
  const [first] = await loadFixtures(dir)
  await assert.rejects(runFixture(undefined, first), { message: first.invalid })
})

test('a fixture without options or routes runs against the client given, with its credentials; without a client it says so', async (t) => {
  const client = await appClient(t)
  const dir = await directory(t, {
    'whoami.json': {
      description: 'the app of the client given',
      requests: [
        { request: { method: 'GET', url: '/whoami' }, expect: { status: 200, body: { identity: 'ci' } } },
        { ws: { url: '/ws' }, steps: [{ send: 'over the client\'s socket' }, { receive: 'over the client\'s socket' }] }
      ]
    }
  })
  const [result] = await runFixtures(client.withApiKey(), dir)
  assert.equal(result.name, 'whoami.json')
  // The same fixture without the key: the client's app refuses it, so it really ran there.
  await assert.rejects(runFixtures(client, dir), (error: Error) => /^- whoami\.json: requests\[0\]: status: expected 200, got 401/m.test(error.message))
  await assert.rejects(runFixtures(undefined, dir), (error: Error) => error.message.includes('- whoami.json: the fixture has no options or routes, and no client was given to run it against'))
})

/**
 * The message runFixture fails with for this fixture. `timeout` bounds every step, the
 * upgrade and the response's head too: at 300 ms a loaded machine could fail another step
 * than the one the test is about.
 */
async function failure (t: TestContext, fixture: Fixture, timeout = 5000): Promise<string> {
  const dir = await directory(t, { 'f.json': fixture })
  const [loaded] = await loadFixtures(dir)
  assert.equal(loaded.invalid, undefined)
  const error = await runFixture(undefined, loaded, { timeout }).then(() => assert.fail('passed'), (e: Error) => e)
  return error.message
}

test('a streamed body: compared byte for byte with the chunks joined', async (t) => {
  const fixture = (chunks: string[]): Fixture => ({
    description: 'stream',
    options: {},
    routes: [{ method: 'GET', url: '/s', handler: { stream: { chunks: ['a,', 'b,', { base64: Buffer.from('c').toString('base64') }] } } }],
    requests: [{ stream: { url: '/s' }, expect: { status: 200, headers: { 'content-type': 'text/plain' }, chunks } }]
  })
  const dir = await directory(t, { 'ok.json': fixture(['a,', 'b,c']) })
  assert.equal((await runFixtures(undefined, dir)).length, 1)
  assert.equal(await failure(t, fixture(['a,', 'b,', 'd'])), 'requests[0]: body: expected "a,b,d", got "a,b,c"')
})

test('an expected header is a string: a set-cookie (a list, as a real client reads it) is compared by its value, over inject() and a socket alike', async (t) => {
  const dir = await directory(t, {
    'cookie.json': {
      description: 'set-cookie',
      options: {},
      routes: [
        { method: 'GET', url: '/c', handler: { reply: { headers: { 'set-cookie': 'sid=1; HttpOnly' }, body: 'ok' } } },
        { method: 'GET', url: '/s', handler: { stream: { chunks: ['ok'], headers: { 'set-cookie': 'sid=2; HttpOnly' } } } }
      ],
      requests: [
        { request: { method: 'GET', url: '/c' }, expect: { status: 200, headers: { 'Set-Cookie': 'sid=1; HttpOnly' } } },
        { stream: { url: '/s' }, expect: { status: 200, headers: { 'set-cookie': 'sid=2; HttpOnly' }, chunks: ['ok'] } }
      ]
    }
  })
  assert.equal((await runFixtures(undefined, dir)).length, 1)
})

test('an event stream: events in order, data as text or JSON, and the end', async (t) => {
  const route: Fixture['routes'] = [{ method: 'GET', url: '/e', options: { sse: true }, handler: { sse: [{ send: { id: '1', event: 'a', data: { n: 1 } } }, { send: { data: 'two' } }] } }]
  const fixture = (expect: object): Fixture => ({ description: 'sse', options: {}, routes: route, requests: [{ sse: { url: '/e' }, expect } as never] })
  const dir = await directory(t, { 'ok.json': fixture({ headers: { 'content-type': 'text/event-stream' }, events: [{ event: 'a', id: '1', data: { n: '$any-number' } }, { event: 'message', id: '1', data: 'two' }], ended: true }) })
  assert.equal((await runFixtures(undefined, dir)).length, 1)
  assert.equal(await failure(t, fixture({ events: [{ event: 'a', data: { n: 2 } }] })), 'requests[0] event 0 data.n: expected 2, got 1')
  assert.equal(await failure(t, fixture({ events: [{ data: { n: 1 } }], ended: true })), 'requests[0]: an event after the expected ones: {"event":"message","data":"two","id":"1"}')
  assert.equal(await failure(t, fixture({ events: [{ data: { n: 1 } }, { data: 'two' }], ended: false })), 'requests[0]: the stream ended; expected it still open')
  assert.equal(await failure(t, fixture({ events: [{ data: { n: 1 } }, { data: 'two' }, { data: 'three' }] })), 'event stream /e: the stream ended before the next event')
})

test('a WebSocket session: each step fails saying which and why', async (t) => {
  const fixture = (steps: unknown[], expect?: object): Fixture => ({
    description: 'ws',
    options: {},
    routes: [{ method: 'GET', url: '/ws', options: { config: { websocket: { binary: true } } }, handler: { websocket: { open: [{ type: 'welcome' }], echo: true, close: { bye: { code: 4000, reason: 'asked' } } } } }],
    requests: [{ ws: { url: '/ws' }, steps, ...(expect === undefined ? {} : { expect }) } as never]
  })
  assert.equal(await failure(t, fixture([{ receive: { type: 'hello' } }])), 'requests[0] step 0 message.type: expected "hello", got "welcome"')
  assert.equal(await failure(t, fixture([{ receive: { type: 'welcome' } }, { receive: 'more' }]), 2000), 'requests[0] step 1: WebSocket /ws: nothing arrived within 2000 ms')
  assert.equal(await failure(t, fixture([{ receive: { type: 'welcome' } }, { sendBinary: 'AQI=' }, { receive: 'text' }])), 'requests[0] step 2: expected a text message, got a binary one: (base64) AQI=')
  assert.equal(await failure(t, fixture([{ receive: { type: 'welcome' } }, { send: 'text' }, { receiveBinary: 'AQI=' }])), 'requests[0] step 2: expected the binary message (base64) AQI=, got the text message "text"')
  assert.equal(await failure(t, fixture([{ send: { type: 'bye' } }, { closed: { code: 1000 } }])), 'requests[0] step 1 close code: expected 1000, got 4000')
  assert.match(await failure(t, fixture([{ close: {} }], { status: 101, headers: { 'x-request-id': 'nope' } })), /^requests\[0\] upgrade header x-request-id: expected "nope", got "[0-9a-f-]{36}"$/)
})

test('a fixture WebSocket route closes on the message types its `close` names only: one typed "constructor" or "toString" is echoed, as with `on`', async (t) => {
  const dir = await directory(t, {
    'f.json': {
      description: 'ws',
      options: {},
      routes: [{ method: 'GET', url: '/ws', handler: { websocket: { echo: true, close: { bye: { code: 4000 } } } } }],
      requests: [{
        ws: { url: '/ws' },
        steps: [
          { send: { type: 'constructor' } }, { receive: { type: 'constructor' } },
          { send: { type: 'toString' } }, { receive: { type: 'toString' } },
          { send: { type: 'bye' } }, { closed: { code: 4000 } }
        ]
      }]
    }
  })
  const [loaded] = await loadFixtures(dir)
  assert.equal(loaded.invalid, undefined)
  await runFixture(undefined, loaded, { timeout: 5000 })
})

test('expectMatch: markers, exact keys, array lengths, and where', () => {
  expectMatch({ id: '0b7e3d9c-5f7e-4a53-9b1d-2f3f7c7e9a10', n: 1, s: 'x', h: 'v' }, { id: '$any-uuid', n: '$any-number', s: '$any-string', h: '$header:X-H', gone: '$absent' }, 'body', { 'x-h': 'v' })
  assert.throws(() => expectMatch({ a: 1, b: 2 }, { a: 1 }, 'body'), { message: 'body: unexpected keys b in {"a":1,"b":2}' })
  assert.throws(() => expectMatch([1], [1, 2], 'list'), { message: 'list: expected 2 items, got [1]' })
  assert.throws(() => expectMatch('not-a-uuid', '$any-uuid', 'id'), { message: 'id: expected a UUID v4, got "not-a-uuid"' })
  assert.throws(() => expectMatch(undefined, '$present', 'x'), { message: 'x: expected a value ($present), got nothing' })
  assert.throws(() => expectMatch(1, '$absent', 'x'), { message: 'x: expected nothing ($absent), got 1' })
  assert.throws(() => expectMatch('a', '$header:x-h', 'x', { 'x-h': 'b' }), { message: 'x: expected the x-h header ("b"), got "a"' })
  assert.throws(() => expectMatch('a', '$whatever', 'x'), { message: 'x: unknown marker $whatever (markers: $any-uuid, $any-string, $any-number, $absent, $present, $header:<name>)' })
})

test('ws(): the upgrade response (101, its headers) and ping answered by a pong with the payload', async (t) => {
  const client = await appClient(t)
  const ws = await client.withHeaders({ 'x-request-id': 'upgrade-1' }).ws('/ws')
  assert.equal(ws.status, 101)
  assert.equal(ws.headers['x-request-id'], 'upgrade-1')
  assert.equal(ws.headers.upgrade, 'websocket')
  assert.deepEqual(await ws.ping('payload'), Buffer.from('payload'))
  ws.socket.removeAllListeners('pong')
  await assert.rejects(ws.ping('unanswered', { timeout: 100 }), { message: 'WebSocket /ws (pong): nothing arrived within 100 ms' })
  assert.deepEqual(await ws.close(1000), { code: 1000, reason: '' })
})

test('a route step that sleeps stops when its client goes away: nothing of the fixture outlives runFixtures', async (t) => {
  const dir = await directory(t, {
    'sse-sleeps.json': {
      description: 'an event, then a long sleep the client does not wait for',
      routes: [{ method: 'GET', url: '/s', options: { sse: true }, handler: { sse: [{ send: { data: 'x' } }, { sleep: 60000 }] } }],
      requests: [{ sse: { url: '/s' }, expect: { events: [{ data: 'x' }] } }]
    }
  })
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  await runFixtures(undefined, dir)
  await until(() => timers() <= before, 'the fixture\'s timers to be gone', 3000)
})
