/**
 * Server-Sent Events (`sse`), with real clients on a listening server at 127.0.0.1: the
 * `eventsource` npm client (what a Node consumer uses) and node:http reads of the raw
 * stream (the exact bytes). The browser's own EventSource is in test/browser/sse.test.ts.
 * Every wait is bounded; keep-alive is the option's minimum, 1s.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http, { type IncomingHttpHeaders } from 'node:http'
import net from 'node:net'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { EventSource } from 'eventsource'
import { Validator } from '@seriousme/openapi-schema-validator'
import spikard from '../../src/spikard.js'
import type { CreateServerConfig } from '../../src/server.js'
import { SpikardConfigError } from '../../src/errors.js'
import { assertOptionsRefused, build, listen, rawRequest, until, withTimeout, UUID } from '../helpers.js'

const QUIET = { logger: { level: 'silent' as const } }

/** A listening app, closed when the test ends. */
async function serve (t: TestContext, config: CreateServerConfig, routes: FastifyPluginAsync) {
  const built = await build({ server: { logger: { level: 'info' } }, ...config }, routes)
  t.after(() => built.app.close())
  const { url, port } = await listen(built.app)
  return { ...built, url, port }
}

/** A raw read of a response: its head, and its body as it arrives, with when each piece came. */
interface RawStream {
  status: number
  headers: IncomingHttpHeaders
  text: () => string
  /** Resolves once the body so far contains `what`; rejects after `ms`. */
  waitFor: (what: string, ms?: number) => Promise<number>
  /** Resolves when the server ends the response (or the connection goes). */
  ended: Promise<'end' | 'close'>
  close: () => void
}

async function openRaw (url: string, path: string, headers: Record<string, string> = {}): Promise<RawStream> {
  return await withTimeout(new Promise<RawStream>((resolve, reject) => {
    const request = http.get(url + path, { agent: false, headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      let body = ''
      const waiters: Array<{ what: string, resolve: (at: number) => void }> = []
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
        for (const w of [...waiters]) if (body.includes(w.what)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(Date.now()) }
      })
      const ended = new Promise<'end' | 'close'>((resolve) => {
        response.on('end', () => resolve('end'))
        response.on('close', () => resolve('close'))
        response.on('error', () => resolve('close'))
      })
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        text: () => body,
        waitFor: async (what, ms = 5000) => {
          if (body.includes(what)) return Date.now()
          return await withTimeout(new Promise<number>((resolve) => waiters.push({ what, resolve })), ms, `${JSON.stringify(what)} in ${JSON.stringify(body)}`)
        },
        ended,
        close: () => request.destroy()
      })
    })
    request.on('error', reject)
  }), 5000, `GET ${path}`)
}

interface Received { type: string, data: string, lastEventId: string }

/** An `eventsource` client collecting every event of the given names (and `message`). */
function eventSource (url: string, names: string[] = [], init: { headers?: Record<string, string> } = {}) {
  const received: Received[] = []
  const errors: Array<{ code?: number, message?: string }> = []
  const source = new EventSource(url, {
    fetch: async (input, options) => await fetch(input, { ...options, headers: { ...options?.headers, ...init.headers } })
  })
  for (const name of new Set(['message', ...names])) {
    source.addEventListener(name, (event) => { received.push({ type: event.type, data: event.data, lastEventId: event.lastEventId }) })
  }
  source.addEventListener('error', (event) => { errors.push({ code: (event as { code?: number }).code, message: (event as { message?: string }).message }) })
  return { source, received, errors }
}

test('events: ids, names, JSON and text data, multi-line data, retry; the eventsource client reads them as sent', async (t) => {
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      await reply.sse.send({ id: '1', event: 'greeting', data: 'hello' })
      await reply.sse.send({ id: 2 as unknown as string, data: { n: 2, text: 'two' } })
      await reply.sse.send({ id: 0 as unknown as string, event: 'lines', data: 'first\nsecond\r\nthird\rfourth' })
      await reply.sse.send({ event: 'greeting', data: '', retry: 5000 })
      await reply.sse.send('a plain string')
      await reply.sse.send(Buffer.from('a buffer'))
    })
  })
  const raw = await openRaw(url, '/events')
  assert.equal(await raw.ended, 'end')
  assert.equal(raw.text(),
    'id: 1\nevent: greeting\ndata: hello\n\n' +
    'id: 2\ndata: {"n":2,"text":"two"}\n\n' +
    'id: 0\nevent: lines\ndata: first\ndata: second\ndata: third\ndata: fourth\n\n' +
    'event: greeting\ndata: \nretry: 5000\n\n' +
    'data: a plain string\n\n' +
    'data: a buffer\n\n')

  const { source, received } = eventSource(`${url}/events`, ['greeting', 'lines'])
  t.after(() => source.close())
  await until(() => received.length >= 6, 'six events')
  source.close()
  assert.deepEqual(received.slice(0, 6), [
    { type: 'greeting', data: 'hello', lastEventId: '1' },
    { type: 'message', data: '{"n":2,"text":"two"}', lastEventId: '2' },
    { type: 'lines', data: 'first\nsecond\nthird\nfourth', lastEventId: '0' },
    { type: 'greeting', data: '', lastEventId: '0' },
    { type: 'message', data: 'a plain string', lastEventId: '0' },
    { type: 'message', data: 'a buffer', lastEventId: '0' }
  ])
})

test('retry: 0 (reconnect at once) is written, as any other retry', async (t) => {
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      await reply.sse.send({ data: 'now', retry: 0 })
    })
  })
  const raw = await openRaw(url, '/events')
  assert.equal(await raw.ended, 'end')
  assert.equal(raw.text(), 'data: now\nretry: 0\n\n')
})

test('a data string holding CR or LF cannot inject a field or a second event; an id or name holding them is refused, as is a Promise or a synchronous iterable in place of an event', async (t) => {
  const attacks = ['x\r\rdata: injected', 'x\n\nevent: evil\ndata: injected', 'x\revent: evil', 'x\r\nid: 666\r\n\r\ndata: injected', 'x\n: comment\nretry: 1']
  const refused: string[] = []
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      for (const data of attacks) await reply.sse.send({ id: 'safe', data })
      for (const event of [{ id: 'a\nevent: evil', data: 'x' }, { id: 'a\rb', data: 'x' }, { id: 'a\0b', data: 'x' }, { event: 'a\r\ndata: evil', data: 'x' }, { event: '', data: 'x' }, { data: 'x', retry: -1 }, { data: 'x', retry: 1.5 }, { payload: 'x' }, Promise.resolve({ data: 'x' }), (function * () { yield { data: 'x' } })(), new Map([['data', 'x']])]) {
        try {
          await reply.sse.send(event as never)
        } catch (error) {
          refused.push((error as Error).message)
        }
      }
      await reply.sse.send({ event: 'end', data: 'done' })
    })
  })
  const { source, received } = eventSource(`${url}/events`, ['evil', 'end'])
  t.after(() => source.close())
  await until(() => received.some((e) => e.type === 'end'), 'the end event')
  source.close()
  assert.deepEqual(received.map((e) => e.type), ['message', 'message', 'message', 'message', 'message', 'end'])
  assert.deepEqual(received.slice(0, 5).map((e) => e.data), [
    'x\n\ndata: injected', 'x\n\nevent: evil\ndata: injected', 'x\nevent: evil', 'x\nid: 666\n\ndata: injected', 'x\n: comment\nretry: 1'
  ])
  assert.ok(received.every((e) => e.lastEventId === 'safe'))
  assert.deepEqual(refused, [
    'sse: an event id must be a string or a number without CR, LF or NUL, found "a\\nevent: evil"',
    'sse: an event id must be a string or a number without CR, LF or NUL, found "a\\rb"',
    'sse: an event id must be a string or a number without CR, LF or NUL, found "a\\u0000b"',
    'sse: an event name must be a non-empty string without CR or LF, found "a\\r\\ndata: evil"',
    'sse: an event name must be a non-empty string without CR or LF, found ""',
    'sse: retry must be a whole number of milliseconds >= 0, found -1',
    'sse: retry must be a whole number of milliseconds >= 0, found 1.5',
    'sse: an event has id, event, data and retry; found "payload" (put the payload in data)',
    'sse: expected an event ({ id, event, data, retry }), found a Promise (await it, then send its event)',
    'sse: expected an event ({ id, event, data, retry }), found a synchronous iterable (send an async iterable, or each event)',
    'sse: expected an event ({ id, event, data, retry }), found a synchronous iterable (send an async iterable, or each event)'
  ])
})

