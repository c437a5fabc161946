/**
 * The benchmark's stream client (bench/lib/stream-client.ts) decodes HTTP/1.1 framing by
 * hand: its byte counts are what the stream budget line compares, so they are checked
 * here against real servers and against responses split at every byte.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import { ResponseCounter, runStream } from '../bench/lib/stream-client.js'

const MiB = 1024 * 1024

function source (total: number, chunk = 64 * 1024): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= total) {
        this.push(null)
        return
      }
      const n = Math.min(chunk, total - sent)
      sent += n
      this.push(Buffer.alloc(n, 0x61))
    }
  })
}

async function listen (handler: http.RequestListener): Promise<{ port: number, close: () => Promise<void> }> {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) }
  }
}

const noRss = (): number => 0

test('a chunked response split at every byte: the body without its framing', () => {
  const raw = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n' +
    '5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: 1\r\n\r\n'
  const bytes = Buffer.from(raw, 'latin1')
  for (const step of [1, 2, 7, bytes.length]) {
    const counter = new ResponseCounter()
    for (let i = 0; i < bytes.length; i += step) {
      const piece = bytes.subarray(i, i + step)
      counter.push(piece, piece.length)
    }
    assert.equal(counter.status, 200)
    assert.equal(counter.body, 5 + 26, `pieces of ${step}`)
    assert.equal(counter.complete, true, `pieces of ${step}`)
  }
})

test('Content-Length and close-delimited bodies; broken framing is an error', () => {
  const counted = new ResponseCounter()
  const withLength = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc')
  counted.push(withLength, withLength.length)
  assert.deepEqual([counted.status, counted.body, counted.complete], [404, 3, true])

  const untilClose = new ResponseCounter()
  const open = Buffer.from('HTTP/1.0 200 OK\r\n\r\nabcdef')
  untilClose.push(open, open.length)
  assert.deepEqual([untilClose.body, untilClose.complete], [6, false])
  untilClose.end()
  assert.equal(untilClose.complete, true)

  const bad = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')
  assert.throws(() => new ResponseCounter().push(bad, bad.length), /bad chunk size/)
  const badLength = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n')
  assert.throws(() => new ResponseCounter().push(badLength, badLength.length), /bad Content-Length/)
})

test('runStream over a real socket: chunked and Content-Length bodies counted exactly', async (t) => {
  const total = 5 * MiB + 123
  const server = await listen((req, res) => {
    if (req.url === '/length') res.setHeader('content-length', total)
    source(total).pipe(res)
  })
  t.after(server.close)
  for (const path of ['/chunked', '/length']) {
    const r = await runStream(server.port, path, noRss)
    assert.deepEqual([r.status, r.bytes], [200, total], path)
    assert.ok(r.seconds > 0)
  }
})

test('onBody sees the body without its framing; the header fields are kept', () => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n', 'latin1')
  for (const step of [1, 4, raw.length]) {
    let body = ''
    const counter = new ResponseCounter((buf, start, end) => { body += buf.toString('latin1', start, end) })
    for (let i = 0; i < raw.length; i += step) {
      const piece = raw.subarray(i, i + step)
      counter.push(piece, piece.length)
    }
    assert.equal(body, 'abcde', `pieces of ${step}`)
    assert.equal(counter.headers['content-encoding'], 'gzip')
    assert.equal(counter.complete, true)
  }
})

test('runStream sends the headers it is given and reports the response\'s', async (t) => {
  const server = await listen((req, res) => {
    res.setHeader('x-seen', req.headers['accept-encoding'] ?? 'none')
    res.end('ok')
  })
  t.after(server.close)
  const plain = await runStream(server.port, '/', noRss)
  assert.deepEqual([plain.headers['x-seen'], plain.complete, plain.bytes], ['none', true, 2])
  const gzip = await runStream(server.port, '/', noRss, 10_000, Infinity, { 'accept-encoding': 'gzip' })
  assert.equal(gzip.headers['x-seen'], 'gzip')
})

test('runStream: stopAfter hangs up early; a response cut short is not reported whole', async (t) => {
  const total = 8 * MiB
  const server = await listen((req, res) => {
    const body = source(total)
    if (req.url === '/cut') {
      let sent = 0
      body.on('data', (c: Buffer) => { sent += c.length; if (sent > MiB) res.socket?.destroy() })
    }
    body.pipe(res)
  })
  t.after(server.close)
  const early = await runStream(server.port, '/full', noRss, 10_000, MiB)
  assert.ok(early.bytes >= MiB && early.bytes < total, `${early.bytes} bytes`)

  const cut = await runStream(server.port, '/cut', noRss, 10_000).catch((error: Error) => error)
  // Either way it ends when the connection does, not at the timeout.
  if (cut instanceof Error) assert.doesNotMatch(cut.message, /not finished within/)
  else assert.ok(cut.bytes < total, `${cut.bytes} bytes`)
})

test('runStream: a server that never answers ends with the timeout', async (t) => {
  // Reads the request and never answers.
  const silent = net.createServer((socket) => socket.resume())
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise((resolve) => { silent.close(resolve) }))
  const { port } = silent.address() as AddressInfo
  await assert.rejects(runStream(port, '/', noRss, 200), /not finished within 200 ms/)
})
