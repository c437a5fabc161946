/**
 * The demo's chat (examples/app.ts, /chat/:room; examples/public/chat.html is its page),
 * built as `npm start` builds it, with real `ws` clients over real sockets: rooms, ordering,
 * validated messages and their error frames, the Origin check auth brings, shutdown's 1001,
 * and the chat in the demo's AsyncAPI document as @asyncapi/parser reads it.
 * test/browser/demo-chat.test.ts runs the page in Chromium.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../src/config/load.js'
import { createServer } from '../src/server.js'
import { listen } from './helpers.js'
import { connect, upgrade, TYPE, type Client } from './plugins/websocket-helpers.js'

const EXAMPLES = join(import.meta.dirname, '..', 'examples')
const AT = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

async function demo (t: { after: (fn: () => Promise<void>) => void }): Promise<{ app: FastifyInstance, url: string, ws: string, port: number }> {
  const { config } = loadConfig({ file: join(EXAMPLES, 'spikard.config.yaml'), env: { LOG_LEVEL: 'silent' } })
  const app = await createServer(config, { baseDir: EXAMPLES })
  t.after(() => app.close())
  const { url, port } = await listen(app)
  return { app, url, ws: url.replace('http', 'ws'), port }
}

/** Joins `room` as `name`; returns the client and its welcome. */
async function enter (t: Parameters<typeof connect>[0], ws: string, room: string, name: string): Promise<{ client: Client, welcome: unknown }> {
  const client = await connect(t, `${ws}/chat/${room}`)
  client.socket.send(JSON.stringify({ type: 'join', name }))
  return { client, welcome: await client.json() }
}

/** Resolves once nothing more arrives for `ms` (the next message would fail the assertion). */
async function nothingMore (client: Client, ms = 200): Promise<void> {
  const extra: unknown[] = []
  const record = (data: Buffer): void => { extra.push(String(data)) }
  client.socket.on('message', record)
  await new Promise((resolve) => setTimeout(resolve, ms))
  client.socket.off('message', record)
  assert.deepEqual(extra, [])
}

test('two clients in a room: welcome, joined, every said message to both in the order the server got them, left', async (t) => {
  const { ws } = await demo(t)
  const ada = await enter(t, ws, 'lobby', 'ada')
  assert.deepEqual(ada.welcome, { type: 'welcome', room: 'lobby', name: 'ada', members: ['ada'] })
  const bob = await enter(t, ws, 'lobby', 'bob')
  assert.deepEqual(bob.welcome, { type: 'welcome', room: 'lobby', name: 'bob', members: ['ada', 'bob'] })
  assert.deepEqual(await ada.client.json(), { type: 'joined', room: 'lobby', name: 'bob' })

  // Sent without waiting, from both sides: each client sees the room's one order.
  const lines: Array<[string, Client, string]> = [['ada', ada.client, 'hi'], ['bob', bob.client, 'hello'], ['ada', ada.client, 'how are you?'], ['ada', ada.client, 'ok'], ['bob', bob.client, 'fine']]
  for (const [, client, text] of lines) client.socket.send(JSON.stringify({ type: 'say', text }))
  const seen = async (client: Client): Promise<Array<[string, string]>> => {
    const got: Array<[string, string]> = []
    for (let i = 0; i < lines.length; i++) {
      const message = await client.json() as { type: string, name: string, text: string, at: string }
      assert.deepEqual(Object.keys(message), ['type', 'name', 'text', 'at'])
      assert.equal(message.type, 'said')
      assert.match(message.at, AT)
      got.push([message.name, message.text])
    }
    return got
  }
  const [atAda, atBob] = await Promise.all([seen(ada.client), seen(bob.client)])
  assert.deepEqual(atAda, atBob)
  // Each sender's own lines keep their order.
  for (const who of ['ada', 'bob']) {
    assert.deepEqual(atAda.filter(([name]) => name === who).map(([, text]) => text), lines.filter(([name]) => name === who).map(([, , text]) => text))
  }

  // Another room hears nothing of the lobby. A `say` sent right behind the `join`, without
  // waiting for the welcome, is taken: the join is done before the next message is read.
  const cy = await connect(t, `${ws}/chat/kitchen`)
  cy.socket.send(JSON.stringify({ type: 'join', name: 'cy' }))
  cy.socket.send(JSON.stringify({ type: 'say', text: 'first!' }))
  cy.socket.send(JSON.stringify({ type: 'leave' }))
  cy.socket.send(JSON.stringify({ type: 'say', text: 'gone' }))
  assert.deepEqual(await cy.json(), { type: 'welcome', room: 'kitchen', name: 'cy', members: ['cy'] })
  assert.deepEqual({ ...await cy.json() as object, at: undefined }, { type: 'said', name: 'cy', text: 'first!', at: undefined })
  assert.deepEqual(await cy.json(), { type: 'left', name: 'cy' })
  assert.deepEqual(await cy.json(), { type: 'refused', detail: 'Join the room first: {"type":"join","name":"..."}.' })

  // Leaving: acknowledged by the room's own `left`; closing: the others are told.
  bob.client.socket.send(JSON.stringify({ type: 'leave' }))
  assert.deepEqual(await bob.client.json(), { type: 'left', name: 'bob' })
  assert.deepEqual(await ada.client.json(), { type: 'left', name: 'bob' })
  bob.client.socket.send(JSON.stringify({ type: 'say', text: 'still here?' }))
  assert.deepEqual(await bob.client.json(), { type: 'refused', detail: 'Join the room first: {"type":"join","name":"..."}.' })
  bob.client.socket.send(JSON.stringify({ type: 'join', name: 'bobby' }))
  assert.deepEqual(await bob.client.json(), { type: 'welcome', room: 'lobby', name: 'bobby', members: ['ada', 'bobby'] })
  assert.deepEqual(await ada.client.json(), { type: 'joined', room: 'lobby', name: 'bobby' })
  ada.client.socket.close(1000)
  assert.deepEqual(await ada.client.closed, { code: 1000, reason: '' })
  assert.deepEqual(await bob.client.json(), { type: 'left', name: 'ada' })
  await nothingMore(cy)
})