test('headers: text/event-stream, Cache-Control no-cache, X-Accel-Buffering no, the request id; never compressed, whatever the client accepts', async (t) => {
  const { url } = await serve(t, { server: QUIET, compression: { threshold: 1 } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      for (let i = 0; i < 50; i++) await reply.sse.send({ id: String(i), data: { text: 'compressible '.repeat(20) } })
    })
    app.get('/json', async () => ({ text: 'compressible '.repeat(20) }))
  })
  for (const encoding of ['gzip', 'br', 'gzip, deflate, br', '*']) {
    const raw = await openRaw(url, '/events', { 'accept-encoding': encoding })
    await raw.ended
    assert.equal(raw.status, 200)
    assert.equal(raw.headers['content-type'], 'text/event-stream')
    assert.equal(raw.headers['cache-control'], 'no-cache')
    assert.equal(raw.headers['x-accel-buffering'], 'no')
    assert.match(String(raw.headers['x-request-id']), UUID)
    assert.equal(raw.headers['content-encoding'], undefined, encoding)
    assert.ok(raw.text().startsWith(`id: 0\ndata: {"text":"${'compressible '.repeat(20)}"}\n\n`))
    assert.equal(raw.text().split('\n\n').length - 1, 50)
  }
  // The same app compresses its JSON: the compression feature is on.
  const json = await fetch(`${url}/json`, { headers: { 'accept-encoding': 'gzip' } })
  assert.equal(json.headers.get('content-encoding'), 'gzip')
})

test('a client that sends Connection: close (or speaks HTTP/1.0): the stream says Connection: close and the server closes the connection once it ends', async (t) => {
  const { port } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      await reply.sse.send({ id: '1', data: 'one' })
    })
  })
  // rawRequest reads until the server closes the connection: @fastify/sse's hand-set
  // `Connection: keep-alive` kept it open (until the keep-alive timeout, 72 s) after the stream.
  for (const request of [
    'GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n',
    'GET /events HTTP/1.0\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n'
  ]) {
    const response = await withTimeout(rawRequest(port, request), 2000, request.split('\r\n')[0])
    assert.equal(response.status, 200)
    assert.equal(response.headers['content-type'], 'text/event-stream')
    assert.equal(response.headers.connection, 'close')
    assert.match(response.body, /id: 1\ndata: one\n\n/)
  }
  // A client that keeps its connection still gets the stream's keep-alive.
  const raw = await openRaw(`http://127.0.0.1:${port}`, '/events', { connection: 'keep-alive' })
  t.after(raw.close)
  await raw.ended
  assert.equal(raw.headers.connection, 'keep-alive')
})

test('keep-alive: a comment line every sse.keepAlive on an idle stream; a route with heartbeat: false gets none', async (t) => {
  const { url } = await serve(t, { server: QUIET, sse: { keepAlive: '1s' } }, async (app) => {
    app.get('/idle', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ event: 'ready', data: 'ok' })
    })
    app.get('/quiet', { sse: { heartbeat: false } }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ event: 'ready', data: 'ok' })
    })
  })
  const idle = await openRaw(url, '/idle')
  const quiet = await openRaw(url, '/quiet')
  t.after(() => { idle.close(); quiet.close() })
  const start = await idle.waitFor('event: ready\ndata: ok\n\n')
  const first = await idle.waitFor(': heartbeat\n\n', 2000)
  assert.ok(first - start >= 900 && first - start <= 1500, `first comment after ${first - start} ms`)
  await idle.waitFor(': heartbeat\n\n: heartbeat\n\n', 2000)
  assert.equal(idle.text(), 'event: ready\ndata: ok\n\n: heartbeat\n\n: heartbeat\n\n')
  assert.equal(quiet.text(), 'event: ready\ndata: ok\n\n')
})

test('Last-Event-ID: the handler sees it (request.headers and reply.sse.lastEventId) and resumes; the eventsource client sends it on reconnect', async (t) => {
  const seen: Array<string | null> = []
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/feed', { sse: true }, async (request, reply) => {
      seen.push(reply.sse.lastEventId)
      assert.equal(request.headers['last-event-id'], reply.sse.lastEventId ?? undefined)
      const from = Number(reply.sse.lastEventId ?? 0) + 1
      // Two events a connection, then the stream ends and the client reconnects in 50 ms.
      for (let id = from; id < from + 2 && id <= 5; id++) await reply.sse.send({ id: String(id), data: `event ${id}`, retry: 50 })
    })
  })
  const raw = await openRaw(url, '/feed', { 'last-event-id': '3' })
  await raw.ended
  assert.equal(raw.text(), 'id: 4\ndata: event 4\nretry: 50\n\nid: 5\ndata: event 5\nretry: 50\n\n')

  const { source, received } = eventSource(`${url}/feed`)
  t.after(() => source.close())
  await until(() => received.length >= 5, 'five events over three connections')
  source.close()
  assert.deepEqual(received.map((e) => [e.data, e.lastEventId]), [['event 1', '1'], ['event 2', '2'], ['event 3', '3'], ['event 4', '4'], ['event 5', '5']])
  assert.deepEqual(seen.slice(0, 4), ['3', null, '2', '4'])
})

