/**
 * fileStream(): a file sent as a response body in buffers it reuses, checked with real
 * clients on 127.0.0.1 (node:http, and a raw socket that reads slowly so the socket holds
 * chunks while the file is read on). Every comparison is of the bytes themselves (a
 * SHA-256), so a buffer reused while something still held it shows as a wrong digest.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { closeSync, openSync, readdirSync, readlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import zlib from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyReply } from 'fastify'
import { fileStream } from '../../src/index.js'
import { build, listen, rawRequest, tempDir, until, withTimeout } from '../helpers.js'

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** How many descriptors of this process have `path` open (Linux: /proc/self/fd). */
function openCount (path: string): number {
  return readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === path } catch { return false } }).length
}

/** A file of random bytes whose size is not a multiple of the 64 KiB read. */
function randomFile (t: TestContext, bytes: number): { path: string, data: Buffer } {
  const path = join(tempDir(t), 'data.bin')
  const data = randomBytes(bytes)
  writeFileSync(path, data)
  return { path, data }
}

/** The distinct memory the response was given its chunks in. */
function recordWrites (reply: FastifyReply, memory: Set<ArrayBufferLike>): void {
  const res = reply.raw
  const write = res.write.bind(res) as (...args: unknown[]) => boolean
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (chunk instanceof Uint8Array) memory.add(chunk.buffer)
    return write(chunk, ...rest)
  }) as typeof res.write
}

async function serve (t: TestContext, path: string, memory = new Set<ArrayBufferLike>()) {
  const built = await build({ server: { logger: { level: 'info' } } }, async (app) => {
    app.get('/file', async (request, reply) => {
      const { start, end } = request.query as { start?: string, end?: string }
      recordWrites(reply, memory)
      reply.type('application/octet-stream')
      return fileStream(path, { start: start === undefined ? undefined : Number(start), end: end === undefined ? undefined : Number(end) })
    })
    app.get('/text', async (_request, reply) => {
      reply.type('text/plain')
      return fileStream(path)
    })
    app.get('/missing', async () => fileStream(join(path, '..', 'no-such-file')))
  })
  t.after(() => built.app.close())
  return { ...built, ...(await listen(built.app)), memory }
}

function get (url: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body: Buffer.concat(chunks) }))
      response.on('error', reject)
    }).on('error', reject)
  })
}

test('a file is sent whole, byte for byte, in a few buffers used again and again', async (t) => {
  const { path, data } = randomFile(t, 8 * 1024 * 1024 + 123)
  const { url, memory, logs } = await serve(t, path)
  const { status, headers, body } = await withTimeout(get(`${url}/file`), 30_000, 'the download')
  assert.equal(status, 200)
  assert.equal(headers['content-type'], 'application/octet-stream')
  assert.equal(body.length, data.length)
  assert.equal(sha(body), sha(data))
  // 129 reads of 64 KiB; fs.createReadStream would have used 129 buffers.
  assert.ok(memory.size <= 4, `the chunks came from ${memory.size} buffers`)
  const line = logs.find((l) => l.msg === 'request completed' && l.path === '/file')
  assert.equal(line?.bytes, data.length)
})

test('a client that reads slowly: the socket holds chunks while the file is read on, and every byte still arrives as it is in the file', async (t) => {
  const { path, data } = randomFile(t, 24 * 1024 * 1024 + 7)
  const { port, memory } = await serve(t, path)
  const received = await withTimeout(new Promise<Buffer>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      // Stop reading for a while after each chunk: the server's writes back up.
      socket.pause()
      setTimeout(() => socket.resume(), 2)
    })
    socket.on('end', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
    socket.write('GET /file HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
  }), 60_000, 'the slow download')
  const split = received.indexOf('\r\n\r\n')
  const head = received.subarray(0, split).toString('latin1')
  assert.match(head, /^HTTP\/1\.1 200 /)
  assert.match(head, new RegExp(`\r\ncontent-length: ${data.length}\r\n`, 'i'))
  const body = received.subarray(split + 4)
  assert.equal(body.length, data.length)
  assert.equal(sha(body), sha(data))
  t.diagnostic(`chunks from ${memory.size} buffers`)
})

test('start and end (included), as fs.createReadStream takes them; past the end of the file is the end of the body; Content-Length says each', async (t) => {
  const { path, data } = randomFile(t, 200_000)
  const { url } = await serve(t, path)
  for (const [start, end] of [[0, undefined], [0, 0], [1000, 150_000], [70_000, undefined], [199_999, 500_000], [200_000, undefined], [300_000, 400_000]] as const) {
    const query = `start=${start}${end === undefined ? '' : `&end=${end}`}`
    const { status, headers, body } = await get(`${url}/file?${query}`)
    assert.equal(status, 200, query)
    const expected = data.subarray(start, end === undefined ? undefined : end + 1)
    assert.equal(sha(body), sha(expected), query)
    assert.equal(headers['content-length'], String(expected.length), query)
    assert.equal(headers['transfer-encoding'], undefined, query)
  }
})

