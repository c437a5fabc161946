/**
 * WebSocket routes (`websocket`), with a real `ws` client on a listening server at
 * 127.0.0.1: the handshake, messages, validation, error frames, limits and the access line.
 * Refused upgrades, browser tokens, rooms, shutdown and injectWS: websocket-upgrade.test.ts.
 * Every wait is bounded (2-3 s).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { UUID, assertOptionsRefused, build, until } from '../helpers.js'
import { SpikardConfigError } from '../../src/errors.js'
import { SchemaCompiler } from '../../src/ajv.js'
import { requestContext } from '../../src/index.js'
import { connect, serve, TYPE } from './websocket-helpers.js'

const ChatIn = Type.Union([
  Type.Object({ type: Type.Literal('say'), text: Type.String({ maxLength: 20 }) }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('ping') }, { additionalProperties: false })
])

async function echoRoutes (app: FastifyInstance): Promise<void> {
  app.get('/echo', { websocket: true }, (socket) => {
    socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
  })
  app.get('/chat', { websocket: true, config: { websocket: { receive: ChatIn } } }, (socket) => {
    socket.on('message', (data) => { socket.send(String(data)) })
  })
  app.get('/strict', { websocket: true, config: { websocket: { receive: ChatIn, closeOnInvalid: true } } }, (socket) => {
    socket.on('message', (data) => { socket.send(String(data)) })
  })
  app.get('/binary', { websocket: true, config: { websocket: { binary: true } } }, (socket) => {
    socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
  })
}

test('defaults: a 101 with the request id, echo, one access line with the counters and close 1000, no HTTP access line', async (t) => {
  const { ws, logs } = await serve(t, {}, echoRoutes)
  const client = await connect(t, ws + '/echo?room=a&access_token=s3cret')
  assert.match(String(client.headers['x-request-id']), UUID)
  client.socket.send('hello')
  assert.equal(await client.next(), 'hello')
  client.socket.send('wörld')
  assert.equal(await client.next(), 'wörld')
  client.socket.close(1000, 'bye')
  assert.equal((await client.closed).code, 1000)
  // Written on the server's 'close', which comes on its own socket, not with the client's.
  await until(() => logs.some((l) => l.path === '/echo'), 'the access line')
  const lines = logs.filter((l) => l.path === '/echo')
  assert.equal(lines.length, 1, JSON.stringify(lines))
  const { time, pid, hostname, durationMs, remoteAddress, ...line } = lines[0]
  assert.equal(typeof durationMs, 'number')
  assert.equal(remoteAddress, '127.0.0.1')
  assert.deepEqual(line, {
    level: 30,
    reqId: client.headers['x-request-id'],
    method: 'GET',
    path: '/echo',
    query: 'room=a&access_token=[REDACTED]',
    route: '/echo',
    status: 101,
    messagesIn: 2,
    messagesOut: 2,
    bytesIn: 11,
    bytesOut: 11,
    closeCode: 1000,
    msg: 'websocket closed'
  })
  assert.ok(!JSON.stringify(logs).includes('s3cret'))
})

test('messages are delivered in order', async (t) => {
  const { ws } = await serve(t, {}, echoRoutes)
  const client = await connect(t, ws + '/echo')
  for (let i = 0; i < 200; i++) client.socket.send(String(i))
  for (let i = 0; i < 200; i++) assert.equal(await client.next(), String(i))
})

test('receive: an invalid-JSON or schema-invalid message gets an error frame and the socket stays open', async (t) => {
  const { ws } = await serve(t, {}, echoRoutes)
  const client = await connect(t, ws + '/chat')
  client.socket.send('{"type":')
  assert.deepEqual(await client.json(), { type: TYPE + 'websocket-invalid-json', title: 'Bad Request', status: 400, detail: 'The message is not valid JSON' })
  client.socket.send(JSON.stringify({ type: 'say', text: 42 }))
  assert.deepEqual(await client.json(), {
    type: TYPE + 'websocket-invalid-message',
    title: 'Unprocessable Content',
    status: 422,
    detail: 'The message does not match the route\'s schema: message/text must be string',
    errors: [{ path: '/text', message: 'must be string' }]
  })
  client.socket.send(JSON.stringify({ type: 'shout' }))
  assert.deepEqual(await client.json(), {
    type: TYPE + 'websocket-invalid-message',
    title: 'Unprocessable Content',
    status: 422,
    detail: 'The message\'s "type" must be one of: say, ping',
    errors: [{ path: '/type', message: 'must be one of: say, ping' }]
  })
  client.socket.send(JSON.stringify({ type: 'say', text: 'hi' }))
  assert.equal(await client.next(), '{"type":"say","text":"hi"}')
})

test('receive: a message nested deeper than a recursive schema can validate gets an error frame; the process carries on', async (t) => {
  const Tree = Type.Recursive((This) => Type.Object({ children: Type.Array(This) }))
  const { ws } = await serve(t, {}, async (app) => {
    app.get('/tree', { websocket: true, config: { websocket: { receive: Tree } } }, (socket) => {
      socket.on('message', () => { socket.send('accepted') })
    })
  })
  const client = await connect(t, ws + '/tree')
  // 900 kB, under the default maxPayload: Ajv's recursion overflowed the stack, from ws's parser.
  client.socket.send('{"children":['.repeat(60_000) + ']}'.repeat(60_000))
  assert.deepEqual(await client.json(), {
    type: TYPE + 'websocket-invalid-message', title: 'Unprocessable Content', status: 422, detail: 'The message is nested too deeply to be validated'
  })
  client.socket.send('{"children":[{"children":[]}]}')
  assert.equal(await client.next(), 'accepted')
})

test('receive: a message failing in every element lists its first 10 offending fields, not all of them; one over 16 KiB its first', async (t) => {
  const { ws } = await serve(t, {}, async (app) => {
    app.get('/names', { websocket: true, config: { websocket: { receive: Type.Array(Type.String()) } } }, (socket) => {
      socket.on('message', () => { socket.send('accepted') })
    })
  })
  const client = await connect(t, ws + '/names')
  // Every error listed, 800 kB of these made a 30 MB frame, and the client was closed with 1013 as a slow consumer.
  client.socket.send(JSON.stringify(Array(1000).fill(1)))
  const frame = await client.json() as { detail: string, errors: unknown[] }
  assert.deepEqual(frame.errors, Array.from({ length: 10 }, (_, i) => ({ path: `/${i}`, message: 'must be string' })))
  assert.equal(frame.detail, `The message does not match the route's schema: ${Array.from({ length: 10 }, (_, i) => `message/${i} must be string`).join(', ')} (and 990 more)`)
  // Over 16 KiB: checked up to its first error. Collecting all 100,000 held the event loop 0.3-0.6 s.
  client.socket.send(JSON.stringify(Array(100_000).fill(1)))
  const large = await client.json() as { detail: string, errors: unknown[] }
  assert.deepEqual(large.errors, [{ path: '/0', message: 'must be string' }])
  assert.equal(large.detail, 'The message does not match the route\'s schema: message/0 must be string (the message is over 16 KiB: checked up to its first error)')
  client.socket.send(JSON.stringify(Array(100_000).fill('ada')))
  assert.equal(await client.next(), 'accepted')
})

test('message schemas are compiled once at startup; the validator listing every error when an invalid message first needs it, once per type', async (t) => {
  const compiled: string[] = []
  const compile = SchemaCompiler.prototype.compile
  t.mock.method(SchemaCompiler.prototype, 'compile', function (this: SchemaCompiler, ...args: Parameters<SchemaCompiler['compile']>) {
    const allErrors = (this.ajv as unknown as { opts: { allErrors?: boolean } }).opts.allErrors !== false
    compiled.push(...Object.keys(args[1]).map((name) => `${allErrors ? 'every error' : 'first error'}: ${name}`))
    return compile.apply(this, args)
  })
  const { ws } = await serve(t, {}, async (app) => {
    app.get('/chat', { websocket: true, config: { websocket: { receive: ChatIn, send: Type.Object({ type: Type.String() }) } } }, (socket) => {
      socket.on('message', (data) => { socket.send(String(data)) })
    })
  })
  // Each of the route's schemas once (both directions: outside production, sent messages are checked too).
  assert.deepEqual(compiled, ['first error: say', 'first error: ping', 'first error: *'])
  const client = await connect(t, ws + '/chat')
  client.socket.send(JSON.stringify({ type: 'ping' }))
  assert.equal(await client.next(), '{"type":"ping"}')
  assert.equal(compiled.length, 3)
  for (let i = 0; i < 2; i++) {
    client.socket.send(JSON.stringify({ type: 'say', text: 1, extra: true }))
    assert.deepEqual((await client.json() as { errors: unknown }).errors, [
      { path: '/', message: 'must NOT have additional properties' },
      { path: '/text', message: 'must be string' }
    ])
  }
  // Over 16 KiB: checked up to its first error, with the validator compiled at startup.
  client.socket.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(20_000) }))
  assert.deepEqual((await client.json() as { errors: unknown }).errors, [{ path: '/', message: 'must NOT have additional properties' }])
  assert.deepEqual(compiled.slice(3), ['every error: say'])
})

test('receive: messages typed "constructor" and "__proto__" are declared and validated like any other', async (t) => {
  const In = Type.Union([
    Type.Object({ type: Type.Literal('constructor'), n: Type.Number() }),
    Type.Object({ type: Type.Literal('__proto__'), n: Type.Number() })
  ])
  // Refused at ready() before: 'two messages have "type": "constructor"' (found on Object.prototype).
  const { ws } = await serve(t, {}, async (app) => {
    app.get('/odd', { websocket: true, config: { websocket: { receive: In } } }, (socket) => {
      socket.on('message', (data) => { socket.send(String(data)) })
    })
  })
  const client = await connect(t, ws + '/odd')
  for (const type of ['constructor', '__proto__']) {
    client.socket.send(JSON.stringify({ type, n: 1 }))
    assert.equal(await client.next(), JSON.stringify({ type, n: 1 }))
    client.socket.send(JSON.stringify({ type, n: 'x' }))
    assert.deepEqual((await client.json() as { errors: unknown }).errors, [{ path: '/n', message: 'must be number' }])
  }
})

test('closeOnInvalid: 1007 for non-JSON, 1008 for a schema mismatch, 1003 for a binary frame', async (t) => {
  const { ws } = await serve(t, {}, echoRoutes)
  for (const [send, code] of [['nope', 1007], ['{"type":"ping","x":1}', 1008], [Buffer.from([1, 2, 3]), 1003]] as const) {
    const client = await connect(t, ws + '/strict')
    client.socket.send(send)
    assert.equal((await client.closed).code, code, String(send))
  }
})

test('binary frames: refused with an error frame unless the route allows them', async (t) => {
  const { ws } = await serve(t, {}, echoRoutes)
  const refused = await connect(t, ws + '/echo')
  refused.socket.send(Buffer.from([0, 1, 2]))
  assert.deepEqual(await refused.json(), {
    type: TYPE + 'websocket-binary-refused', title: 'Unsupported Media Type', status: 415, detail: 'This WebSocket route does not accept binary messages; send JSON text'
  })
  refused.socket.send('still open')
  assert.equal(await refused.next(), 'still open')
  const allowed = await connect(t, ws + '/binary')
  allowed.socket.send(Buffer.from([0, 1, 2]))
  assert.deepEqual(await allowed.next(), Buffer.from([0, 1, 2]))
})

test('ping/pong: the server answers a client ping; the heartbeat pings, and terminates a socket that does not answer', async (t) => {
  const { ws, logs } = await serve(t, { websocket: { heartbeat: 100 } }, echoRoutes)
  const client = await connect(t, ws + '/echo')
  const pong = new Promise((resolve) => client.socket.once('pong', resolve))
  client.socket.ping('x')
  assert.equal(String(await pong), 'x')
  let pings = 0
  client.socket.on('ping', () => { pings++ })
  const silent = await connect(t, ws + '/echo', undefined, { autoPong: false })
  // A ping every 100 ms: two of them, however late a loaded machine runs the timer.
  await until(() => pings >= 2, 'two pings')
  assert.equal((await silent.closed).code, 1006)
  assert.equal(client.socket.readyState, client.socket.OPEN)
  assert.ok(logs.some((l) => l.msg === 'websocket: no pong to the last ping; terminating the socket'))
})

test('maxPayload: a larger message closes the socket with 1009', async (t) => {
  const { ws, logs } = await serve(t, { websocket: { maxPayload: '1kb' } }, echoRoutes)
  const client = await connect(t, ws + '/echo')
  client.socket.send('x'.repeat(1024))
  assert.equal((await client.next()).length, 1024)
  client.socket.send('x'.repeat(1025))
  // 1009, or 1006 when the server's reset (the big message's bytes are left unread) beats its close frame.
  assert.ok([1009, 1006].includes((await client.closed).code))
  await until(() => logs.some((l) => l.msg === 'websocket closed'), 'the access line')
  assert.equal(logs.find((l) => l.msg === 'websocket closed')?.closeCode, 1009)
})

test('a slow consumer (a client that does not read) is closed with 1013 once maxBuffered is passed', async (t) => {
  let sent = 0
  const { ws, logs } = await serve(t, { websocket: { maxBuffered: '256kb' } }, async (app) => {
    app.get('/flood', { websocket: true }, (socket) => {
      socket.on('message', () => {
        const chunk = 'x'.repeat(64 * 1024)
        // Bounded: 64 MiB at most, far past any socket buffer.
        while (socket.readyState === socket.OPEN && sent < 1024) { socket.send(chunk); sent++ }
      })
    })
  })
  const client = await connect(t, ws + '/flood')
  client.socket.send('go')
  ;(client.socket as unknown as { _socket: { pause: () => void } })._socket.pause()
  // The server's loop runs at once when 'go' arrives: once it has sent anything, it has stopped.
  await until(() => sent > 0, 'the server to send')
  assert.ok(sent < 1024, `the server kept sending: ${sent} chunks`)
  ;(client.socket as unknown as { _socket: { resume: () => void } })._socket.resume()
  assert.equal((await client.closed).code, 1013)
  assert.ok(logs.some((l) => l.msg === 'websocket: the client does not read what is sent; closing with 1013'))
})

test('a handler error closes that socket with 1011, logged with its request id; other sockets carry on', async (t) => {
  const { ws, logs } = await serve(t, {}, async (app) => {
    await echoRoutes(app)
    app.get('/throws', { websocket: true }, () => { throw new Error('boom at open') })
    app.get('/rejects', { websocket: true }, async () => { await sleep(1); throw new Error('boom later') })
    app.get('/listener', { websocket: true }, (socket) => {
      socket.on('message', () => { throw new Error('boom in a listener') })
    })
    app.get('/async-listener', { websocket: true }, (socket) => {
      socket.on('message', async () => { await sleep(1); throw new Error('boom in an async listener') })
    })
  })
  const other = await connect(t, ws + '/echo')
  for (const [path, message] of [['/throws', 'boom at open'], ['/rejects', 'boom later'], ['/listener', 'boom in a listener'], ['/async-listener', 'boom in an async listener']]) {
    const client = await connect(t, ws + path)
    client.socket.send('x')
    assert.deepEqual(await client.closed, { code: 1011, reason: 'internal error' }, path)
    await until(() => logs.some((l) => l.err?.message === message), `the error of ${path} logged`)
    const error = logs.find((l) => l.err?.message === message)
    assert.equal(error?.msg, 'websocket: handler failed; closing the socket with 1011', path)
    assert.equal(error?.reqId, client.headers['x-request-id'], path)
  }
  other.socket.send('alive')
  assert.equal(await other.next(), 'alive')
})

test('socket.send sends anything as ws does: send() and send(null) an empty message, a number its text; counted in the access line', async (t) => {
  const { ws, logs } = await serve(t, {}, async (app) => {
    app.get('/send', { websocket: true }, (socket) => {
      socket.on('message', () => {
        socket.send(undefined as unknown as string)
        socket.send(null as unknown as string)
        socket.send(42 as unknown as string)
        socket.send('after')
      })
    })
  })
  const client = await connect(t, ws + '/send')
  client.socket.send('go')
  assert.deepEqual([await client.next(), await client.next(), await client.next(), await client.next()], [Buffer.alloc(0), Buffer.alloc(0), '42', 'after'])
  client.socket.close(1000)
  assert.equal((await client.closed).code, 1000)
  await until(() => logs.some((l) => l.msg === 'websocket closed'), 'the access line')
  const line = logs.find((l) => l.msg === 'websocket closed')
  assert.deepEqual([line?.messagesOut, line?.bytesOut, line?.closeCode], [4, 7, 1000])
})

test('a close ws refuses (an invalid code, a reason over 123 bytes) is a handler error: 1011, and the access line says 1011, not the code never sent', async (t) => {
  const { ws, logs } = await serve(t, {}, async (app) => {
    app.get('/close', { websocket: true }, (socket) => {
      socket.on('message', (data) => { if (String(data) === 'code') socket.close(999); else socket.close(1000, 'x'.repeat(124)) })
    })
  })
  for (const [message, error] of [['code', 'First argument must be a valid error code number'], ['reason', 'The message must not be greater than 123 bytes']]) {
    const client = await connect(t, ws + '/close')
    client.socket.send(message)
    assert.deepEqual(await client.closed, { code: 1011, reason: 'internal error' }, message)
    await until(() => logs.some((l) => l.reqId === client.headers['x-request-id'] && l.msg === 'websocket closed'), `the access line (${message})`)
    assert.equal(logs.find((l) => l.reqId === client.headers['x-request-id'] && l.err !== undefined)?.err.message, error, message)
    const line = logs.find((l) => l.reqId === client.headers['x-request-id'] && l.msg === 'websocket closed')
    assert.equal(line?.closeCode, 1011, message)
  }
})

test('with requestContext on, the handler\'s message and close listeners, and the tasks they add, see the upgrade\'s request id', async (t) => {
  const seen: Array<[string, string | null]> = []
  const { app, ws } = await serve(t, { requestContext: true }, async (app) => {
    app.get('/context', { websocket: true }, (socket, request) => {
      socket.on('message', () => {
        seen.push(['message', requestContext.get('requestId') ?? null])
        request.tasks.add(function fromListener () { seen.push(['task', requestContext.get('requestId') ?? null]) })
        socket.send('ok')
      })
      socket.on('close', () => { seen.push(['close', requestContext.get('requestId') ?? null]) })
    })
  })
  const client = await connect(t, ws + '/context')
  client.socket.send('x')
  assert.equal(await client.next(), 'ok')
  await app.tasks.idle()
  client.socket.close(1000)
  await client.closed
  // The server's close listener runs on the server's 'close', not with the client's.
  await until(() => seen.length === 3, `the close listener (seen: ${JSON.stringify(seen)})`)
  const id = String(client.headers['x-request-id'])
  assert.match(id, UUID)
  assert.deepEqual(seen, [['message', id], ['task', id], ['close', id]])
})

test('sendJson: JSON out, validated against send outside production (a mismatch is a handler error, 1011)', async (t) => {
  const Out = Type.Object({ type: Type.Literal('said'), text: Type.String() })
  const { ws, logs } = await serve(t, {}, async (app) => {
    app.get('/out', { websocket: true, config: { websocket: { send: Out } } }, (socket) => {
      socket.on('message', (data) => {
        // The handler's socket type comes from @fastify/websocket's CJS view of ws, which the ESM augmentation does not reach.
        ;(socket as unknown as { sendJson: (v: unknown) => void }).sendJson(String(data) === 'bad' ? { type: 'said', text: 1 } : { type: 'said', text: String(data) })
      })
    })
  })
  const client = await connect(t, ws + '/out')
  client.socket.send('hi')
  assert.deepEqual(await client.json(), { type: 'said', text: 'hi' })
  client.socket.send('bad')
  assert.equal((await client.closed).code, 1011)
  await until(() => logs.some((l) => l.err !== undefined), 'the refused send logged')
  assert.match(logs.find((l) => l.err !== undefined)?.err.message, /^websocket: a message sent on GET \/out does not match config.websocket.send: /)
})

test('options: invalid ones fail at ready() naming the key; the feature off refuses a websocket route', async (t) => {
  await assertOptionsRefused('websocket', { heartbeat: 'often' }, ['websocket.heartbeat: expected a duration of at least 10ms (milliseconds, or a string such as "30s", "1m", "1h"), found "often"'])
  await assertOptionsRefused('websocket', { maxConnections: 0 }, ['websocket.maxConnections: expected an integer >= 1, found 0'])
  await assertOptionsRefused('websocket', { maxConnections: 1.5 }, ['websocket.maxConnections: expected an integer >= 1, found 1.5'])
  await assertOptionsRefused('websocket', { maxPayload: 0 }, ['websocket.maxPayload: expected a size (bytes, or a string such as "512kb", "1mb") of at least 1 byte, found 0'])
  await assertOptionsRefused('websocket', { origins: ['example.com'] }, ['websocket.origins[0]: expected an origin such as "https://app.example.com" (scheme, host and port, no path), or "*", found "example.com"'])
  await assertOptionsRefused('websocket', { maxBufered: '1mb' }, ['websocket.maxBufered: unknown key (did you mean "maxBuffered"?)'])
  await assert.rejects(build({ websocket: false, server: { logger: { level: 'silent' } } }, async (app) => {
    app.get('/ws', { websocket: true }, () => {})
  }), (error: unknown) => error instanceof SpikardConfigError && /route GET \/ws: the websocket route option is set but the websocket feature is off/.test(error.message))
  await assert.rejects(build({ server: { logger: { level: 'silent' } } }, async (app) => {
    app.get('/plain', { config: { websocket: { binary: true } } }, async () => 'x')
  }), (error: unknown) => error instanceof SpikardConfigError && /config.websocket is set but the route has no `websocket: true`/.test(error.message))
  await assert.rejects(build({ server: { logger: { level: 'silent' } } }, async (app) => {
    app.get('/ws', { websocket: true, config: { websocket: { receive: { type: 'nonsense' } } } }, () => {})
  }), (error: unknown) => error instanceof SpikardConfigError && /route GET \/ws/.test(error.message) && /config.websocket.receive/.test(error.message))
  const { app } = await build({ websocket: false, server: { logger: { level: 'silent' } } })
  t.after(() => app.close())
  assert.throws(() => app.spikard.rooms, /the websocket feature is off/)
  assert.equal(app.hasDecorator('injectWS'), false)
})