test('a client that goes away: noticed at once (reply.sse.onClose, request.signal), an async source is ended and its finally runs; within one keep-alive at the latest', async (t) => {
  const log: Array<{ what: string, at: number }> = []
  let opened = 0
  const { url, logs } = await serve(t, { sse: { keepAlive: '1s' } }, async (app) => {
    app.get('/generator', { sse: true }, async (request, reply) => {
      opened = Date.now()
      reply.sse.onClose(() => log.push({ what: 'onClose', at: Date.now() }))
      request.signal.addEventListener('abort', () => log.push({ what: 'signal', at: Date.now() }))
      async function * ticks () {
        try {
          for (let i = 0; ; i++) {
            yield { id: String(i), data: 'tick' }
            // A wait that ends when the client goes away.
            await sleep(60_000, undefined, { signal: request.signal }).catch(() => {})
          }
        } finally {
          log.push({ what: 'finally', at: Date.now() })
        }
      }
      await reply.sse.send(ticks())
      log.push({ what: 'handler returned', at: Date.now() })
    })
    app.get('/slow-generator', { sse: true }, async (_request, reply) => {
      async function * slow () {
        try {
          for (let i = 0; ; i++) {
            yield { data: String(i) }
            await sleep(300)
          }
        } finally {
          log.push({ what: 'slow finally', at: Date.now() })
        }
      }
      await reply.sse.send(slow())
    })
    app.get('/readable', { sse: true }, async (_request, reply) => {
      const source = new Readable({ objectMode: true, read () {} })
      source.push({ data: 'first' })
      source.on('close', () => log.push({ what: 'readable destroyed', at: Date.now() }))
      await reply.sse.send(source)
    })
  })

  const raw = await openRaw(url, '/generator')
  await raw.waitFor('id: 0\ndata: tick\n\n')
  const closedAt = Date.now()
  raw.close()
  await until(() => log.some((l) => l.what === 'finally') && log.some((l) => l.what === 'handler returned'), 'the cleanup')
  for (const what of ['onClose', 'signal', 'finally', 'handler returned']) {
    const entry = log.find((l) => l.what === what)
    assert.ok(entry !== undefined && entry.at - closedAt < 1000, `${what} ${entry === undefined ? 'never ran' : `after ${entry.at - closedAt} ms`}`)
  }
  assert.ok(opened > 0)

  const slow = await openRaw(url, '/slow-generator')
  await slow.waitFor('data: 0\n\n')
  const slowClosed = Date.now()
  slow.close()
  await until(() => log.some((l) => l.what === 'slow finally'), 'the slow generator\'s finally', 2000)
  assert.ok((log.find((l) => l.what === 'slow finally')?.at ?? Infinity) - slowClosed < 1000)

  const readable = await openRaw(url, '/readable')
  await readable.waitFor('data: first\n\n')
  const readableClosed = Date.now()
  readable.close()
  await until(() => log.some((l) => l.what === 'readable destroyed'), 'the Readable destroyed', 2000)
  assert.ok((log.find((l) => l.what === 'readable destroyed')?.at ?? Infinity) - readableClosed < 1000)
  // The access log has the stream, marked aborted.
  await until(() => logs.filter((l) => l.msg === 'request aborted' && l.route === '/generator').length === 1, 'the access line')
})

test('the access line of a stream the client leaves: one "request aborted" line with the status sent, the duration and the client address (and none for a route with logging: false)', async (t) => {
  const { url, logs } = await serve(t, { sse: { keepAlive: '1s' } }, async (app) => {
    app.get('/open', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'hello' })
    })
    app.get('/quiet', { sse: true, config: { logging: false } }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'hello' })
    })
  })
  for (const path of ['/open', '/quiet']) {
    const raw = await openRaw(url, path)
    await raw.waitFor('data: hello\n\n')
    await sleep(50)
    raw.close()
  }
  await until(() => logs.some((l) => l.route === '/open'), 'the access line of /open')
  await sleep(100)
  const lines = logs.filter((l) => l.route === '/open' || l.route === '/quiet')
  assert.equal(lines.length, 1, JSON.stringify(lines))
  const [line] = lines
  assert.equal(line.msg, 'request aborted')
  assert.equal(line.aborted, true)
  assert.equal(line.status, 200, 'the head was sent: its status is in the line')
  assert.ok(typeof line.durationMs === 'number' && line.durationMs >= 50, `durationMs ${String(line.durationMs)}`)
  assert.equal(line.bytes, undefined, 'a chunked response that the stream feature did not send has no bytes')
  assert.equal(line.remoteAddress, '127.0.0.1', 'the client that left')
  assert.match(line.reqId, UUID)
})

test('a client that stops reading, then goes away: the source\'s finally runs and the handler\'s send settles', async (t) => {
  const seen: string[] = []
  const { port } = await serve(t, {}, async (app) => {
    app.get('/flood', { sse: true }, async (_request, reply) => {
      const big = 'x'.repeat(64 * 1024)
      async function * flood () {
        try {
          for (let i = 0; ; i++) yield { data: big }
        } finally {
          seen.push('finally')
        }
      }
      await reply.sse.send(flood())
      seen.push('send settled')
    })
  })
  await stallThenLeave(port, '/flood')
  await until(() => seen.length === 2, 'the finally and the send', 3000)
  assert.deepEqual(seen, ['finally', 'send settled'])
})

/** A client that opens the stream, stops reading (the server's writes wait for a drain that never comes), then goes away. */
async function stallThenLeave (port: number, path: string): Promise<void> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  await sleep(300)
  socket.destroy()
}

test('a client that stops reading, then goes away: a handler awaiting each single event\'s send is not left waiting for ever', async (t) => {
  const seen: string[] = []
  const { port } = await serve(t, {}, async (app) => {
    app.get('/loop', { sse: true }, async (_request, reply) => {
      const big = 'x'.repeat(64 * 1024)
      for (let i = 0; i < 10_000 && reply.sse.isConnected; i++) await reply.sse.send({ data: big })
      seen.push('send settled')
    })
  })
  await stallThenLeave(port, '/loop')
  await until(() => seen.length === 1, 'the send settled', 3000)
  assert.deepEqual(seen, ['send settled'])
})

test('a Readable sent to a stream the client has already left is destroyed, and the send throws', async (t) => {
  const seen: string[] = []
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/late', { sse: 'only' }, async (request, reply) => {
      // The client leaves while the handler prepares its source.
      await new Promise((resolve) => request.raw.socket.once('close', resolve))
      const readable = new Readable({ objectMode: true, read () {} })
      readable.on('close', () => seen.push('readable closed'))
      try {
        await reply.sse.send(readable)
      } catch (error) {
        seen.push((error as Error).message)
      }
    })
  })
  const request = http.get(`${url}/late`, { agent: false })
  request.on('error', () => {})
  await sleep(100)
  request.destroy()
  await until(() => seen.length === 2, 'the send refused and the Readable closed', 2000)
  assert.deepEqual(seen.sort(), ['SSE connection is closed', 'readable closed'])
})

