/**
 * fileStream(): a file sent as a response body in buffers it reuses, checked with real
 * clients on 127.0.0.1 (node:http, and a raw socket that reads slowly so the socket holds
 * chunks while the file is read on). Every comparison is of the bytes themselves (a
 * SHA-256), so a buffer reused while something still held it shows as a wrong digest.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import zlib from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyReply } from 'fastify'
import { fileStream } from '../../src/index.js'
import { build, listen, tempDir, withTimeout } from '../helpers.js'

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

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
  assert.match(received.subarray(0, split).toString('latin1'), /^HTTP\/1\.1 200 /)
  const body = dechunk(received.subarray(split + 4))
  assert.equal(body.length, data.length)
  assert.equal(sha(body), sha(data))
  t.diagnostic(`chunks from ${memory.size} buffers`)
})

/** The body of a chunked response (no trailers). */
function dechunk (raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = raw.indexOf('\r\n', at)
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16)
    if (size === 0) return Buffer.concat(parts)
    parts.push(raw.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}

test('start and end (included), as fs.createReadStream takes them; past the end of the file is the end of the body', async (t) => {
  const { path, data } = randomFile(t, 200_000)
  const { url } = await serve(t, path)
  for (const [start, end] of [[0, 0], [1000, 150_000], [70_000, undefined], [199_999, 500_000], [200_000, undefined]] as const) {
    const query = `start=${start}${end === undefined ? '' : `&end=${end}`}`
    const { status, body } = await get(`${url}/file?${query}`)
    assert.equal(status, 200, query)
    assert.equal(sha(body), sha(data.subarray(start, end === undefined ? undefined : end + 1)), query)
  }
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

test('the client goes away mid-download: the file is closed', { skip: process.platform !== 'linux' && 'reads /proc/self/fd' }, async (t) => {
  const { path } = randomFile(t, 32 * 1024 * 1024)
  const { port } = await serve(t, path)
  const open = (): number => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === path } catch { return false } }).length
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /file HTTP/1.1\r\nhost: x\r\n\r\n')
  await withTimeout(new Promise((resolve) => socket.once('data', resolve)), 5000, 'the first bytes')
  assert.equal(open(), 1, 'the file is open while it is sent')
  socket.destroy()
  const start = Date.now()
  while (open() !== 0) {
    assert.ok(Date.now() - start < 1000, 'the file is still open a second after the client went away')
    await sleep(10)
  }
})

test('start and end are checked when the stream is made', () => {
  assert.throws(() => fileStream('x', { start: -1 }), /^RangeError: fileStream: start must be a whole number of bytes, 0 or more; got -1$/)
  assert.throws(() => fileStream('x', { start: 1.5 }), /start must be a whole number/)
  assert.throws(() => fileStream('x', { start: 10, end: 9 }), /^RangeError: fileStream: end must be a whole number of bytes, at least start \(10\); got 9$/)
})