test('invalid messages get an error frame and the socket stays open; what the room cannot take is refused', async (t) => {
  const { ws } = await demo(t)
  const { client } = await enter(t, ws, 'lobby', 'ada')
  const invalid = (detail: string, errors: Array<{ path: string, message: string }>) => ({ type: TYPE + 'websocket-invalid-message', title: 'Unprocessable Content', status: 422, detail, errors })

  client.socket.send('hello?')
  assert.deepEqual(await client.json(), { type: TYPE + 'websocket-invalid-json', title: 'Bad Request', status: 400, detail: 'The message is not valid JSON' })
  client.socket.send(JSON.stringify({ type: 'say', text: 'x'.repeat(501) }))
  assert.deepEqual(await client.json(), invalid('The message does not match the route\'s schema: message/text must NOT have more than 500 characters', [{ path: '/text', message: 'must NOT have more than 500 characters' }]))
  client.socket.send(JSON.stringify({ type: 'say', text: '   ' }))
  assert.deepEqual(await client.json(), invalid('The message does not match the route\'s schema: message/text must match pattern "\\S"', [{ path: '/text', message: 'must match pattern "\\S"' }]))
  client.socket.send(JSON.stringify({ type: 'say', text: 'hi', html: '<b>' }))
  assert.deepEqual(await client.json(), invalid('The message does not match the route\'s schema: message must NOT have additional properties', [{ path: '/', message: 'must NOT have additional properties' }]))
  client.socket.send(JSON.stringify({ type: 'shout', text: 'HI' }))
  assert.deepEqual(await client.json(), invalid('The message\'s "type" must be one of: join, say, leave', [{ path: '/type', message: 'must be one of: join, say, leave' }]))
  client.socket.send(Buffer.from('{"type":"say","text":"binary"}'), { binary: true })
  assert.deepEqual(await client.json(), { type: TYPE + 'websocket-binary-refused', title: 'Unsupported Media Type', status: 415, detail: 'This WebSocket route does not accept binary messages; send JSON text' })

  client.socket.send(JSON.stringify({ type: 'join', name: 'ada again' }))
  assert.deepEqual(await client.json(), { type: 'refused', detail: 'You are already in the room, as ada.' })
  const other = await enter(t, ws, 'lobby', 'ada')
  assert.deepEqual(other.welcome, { type: 'refused', detail: 'The name ada is taken in this room.' })

  // Still open and in the room.
  client.socket.send(JSON.stringify({ type: 'say', text: 'still here' }))
  assert.deepEqual({ ...await client.json() as object, at: undefined }, { type: 'said', name: 'ada', text: 'still here', at: undefined })
})