test('sse.maxBuffered: a client that does not read has its stream closed once that much waits unsent, and it is logged', async (t) => {
  let closed = false
  const { port, logs } = await serve(t, { sse: { maxBuffered: '256kb' } }, async (app) => {
    app.get('/bus', { sse: true }, async (_request, reply) => {
      const big = 'x'.repeat(16 * 1024)
      // Events sent without waiting, as from a bus.
      const timer = setInterval(() => { if (reply.sse.isConnected) void reply.sse.send({ data: big }) }, 1)
      reply.sse.onClose(() => { closed = true; clearInterval(timer) })
      reply.sse.keepAlive()
    })
  })
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  socket.on('error', () => {})
  socket.write('GET /bus HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  await until(() => closed, 'the stream closed')
  const warning = logs.find((l) => l.msg === 'sse: stream closed: the client does not read its events')
  assert.ok(warning !== undefined && warning.unsent > 256 * 1024 && warning.maxBuffered === 256 * 1024, JSON.stringify(warning))
})

test('request.signal is aborted when the stream closes, with the timeout feature off too, and at a handler timeout before the stream opens', async (t) => {
  for (const timeout of [false, { handler: '300ms' }] as const) {
    const aborted: Array<{ path: string, reason: string }> = []
    const { url } = await serve(t, { server: QUIET, timeout }, async (app) => {
      for (const path of ['/client-leaves', '/server-closes', '/slow-start']) {
        app.get(path, { sse: true }, async (request, reply) => {
          request.signal.addEventListener('abort', () => {
            const reason = request.signal.reason as { name?: string, code?: unknown }
            aborted.push({ path, reason: reason?.name === 'AbortError' ? 'AbortError' : String(reason?.code) })
          })
          if (path === '/slow-start') await sleep(600, undefined, { signal: request.signal }).catch(() => {})
          if (path === '/client-leaves') reply.sse.keepAlive()
          await reply.sse.send({ data: 'open' }).catch(() => {})
        })
      }
    })
    const leaves = await openRaw(url, '/client-leaves')
    await leaves.waitFor('data: open')
    leaves.close()
    const closes = await openRaw(url, '/server-closes')
    await closes.ended
    const slow = await openRaw(url, '/slow-start')
    await slow.ended
    await until(() => aborted.length >= 3, `the aborts (${JSON.stringify(aborted)})`, 2000)
    await sleep(50)
    assert.deepEqual(aborted.sort((a, b) => a.path.localeCompare(b.path)), timeout === false
      ? [{ path: '/client-leaves', reason: 'AbortError' }, { path: '/server-closes', reason: 'AbortError' }, { path: '/slow-start', reason: 'AbortError' }]
      : [{ path: '/client-leaves', reason: 'AbortError' }, { path: '/server-closes', reason: 'AbortError' }, { path: '/slow-start', reason: 'SPK_ERR_HANDLER_TIMEOUT' }])
    assert.equal(slow.status, timeout === false ? 200 : 503)
  }
})

test('a client that stops without closing is noticed by the keep-alive write: the stream is closed and cleaned up', async (t) => {
  let closed = 0
  const { url } = await serve(t, { server: QUIET, sse: { keepAlive: '1s' } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      reply.sse.onClose(() => { closed = Date.now() })
      await reply.sse.send({ data: 'hello' })
    })
  })
  // Half-closed: the client ends its side (FIN) but the socket stays; Node notices the end
  // or, at the latest, the next comment's write fails.
  const { port } = new URL(url)
  const net = await import('node:net')
  const socket = net.connect(Number(port), '127.0.0.1')
  t.after(() => socket.destroy())
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => { received += chunk })
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')
  await until(() => received.includes('data: hello\n\n'), 'the first event')
  const ended = Date.now()
  socket.end()
  await until(() => closed > 0, 'the stream noticed closed', 3000)
  assert.ok(closed - ended <= 1500, `noticed after ${closed - ended} ms`)
})

test('auth and rate limits apply to the request that opens the stream: 401 and 429 problems, never an event', async (t) => {
  let handled = 0
  const { url } = await serve(t, { server: QUIET, auth: { apiKey: { keys: ['k-0123456789abcdef'] } }, rateLimit: { max: 2, timeWindow: '1m' } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      handled++
      await reply.sse.send({ data: 'secret' })
    })
  })
  const anonymous = await openRaw(url, '/events')
  await anonymous.ended
  assert.equal(anonymous.status, 401)
  assert.equal(anonymous.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.equal(JSON.parse(anonymous.text()).type, 'https://spikard.dev/errors/unauthorized')

  const { source, errors } = eventSource(`${url}/events`)
  t.after(() => source.close())
  await until(() => errors.length > 0, 'the client\'s error')
  assert.equal(errors[0].code, 401)
  assert.equal(source.readyState, source.CLOSED)

  // Two requests per minute, the two 401s included: the third is refused before auth.
  const limited = await openRaw(url, '/events', { 'x-api-key': 'k-0123456789abcdef' })
  await limited.ended
  assert.equal(limited.status, 429)
  assert.equal(JSON.parse(limited.text()).type, 'https://spikard.dev/errors/rate-limited')
  assert.equal(handled, 0)
})

test('authenticated, the stream opens', async (t) => {
  const { url } = await serve(t, { server: QUIET, auth: { apiKey: { keys: ['k-0123456789abcdef'] } } }, async (app) => {
    app.get('/events', { sse: true }, async (request, reply) => {
      await reply.sse.send({ data: { caller: request.identity?.id ?? null } })
    })
  })
  const { source, received, errors } = eventSource(`${url}/events`, [], { headers: { 'x-api-key': 'k-0123456789abcdef' } })
  t.after(() => source.close())
  await until(() => received.length > 0, 'the event')
  source.close()
  // (The stream ended after its event: the client reports it, without a status, and reconnects.)
  assert.deepEqual(errors.filter((e) => e.code !== undefined), [])
  assert.equal(typeof JSON.parse(received[0].data).caller, 'string')
})

test('background tasks a stream\'s request adds run once the stream opens, not when it ends; the client leaving does not drop them', async (t) => {
  const ran: string[] = []
  const { app, url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/feed', { sse: true }, async (request, reply) => {
      request.tasks.add(async function before () { ran.push('before') })
      await reply.sse.send({ data: 'first' })
      request.tasks.add(async function after () { ran.push('after') })
      reply.sse.keepAlive()
    })
  })
  const stream = await openRaw(url, '/feed')
  await stream.waitFor('data: first\n\n')
  await until(() => ran.length === 2, 'both tasks run while the stream is open', 2000)
  assert.deepEqual(ran.sort(), ['after', 'before'])
  stream.close()
  await app.tasks.idle()
  assert.deepEqual(app.tasks.stats(), { queued: 0, running: 0, succeeded: 2, failed: 0, cancelled: 0 })
})

test('HEAD on an event-stream route: the head of a stream at once, the handler not run', async (t) => {
  let runs = 0
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/feed', { sse: 'only' }, async (_request, reply) => {
      runs++
      await reply.sse.send({ data: 'hello' })
      reply.sse.keepAlive()
    })
  })
  const head = await withTimeout(new Promise<http.IncomingMessage>((resolve, reject) => {
    const request = http.request(`${url}/feed`, { method: 'HEAD', agent: false }, resolve)
    request.on('error', reject)
    t.after(() => request.destroy())
    request.end()
  }), 2000, 'the HEAD response')
  assert.equal(head.statusCode, 200)
  assert.equal(head.headers['content-type'], 'text/event-stream')
  assert.equal(head.headers['cache-control'], 'no-cache')
  assert.equal(runs, 0)
})

test('sse.maxConnections: past it, a 503 problem before any event; a closed stream frees its place', async (t) => {
  const { url } = await serve(t, { server: QUIET, sse: { maxConnections: 2 } }, async (app) => {
    app.get('/events', { sse: 'only' }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'open' })
    })
    app.get('/json', async () => ({ ok: true }))
  })
  const first = await openRaw(url, '/events')
  const second = await openRaw(url, '/events')
  t.after(() => { first.close(); second.close() })
  await first.waitFor('data: open')
  await second.waitFor('data: open')
  const third = await openRaw(url, '/events')
  await third.ended
  assert.equal(third.status, 503)
  assert.equal(third.headers['content-type'], 'application/problem+json; charset=utf-8')
  const problem = JSON.parse(third.text())
  assert.deepEqual({ ...problem, requestId: undefined }, {
    type: 'https://spikard.dev/errors/too-many-streams',
    title: 'Service Unavailable',
    status: 503,
    detail: 'This server already has 2 open event streams; retry shortly or on another instance',
    instance: '/events',
    requestId: undefined
  })
  // Other routes are not counted.
  assert.equal((await fetch(`${url}/json`)).status, 200)

  first.close()
  await sleep(100)
  const fourth = await openRaw(url, '/events')
  t.after(() => fourth.close())
  assert.equal(fourth.status, 200)
  await fourth.waitFor('data: open')
})