test('HEAD: the length, no body, and the file closed without being read', async (t) => {
  const { path, data } = randomFile(t, 5 * 1024 * 1024)
  const { port } = await serve(t, path)
  const fs = createRequire(import.meta.url)('node:fs') as typeof import('node:fs')
  const read = fs.read
  let reads = 0
  fs.read = ((...args: Parameters<typeof read>) => { reads++; return read(...args) }) as typeof read
  syncBuiltinESMExports()
  t.after(() => { fs.read = read; syncBuiltinESMExports() })
  const response = await rawRequest(port, 'HEAD /file HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
  assert.equal(response.status, 200)
  assert.equal(response.headers['content-length'], String(data.length))
  assert.equal(response.body, '')
  await until(() => openCount(path) === 0, 'the file closed', 1000)
  assert.equal(reads, 0, 'reads of the file')
})

test('a file truncated while it is sent: the response is cut, not ended as if whole, and the error logged', async (t) => {
  const { path } = randomFile(t, 32 * 1024 * 1024)
  const { port, logs } = await serve(t, path)
  const socket = net.connect(port, '127.0.0.1')
  t.after(() => socket.destroy())
  let received = 0
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.on('error', () => {})
  socket.on('data', (chunk) => { received += chunk.length })
  socket.write('GET /file HTTP/1.1\r\nhost: x\r\n\r\n')
  await until(() => received > 0, 'the first bytes', 5000)
  // Stop reading until the file is cut down to 1 MiB: the server stops at backpressure.
  socket.pause()
  await sleep(100)
  truncateSync(path, 1024 * 1024)
  socket.resume()
  await withTimeout(closed, 10_000, 'the connection closed')
  assert.ok(received < 32 * 1024 * 1024, `received ${received} bytes`)
  await until(() => logs.some((l) => l.level === 50 && String(l.err?.message).includes('truncated while being sent')), 'the error logged', 1000)
})

test('compressed, or read by code of its own, it gives every chunk a buffer of its own', async (t) => {
  const { path, data } = randomFile(t, 1024 * 1024 + 5)
  const { url } = await serve(t, path)
  const gzipped = await get(`${url}/text`, { 'accept-encoding': 'gzip' })
  assert.equal(gzipped.headers['content-encoding'], 'gzip')
  assert.equal(sha(zlib.gunzipSync(gzipped.body)), sha(data))
  // Chunks kept as they come (a PassThrough, a 'data' listener): none is overwritten later.
  const kept: Buffer[] = []
  const through = fileStream(path).pipe(new PassThrough())
  for await (const chunk of through) kept.push(chunk as Buffer)
  assert.equal(sha(Buffer.concat(kept)), sha(data))
  const listened: Buffer[] = []
  await new Promise((resolve, reject) => fileStream(path).on('data', (chunk: Buffer) => listened.push(chunk)).on('end', resolve).on('error', reject))
  assert.equal(sha(Buffer.concat(listened)), sha(data))
})

test('a file that cannot be opened: a 500 problem before any byte, without the path or the system error', async (t) => {
  const { path } = randomFile(t, 10)
  const { url, logs } = await serve(t, path)
  const { status, headers, body } = await get(`${url}/missing`)
  assert.equal(status, 500)
  assert.equal(headers['content-type'], 'application/problem+json; charset=utf-8')
  const problem = JSON.parse(body.toString()) as Record<string, unknown>
  assert.equal(problem.status, 500)
  assert.doesNotMatch(body.toString(), /ENOENT|no-such-file/)
  assert.ok(logs.some((l) => l.level >= 50 && JSON.stringify(l).includes('ENOENT')), 'the error is logged')
})

test('the client goes away mid-download: the file is closed', async (t) => {
  const { path } = randomFile(t, 32 * 1024 * 1024)
  const { port } = await serve(t, path)
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /file HTTP/1.1\r\nhost: x\r\n\r\n')
  await withTimeout(new Promise((resolve) => socket.once('data', resolve)), 5000, 'the first bytes')
  assert.equal(openCount(path), 1, 'the file is open while it is sent')
  socket.destroy()
  await until(() => openCount(path) === 0, 'the file closed after the client went away', 1000)
})

test('a file slow to open (a FIFO with no writer yet) past the handler timeout: the 503 problem, then the file closed once it opens, and nothing else sent', { skip: !hasMkfifo() && 'no mkfifo' }, async (t) => {
  const fifo = join(tempDir(t), 'fifo')
  execFileSync('mkfifo', [fifo])
  const built = await build({ server: { logger: { level: 'info' } }, timeout: { handler: '100ms' } }, async (app) => {
    app.get('/fifo', async () => fileStream(fifo))
  })
  t.after(() => built.app.close())
  const { url } = await listen(built.app)
  const { status, body } = await get(`${url}/fifo`)
  assert.equal(status, 503)
  assert.equal((JSON.parse(body.toString()) as { status: number }).status, 503)
  // A writer lets the server's open complete.
  const writer = openSync(fifo, 'w')
  t.after(() => closeSync(writer))
  await sleep(200)
  assert.equal(openCount(fifo), 1, 'the writer\'s descriptor only')
  assert.deepStrictEqual(built.logs.filter((l) => l.level >= 40).map((l) => l.msg), [])
})

function hasMkfifo (): boolean {
  try {
    execFileSync('mkfifo', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

test('start and end are checked when the stream is made', () => {
  assert.throws(() => fileStream('x', { start: -1 }), /^RangeError: fileStream: start must be a whole number of bytes, 0 or more; got -1$/)
  assert.throws(() => fileStream('x', { start: 1.5 }), /start must be a whole number/)
  assert.throws(() => fileStream('x', { start: 10, end: 9 }), /^RangeError: fileStream: end must be a whole number of bytes, at least start \(10\); got 9$/)
})