test('the upgrade: a bad room name is a 422 problem, another site\'s page a 403 (auth is on), this origin\'s page a 101', async (t) => {
  const { url, port } = await demo(t)
  const bad = await upgrade(port, '/chat/Not%20A%20Room')
  assert.equal(bad.status, 422)
  assert.equal(bad.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.deepEqual({ ...JSON.parse(bad.body), requestId: undefined }, {
    type: TYPE + 'validation-failed',
    title: 'Unprocessable Content',
    status: 422,
    detail: 'The request params failed validation',
    instance: '/chat/Not%20A%20Room',
    requestId: undefined,
    errors: [{ location: 'params', field: 'room', message: 'must match pattern "^[a-z0-9-]{1,32}$"' }]
  })
  const foreign = await upgrade(port, '/chat/lobby', { Origin: 'https://evil.example' })
  assert.equal(foreign.status, 403)
  assert.equal(JSON.parse(foreign.body).type, TYPE + 'websocket-origin')
  const own = await upgrade(port, '/chat/lobby', { Origin: url })
  assert.equal(own.status, 101)
})

test('shutdown closes every chat socket with 1001', async (t) => {
  const { app, ws } = await demo(t)
  const ada = await enter(t, ws, 'lobby', 'ada')
  const bob = await enter(t, ws, 'kitchen', 'bob')
  await app.close()
  assert.deepEqual(await ada.client.closed, { code: 1001, reason: 'server shutting down' })
  assert.deepEqual(await bob.client.closed, { code: 1001, reason: 'server shutting down' })
})

test('the demo\'s AsyncAPI document parses with no error and shows the chat\'s channel and every message', async (t) => {
  const { url } = await demo(t)
  const response = await fetch(`${url}/asyncapi.json`)
  assert.equal(response.status, 200)
  const text = await response.text()
  const diagnostics = await new Parser().validate(text)
  assert.deepEqual(diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map((d) => `${d.message} at ${d.path.join('.')}`), [])
  const { document } = await new Parser().parse(text)
  assert.ok(document !== undefined)
  assert.equal(document.info().title(), 'spikard demo')
  const channel = document.channels().all().find((c) => c.address() === '/chat/{room}')
  assert.ok(channel !== undefined, 'the chat channel')
  assert.equal(channel.id(), 'chatByRoom')
  assert.deepEqual(channel.parameters().all().map((p) => p.id()), ['room'])
  assert.deepEqual(channel.operations().all().map((o) => [o.id(), o.action(), o.messages().all().map((m) => m.name())]), [
    ['receiveChatByRoom', 'receive', ['join', 'say', 'leave']],
    ['sendChatByRoom', 'send', ['welcome', 'joined', 'said', 'left', 'refused', 'problem']]
  ])
  assert.deepEqual(channel.operations().all().map((o) => o.tags().all().map((tag) => tag.name())), [['chat'], ['chat']])
  assert.deepEqual(document.info().tags().all().map((tag) => [tag.name(), tag.description()]), [['chat', 'Rooms where clients join under a name and talk.']])
  // Public: no security on the chat.
  for (const operation of channel.operations().all()) assert.equal(operation.security().length, 0)
  const said = channel.messages().all().find((m) => m.name() === 'said')
  assert.deepEqual(said?.payload()?.required(), ['type', 'name', 'text', 'at'])
  const say = channel.messages().all().find((m) => m.name() === 'say')
  assert.equal(say?.payload()?.properties()?.text.maxLength(), 500)
  // Served over ws://, where the demo listens.
  assert.ok(document.servers().all().some((s) => s.protocol() === 'ws' && channel.servers().all().some((c) => c.id() === s.id())))
})