test('shutdown: each open stream gets sse.shutdownEvent (retry included) and is closed within the drain budget; the eventsource client is told to retry', async (t) => {
  const cleaned: string[] = []
  const { app, url } = await serve(t, { server: QUIET, sse: { keepAlive: '1s' }, shutdown: { timeout: '5s' } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      reply.sse.onClose(() => cleaned.push('keep-alive stream'))
      await reply.sse.send({ id: '7', data: 'hello' })
    })
    app.get('/generator', { sse: true }, async (_request, reply) => {
      async function * forever () {
        try {
          for (let i = 0; ; i++) {
            yield { data: String(i) }
            await sleep(100)
          }
        } finally {
          cleaned.push('generator')
        }
      }
      await reply.sse.send(forever())
    })
    app.get('/not-started', { sse: true }, async (_request, reply) => {
      // Still waiting for its first event at shutdown.
      await sleep(60_000)
      await reply.sse.send({ data: 'late' }).catch(() => {})
    })
  })
  const a = await openRaw(url, '/events')
  const b = await openRaw(url, '/generator')
  const c = openRaw(url, '/not-started')
  await a.waitFor('data: hello')
  await b.waitFor('data: 0')
  await sleep(100)
  const started = Date.now()
  await withTimeout(app.close(), 4000, 'app.close()')
  assert.ok(Date.now() - started < 3000, `closed in ${Date.now() - started} ms`)
  const final = 'event: shutdown\ndata: server shutting down\nretry: 1000\n\n'
  assert.equal(await a.ended, 'end')
  assert.equal(a.text(), `id: 7\ndata: hello\n\n${final}`)
  assert.equal(await b.ended, 'end')
  assert.ok(b.text().endsWith(`\n\n${final}`), b.text())
  const notStarted = await c
  await notStarted.ended
  assert.equal(notStarted.status, 200)
  assert.equal(notStarted.text(), final)
  await until(() => cleaned.length === 2, 'both cleanups', 1000)
  assert.deepEqual(cleaned.sort(), ['generator', 'keep-alive stream'])
})

test('shutdown with a custom sse.shutdownEvent, and with false (closed without one); the eventsource client reconnects as told', async (t) => {
  for (const [shutdownEvent, expected] of [
    [{ event: 'bye', data: 'moving', retry: 250 }, 'data: 1\n\nevent: bye\ndata: moving\nretry: 250\n\n'],
    [false, 'data: 1\n\n']
  ] as const) {
    const { app, url } = await serve(t, { server: QUIET, sse: { shutdownEvent } }, async (app) => {
      app.get('/events', { sse: true }, async (_request, reply) => {
        reply.sse.keepAlive()
        await reply.sse.send({ data: '1' })
      })
    })
    const raw = await openRaw(url, '/events')
    await raw.waitFor('data: 1')
    await withTimeout(app.close(), 4000, 'app.close()')
    assert.equal(await raw.ended, 'end')
    assert.equal(raw.text(), expected)
  }

  // A browser-like client: the final event's retry sends it to "another instance" (here a second server).
  const other = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      await reply.sse.send({ data: 'from the other instance' })
      reply.sse.close()
    })
  })
  const { app, url } = await serve(t, { server: QUIET, sse: { shutdownEvent: { retry: 100 } } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'from the first instance' })
    })
  })
  let target = `${url}/events`
  const received: string[] = []
  const source = new EventSource(`${url}/events`, { fetch: async (_input, init) => await fetch(target, init) })
  t.after(() => source.close())
  source.addEventListener('message', (event) => received.push(event.data))
  source.addEventListener('shutdown', (event) => { received.push(`shutdown: ${event.data}`); target = `${other.url}/events` })
  await until(() => received.length === 1, 'the first event')
  await app.close()
  await until(() => received.length >= 3, `the event from the other instance; received ${JSON.stringify(received)}`)
  source.close()
  assert.deepEqual(received.slice(0, 3), ['from the first instance', 'shutdown: server shutting down', 'from the other instance'])
})

test('shutdown: a client that reads nothing cannot hold the close past the budget; its stream is cut', async (t) => {
  const { app, url, logs } = await serve(t, { shutdown: { timeout: '1s' } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'open' })
      // Fills the socket's buffers: the final event cannot be written.
      void (async () => {
        for (let i = 0; i < 10_000 && reply.sse.isConnected; i++) await reply.sse.send({ data: 'x'.repeat(65_536) }).catch(() => {})
      })()
    })
  })
  const net = await import('node:net')
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  t.after(() => socket.destroy())
  let received = 0
  const closed = new Promise((resolve) => socket.on('close', resolve))
  socket.on('error', () => {})
  socket.on('data', (chunk) => {
    received += chunk.length
    socket.pause()
  })
  socket.write('GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n')
  await until(() => received > 0, 'the first bytes')
  await sleep(200)
  const started = Date.now()
  await withTimeout(app.close(), 3000, 'app.close()')
  const took = Date.now() - started
  assert.ok(took >= 900 && took < 2000, `closed in ${took} ms`)
  // What was sent before the cut is still there to read, then the connection ends.
  socket.removeAllListeners('data')
  socket.on('data', () => {})
  socket.resume()
  await withTimeout(closed, 2000, 'the connection cut')
  assert.ok(logs.some((l) => l.msg === 'sse: closing open event streams' && l.streams === 1))
})

test('the handler timeout covers the time until the stream opens, not the stream', async (t) => {
  const { url, logs } = await serve(t, { timeout: { handler: '300ms' } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      for (let i = 0; i < 5; i++) {
        await reply.sse.send({ data: String(i) })
        await sleep(150)
      }
    })
    app.get('/late', { sse: true }, async (_request, reply) => {
      await sleep(600)
      await reply.sse.send({ data: 'too late' }).catch(() => {})
    })
  })
  const raw = await openRaw(url, '/events')
  assert.equal(await raw.ended, 'end')
  assert.equal(raw.text(), 'data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n')
  const late = await openRaw(url, '/late')
  await late.ended
  assert.equal(late.status, 503)
  assert.equal(JSON.parse(late.text()).type, 'https://spikard.dev/errors/handler-timeout')
  await sleep(400)
  assert.deepEqual(logs.filter((l) => l.level >= 40).map((l) => l.msg), [])
})

test('a stream the client left is not held until the handler timeout: its response is collected at once', async (t) => {
  // gc() without --expose-gc: the flag set at run time, the function taken from a new context.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  let collected = 0
  const registry = new FinalizationRegistry(() => { collected++ })
  const { url } = await serve(t, { timeout: { handler: '30s' } }, async (app) => {
    app.get('/feed', { sse: true }, async (_request, reply) => {
      registry.register(reply.raw, 'response')
      await reply.sse.send({ data: 'hello' })
      reply.sse.keepAlive()
    })
  })
  for (let i = 0; i < 3; i++) {
    const raw = await openRaw(url, '/feed')
    await raw.waitFor('data: hello')
    raw.close()
  }
  await until(() => {
    gc()
    return collected === 3
  }, 'the three responses collected')
})

test('an async source on a stream that stays open: the events it yielded are not held until the stream closes', async (t) => {
  // Each event a source yields used to stay reachable (a Promise.race with the stream's close
  // left a reaction on it per event) for as long as the stream was open: a long-lived feed grew
  // by hundreds of bytes per event sent.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  let collected = 0
  const registry = new FinalizationRegistry(() => { collected++ })
  let release!: () => void
  const hold = new Promise<void>((resolve) => { release = resolve })
  t.after(() => release())
  const { url } = await serve(t, {}, async (app) => {
    app.get('/feed', { sse: true }, async (_request, reply) => {
      async function * events () {
        for (let i = 0; i < 20; i++) {
          const event = { id: String(i), data: 'x'.repeat(1000) }
          registry.register(event, i)
          yield event
        }
        await hold
      }
      await reply.sse.send(events())
    })
  })
  const raw = await openRaw(url, '/feed')
  t.after(() => raw.close())
  await raw.waitFor('id: 19\n')
  await until(() => {
    gc()
    return collected >= 19
  }, 'the events already sent collected while the stream is open')
})

test('an async source that closes its stream while making a step, then fails: no unhandled rejection (the shutdown feature would exit on one)', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  // Recorded here rather than failing the file; with shutdown.signals on, close-with-grace
  // would answer one by shutting the server down (exit 1).
  process.on('unhandledRejection', onUnhandled)
  t.after(() => { process.off('unhandledRejection', onUnhandled) })
  const { url } = await serve(t, { shutdown: { signals: false } }, async (app) => {
    app.get('/feed', { sse: true }, async (_request, reply) => {
      async function * events () {
        yield { data: 'one' }
        // Done (say, upstream said so): the source ends its stream itself, and its cleanup fails.
        reply.sse.close()
        throw new Error('upstream cleanup failed')
      }
      await reply.sse.send(events())
    })
  })
  const raw = await openRaw(url, '/feed')
  assert.equal(await withTimeout(raw.ended, 3000, 'the stream to end'), 'end')
  assert.equal(raw.text(), 'data: one\n\n')
  await sleep(100)
  assert.deepEqual(unhandled.map(String), [])
})

test('errors: before the first event a problem response; after it the stream ends and the error is logged with the request id', async (t) => {
  const { url, logs } = await serve(t, {}, async (app) => {
    app.get('/before', { sse: true }, async () => { throw Object.assign(new Error('no such feed'), { statusCode: 404 }) })
    app.get('/after', { sse: true }, async (_request, reply) => {
      await reply.sse.send({ data: 'one' })
      throw new Error('the feed broke')
    })
    app.get('/source-fails', { sse: true }, async (_request, reply) => {
      async function * failing () {
        yield { data: 'one' }
        throw new Error('the source broke')
      }
      await reply.sse.send(failing())
    })
  })
  const before = await openRaw(url, '/before')
  await before.ended
  assert.equal(before.status, 404)
  assert.equal(JSON.parse(before.text()).detail, 'no such feed')
  for (const path of ['/after', '/source-fails']) {
    const raw = await openRaw(url, path)
    assert.equal(await raw.ended, 'end')
    assert.equal(raw.status, 200)
    assert.equal(raw.text(), 'data: one\n\n')
    const requestId = String(raw.headers['x-request-id'])
    await until(() => logs.some((l) => l.level === 50 && l.reqId === requestId), `the error line of ${path}`)
    const line = logs.find((l) => l.level === 50 && l.reqId === requestId)
    assert.equal(line?.err.message, path === '/after' ? 'the feed broke' : 'the source broke')
  }
})

test('route kinds: dual serves JSON to other clients, only refuses them with a 406 problem, true answers them with a 406 problem, a Readable and reply.sse.stream() are sanitized too', async (t) => {
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/dual', { sse: 'dual' }, async (_request, reply) => {
      if (reply.sse === undefined) return { mode: 'json' }
      await reply.sse.send({ data: { mode: 'sse' } })
    })
    app.get('/only', { sse: 'only' }, async (_request, reply) => {
      await reply.sse.send({ data: 'only' })
    })
    app.get('/only-object', { sse: { kind: 'only', heartbeat: false } }, async (_request, reply) => {
      await reply.sse.send({ data: 'only' })
    })
    app.get('/serializer', { sse: { serializer: (data) => `custom ${JSON.stringify(data)}\r\nevent: evil` } }, async (_request, reply) => {
      await reply.sse.send({ data: { n: 1 } })
      await reply.sse.send('text')
    })
    app.get('/readable', { sse: true }, async (_request, reply) => {
      await reply.sse.send(Readable.from([{ event: 'a', data: 'x\ry' }, 'plain\r\nline']))
    })
    app.get('/pipeline', { sse: true }, async (_request, reply) => {
      await pipeline(Readable.from([{ id: 1, data: { n: 1 } }, { data: 'a\rb' }]), reply.sse.stream(), reply.raw, { end: false })
    })
    // Reads reply.sse.lastEventId before anything else, as the README's example does.
    app.get('/resume', { sse: true }, async (_request, reply) => {
      const from = reply.sse.lastEventId
      await reply.sse.send({ data: 'resuming after ' + (from ?? 'nothing') })
    })
  })
  assert.deepEqual(await (await fetch(`${url}/dual`)).json(), { mode: 'json' })
  const dual = await openRaw(url, '/dual')
  await dual.ended
  assert.equal(dual.text(), 'data: {"mode":"sse"}\n\n')
  // 'only' streams for any Accept that does not exclude text/event-stream; a 406 problem otherwise.
  for (const path of ['/only', '/only-object']) {
    for (const accept of ['', '*/*', 'text/*', 'text/html, */*;q=0.8', 'application/json, text/event-stream;q=0.5']) {
      const raw = await openRaw(url, path, { accept })
      await raw.ended
      assert.equal(raw.text(), 'data: only\n\n', `${path} Accept: ${accept}`)
    }
    for (const accept of ['application/json', 'text/html', '*/*, text/event-stream;q=0', 'text/*;q=0']) {
      const raw = await openRaw(url, path, { accept })
      await raw.ended
      assert.equal(raw.status, 406, `${path} Accept: ${accept}`)
      assert.equal(raw.headers['content-type'], 'application/problem+json; charset=utf-8')
      assert.deepEqual({ ...JSON.parse(raw.text()), requestId: undefined }, {
        type: 'https://spikard.dev/errors/not-acceptable',
        title: 'Not Acceptable',
        status: 406,
        detail: `GET ${path} only sends text/event-stream, which the request's Accept header excludes`,
        instance: path,
        requestId: undefined
      })
    }
  }
  // sse: true streams to requests that ask for text/event-stream (@fastify/sse's rule); to
  // others a handler that uses reply.sse gets a 406 problem, not a 500.
  for (const accept of ['', '*/*']) {
    const raw = await openRaw(url, '/readable', { accept })
    const resume = await openRaw(url, '/resume', { accept })
    await resume.ended
    assert.equal(resume.status, 406, `/resume Accept: ${accept}`)
    assert.equal(JSON.parse(resume.text()).detail, 'GET /resume sends text/event-stream to requests that ask for it: send Accept: text/event-stream')
    await raw.ended
    assert.equal(raw.status, 406, `Accept: ${accept}`)
    assert.deepEqual({ ...JSON.parse(raw.text()), requestId: undefined }, {
      type: 'https://spikard.dev/errors/not-acceptable',
      title: 'Not Acceptable',
      status: 406,
      detail: 'GET /readable sends text/event-stream to requests that ask for it: send Accept: text/event-stream',
      instance: '/readable',
      requestId: undefined
    })
  }
  // A route's own serializer (@fastify/sse's option) serializes all data; its line breaks are made safe too.
  const serialized = await openRaw(url, '/serializer')
  await serialized.ended
  assert.equal(serialized.text(), 'data: custom {"n":1}\ndata: event: evil\n\ndata: custom "text"\ndata: event: evil\n\n')
  const readable = await openRaw(url, '/readable')
  await readable.ended
  assert.equal(readable.text(), 'event: a\ndata: x\ndata: y\n\ndata: plain\ndata: line\n\n')
  const piped = await openRaw(url, '/pipeline')
  await piped.ended
  assert.equal(piped.text(), 'id: 1\ndata: {"n":1}\n\ndata: a\ndata: b\n\n')
})

test('route kinds that answer by Accept (true, dual, only) say Vary: Accept on each answer, the stream, JSON and the 406 problem alike, keeping a Vary set before; manual does not', async (t) => {
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    // A Vary set before the handler (a hook of the route's) is kept.
    app.get('/dual', { sse: 'dual', onRequest: async (_request, reply) => { reply.header('vary', 'X-Tenant') } }, async (_request, reply) => {
      if (reply.sse === undefined) return { mode: 'json' }
      await reply.sse.send({ data: 'sse' })
    })
    app.get('/only', { sse: 'only' }, async (_request, reply) => { await reply.sse.send({ data: 'only' }) })
    app.get('/true', { sse: true }, async (_request, reply) => { await reply.sse.send({ data: 'true' }) })
    app.get('/manual', { sse: 'manual' }, async (_request, reply) => { await reply.sse.send({ data: 'manual' }) })
  })
  const varyOf = async (path: string, accept: string): Promise<[number, string | undefined]> => {
    const raw = await openRaw(url, path, { accept })
    await raw.ended
    return [raw.status, raw.headers.vary as string | undefined]
  }
  assert.deepEqual(await varyOf('/dual', 'application/json'), [200, 'X-Tenant, Accept'])
  assert.deepEqual(await varyOf('/dual', 'text/event-stream'), [200, 'X-Tenant, Accept'])
  assert.deepEqual(await varyOf('/only', 'text/event-stream'), [200, 'Accept'])
  assert.deepEqual(await varyOf('/only', 'application/json'), [406, 'Accept'])
  assert.deepEqual(await varyOf('/true', 'text/event-stream'), [200, 'Accept'])
  assert.deepEqual(await varyOf('/true', '*/*'), [406, 'Accept'])
  assert.deepEqual(await varyOf('/manual', 'text/event-stream'), [200, undefined])
})

test('reply.sse.keepAlive() with nothing sent yet: the stream opens at once (its head reaches the client before any event or keep-alive) and stays open', async (t) => {
  let headReceived = (): void => {}
  const received = new Promise<void>((resolve) => { headReceived = resolve })
  const { url } = await serve(t, { server: QUIET }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      // The first event waits for the client to have the head: a head held back until the
      // first write (Node's writeHead) would never arrive, and openRaw would time out.
      void received.then(async () => await reply.sse.send({ data: 'later' })).catch(() => {})
    })
  })
  const raw = await openRaw(url, '/events')
  t.after(() => raw.close())
  assert.equal(raw.status, 200)
  assert.equal(raw.headers['content-type'], 'text/event-stream')
  headReceived()
  await raw.waitFor('data: later\n\n', 2000)
})

test('schema.sse: events are validated outside production, by data schema or by event name; an invalid event throws a clear error that is logged', async (t) => {
  const thrown: string[] = []
  const { url, logs } = await serve(t, {}, async (app) => {
    app.addSchema({ $id: 'Tick', type: 'object', properties: { n: { type: 'integer' } }, required: ['n'], additionalProperties: false })
    app.get('/ticks', { sse: true, schema: { sse: { $ref: 'Tick#' } } }, async (_request, reply) => {
      await reply.sse.send({ data: { n: 1 } })
      for (const data of [{ n: 'one' }, { n: 1, extra: true }]) {
        try { await reply.sse.send({ data }) } catch (error) { thrown.push((error as Error).message) }
      }
      await reply.sse.send(async function * () { yield { data: { n: 2 } }; yield { data: {} } }())
    })
    app.get('/named', { sse: true, schema: { sse: { events: { tick: { type: 'integer' }, message: { type: 'string' } } } } }, async (_request, reply) => {
      await reply.sse.send({ event: 'tick', data: 1 })
      await reply.sse.send('text is a message')
      for (const event of [{ event: 'tick', data: 'one' }, { event: 'other', data: 1 }, { data: 1 }]) {
        try { await reply.sse.send(event) } catch (error) { thrown.push((error as Error).message) }
      }
    })
  })
  const ticks = await openRaw(url, '/ticks')
  await ticks.ended
  assert.equal(ticks.text(), 'data: {"n":1}\n\ndata: {"n":2}\n\n')
  const named = await openRaw(url, '/named')
  await named.ended
  assert.equal(named.text(), 'event: tick\ndata: 1\n\ndata: text is a message\n\n')
  assert.deepEqual(thrown, [
    'sse: event "message" on GET /ticks does not match schema.sse: data/n must be integer',
    'sse: event "message" on GET /ticks does not match schema.sse: data must NOT have additional properties',
    'sse: event "tick" on GET /named does not match schema.sse: data must be integer',
    'sse: event "other" on GET /named is not declared in schema.sse.events (declared: tick, message)',
    'sse: event "message" on GET /named does not match schema.sse: data must be string'
  ])
  // The generator's invalid event ended the stream; the error is logged with its message.
  await until(() => logs.some((l) => l.level === 50 && l.err?.type === 'SseEventError'), 'the logged error')
  assert.equal(logs.find((l) => l.level === 50 && l.err?.type === 'SseEventError')?.err.message, 'sse: event "message" on GET /ticks does not match schema.sse: data must have required property \'n\'')
})

test('schema.sse: not validated when NODE_ENV is production; an invalid schema is refused at registration, naming the route', async (t) => {
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  try {
    const { url } = await serve(t, { server: QUIET, openapi: false }, async (app) => {
      app.get('/ticks', { sse: true, schema: { sse: { type: 'integer' } } }, async (_request, reply) => {
        await reply.sse.send({ data: 'not an integer' })
      })
    })
    const raw = await openRaw(url, '/ticks')
    await raw.ended
    assert.equal(raw.text(), 'data: not an integer\n\n')
  } finally {
    if (previous === undefined) delete process.env.NODE_ENV
    else process.env.NODE_ENV = previous
  }

  for (const [schema, problem] of [
    [{ type: 'integr' }, 'schema.sse: schema is invalid: data/type must be equal to one of the allowed values, data/type must be array, data/type must match a schema in anyOf'],
    [{ events: {} }, 'schema.sse.events: expected an object mapping each event name to the schema of its data'],
    ['integer', 'schema.sse: expected a JSON Schema for the data of every event, or { events: { <name>: <schema> } }, found "integer"']
  ] as const) {
    // Refused as the route is registered, like every per-route option spikard reads.
    const app = Fastify({ logger: false })
    await app.register(spikard, { openapi: false })
    assert.throws(() => app.get('/ticks', { sse: true, schema: { sse: schema } }, async () => {}), (error: unknown) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, [problem])
      assert.match(error.message, /^Invalid spikard route GET \/ticks:/)
      return true
    })
    await app.close()
  }
})

test('options: on by default, true gives the defaults, false leaves @fastify/sse out; invalid options fail at ready()', async (t) => {
  const on = await build({ server: QUIET })
  t.after(() => on.app.close())
  await on.app.ready()
  assert.deepEqual(on.app.spikard.options.sse, { keepAlive: 15_000, maxConnections: 10_000, maxBuffered: 4 * 1024 * 1024, shutdownEvent: { event: 'shutdown', data: 'server shutting down', retry: 1000 } })
  assert.ok(on.app.hasPlugin('spikard-sse'))
  assert.ok(on.app.hasPlugin('@fastify/sse'))
  assert.ok(on.app.spikard.onDrain !== undefined)

  const explicit = await build({ server: QUIET, sse: true })
  t.after(() => explicit.app.close())
  assert.deepEqual(explicit.app.spikard.options.sse, on.app.spikard.options.sse)

  const off = await build({ server: QUIET, sse: false })
  t.after(() => off.app.close())
  await off.app.ready()
  assert.equal(off.app.hasPlugin('spikard-sse'), false)
  assert.equal(off.app.hasPlugin('@fastify/sse'), false)

  await assertOptionsRefused('sse', { keepAlive: '200ms' }, ['sse.keepAlive: expected a duration of at least 1s (milliseconds, or a string such as "30s", "1m", "1h"), found "200ms"'])
  // Longer than a timer can wait: Node would fire the keep-alive every millisecond.
  await assertOptionsRefused('sse', { keepAlive: '600h' }, ['sse.keepAlive: must not exceed 2147483647 ms (about 24 days), found 2160000000 ms'])
  await assertOptionsRefused('sse', { maxConnections: 0 }, ['sse.maxConnections: expected an integer >= 1, found 0'])
  await assertOptionsRefused('sse', { shutdownEvent: { event: '' } }, ['sse.shutdownEvent.event: expected a non-empty string, found ""'])
  await assertOptionsRefused('sse', { shutdownEvent: true }, ['sse.shutdownEvent: expected { event, data, retry } or false, found true'])
  await assertOptionsRefused('sse', { nope: 1 }, ['sse.nope: unknown key'])
})

test('resources: open streams and their keep-alive timers are released when the app closes; nothing keeps the process alive', async (t) => {
  const { app, url } = await serve(t, { server: QUIET, sse: { keepAlive: '1s' }, shutdown: false }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ data: 'open' })
    })
  })
  const streams = await Promise.all([1, 2, 3].map(async () => await openRaw(url, '/events')))
  await Promise.all(streams.map(async (s) => await s.waitFor('data: open')))
  await withTimeout(app.close(), 3000, 'app.close() with three open streams and the shutdown feature off')
  for (const s of streams) {
    assert.equal(await s.ended, 'end')
    assert.equal(s.text(), 'data: open\n\nevent: shutdown\ndata: server shutting down\nretry: 1000\n\n')
  }
})

test('OpenAPI: an SSE route answers text/event-stream, lists its event names and the 503 of sse.maxConnections', async (t) => {
  const { app } = await build({ server: QUIET }, async (app) => {
    app.get('/events', { sse: true, schema: { summary: 'Live ticks', sse: { events: { tick: { type: 'integer' }, done: { type: 'string' } } } } }, async () => {})
    app.get('/dual', { sse: 'dual', schema: { response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } } } }, async () => ({ n: 1 }))
    app.get('/only', { sse: 'only', schema: { response: { 200: { type: 'object', properties: { n: { type: 'integer' } } } } } }, async () => {})
    app.get('/json', async () => ({}))
  })
  t.after(() => app.close())
  const doc = (await app.inject('/openapi.json')).json()
  const events = doc.paths['/events'].get
  assert.deepEqual(Object.keys(events.responses['200'].content), ['text/event-stream'])
  assert.deepEqual(events.responses['200'].content['text/event-stream'].schema, { type: 'string', description: 'Server-Sent Events: `tick`, `done`.' })
  assert.match(events.responses['503'].description, /too-many-streams/)
  assert.match(events.description, /Server-Sent Events \(text\/event-stream\): a comment line every 15s/)
  const dual = doc.paths['/dual'].get
  assert.deepEqual(Object.keys(dual.responses['200'].content).sort(), ['application/json', 'text/event-stream'])
  assert.deepEqual(dual.responses['200'].content['text/event-stream'].schema, { type: 'string', description: 'Server-Sent Events.' })
  assert.deepEqual(Object.keys(doc.paths['/only'].get.responses['200'].content), ['text/event-stream'])
  assert.equal(doc.paths['/json'].get.responses['200'].content?.['text/event-stream'], undefined)
  assert.doesNotMatch(doc.paths['/json'].get.responses['503'].description, /too-many-streams/)
  assert.doesNotMatch(doc.paths['/json'].get.description ?? '', /Server-Sent Events/)
  // Still a valid OpenAPI 3.1 document.
  const result = await new Validator().validate(structuredClone(doc))
  assert.ok(result.valid, JSON.stringify(result.errors))
})

/**
 * testing_data/sse/streams/*.json, in the fixture runner's format (test/fixtures.test.ts runs
 * them through spikard/testing): here the same route's stream is read by the eventsource
 * client, a real EventSource, which must see the events the fixture expects.
 */
interface StreamFixture {
  description: string
  options?: Record<string, unknown>
  routes: [{ options?: Record<string, unknown>, handler: { sse: Array<{ send?: unknown, sleep?: number, lastEventId?: true }> } }]
  requests: Array<{ sse?: { headers?: Record<string, string> }, expect: { events?: Array<{ event: string, data: string, id: string }> } }>
}

const fixtures = join(import.meta.dirname, '..', '..', 'testing_data', 'sse', 'streams')
for (const file of readdirSync(fixtures).filter((f) => f.endsWith('.json')).sort()) {
  const fixture = JSON.parse(readFileSync(join(fixtures, file), 'utf8')) as StreamFixture
  const read = fixture.requests.find((r) => r.sse !== undefined)
  test(`testing_data/sse/streams/${file} through an EventSource: ${fixture.description}`, async (t) => {
    assert.ok(read?.expect.events !== undefined, 'the fixture reads the events')
    const { url } = await serve(t, { server: QUIET, ...fixture.options } as CreateServerConfig, async (app: FastifyInstance) => {
      app.get('/events', { sse: true, ...fixture.routes[0].options }, async (request, reply) => {
        for (const step of fixture.routes[0].handler.sse) {
          if (step.sleep !== undefined) await sleep(step.sleep)
          if (step.lastEventId === true) await reply.sse.send({ event: 'resumed', data: { lastEventId: request.headers['last-event-id'] ?? null } })
          if (step.send !== undefined) await reply.sse.send(step.send as never)
        }
      })
    })
    const expected: Received[] = read.expect.events.map((e) => ({ type: e.event, data: e.data, lastEventId: e.id }))
    const names = [...new Set(expected.map((e) => e.type))]
    const { source, received } = eventSource(`${url}/events`, names, { headers: read.sse?.headers })
    t.after(() => source.close())
    await until(() => received.length >= expected.length, 'the events', 10_000)
    source.close()
    assert.deepEqual(received.slice(0, expected.length), expected)
  })
}

test('a route with the sse option while the sse feature is off is refused at startup, naming the route', async () => {
  await assert.rejects(build({ sse: false }, async (app) => {
    app.get('/feed', { sse: true }, async () => {})
  }), (error: Error) => {
    assert.ok(error instanceof SpikardConfigError)
    assert.match(error.message, /route GET \/feed: the sse route option is set but the sse feature is off; configure sse or remove the sse route option/)
    return true
  })
})
