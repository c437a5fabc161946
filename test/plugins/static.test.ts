/**
 * Static files: off until mounts are configured; each mount serves the files under its
 * root (its index file for a directory, never a listing) with its Cache-Control, a year
 * and immutable for content-hashed names, ETag, Last-Modified and 304, Range and 206 (never
 * compressed; a suffix longer than the file is all of it), a 416 problem past the end,
 * precompressed siblings, HEAD, Vary on every answer of a file served compressed, and the
 * spa fallback for browsers. Every traversal form is refused with a 404 problem and no byte of
 * a file outside the root, checked over a raw socket since clients normalise paths; symlinks
 * leaving the root are refused unless followSymlinks, FIFOs, sockets and devices always,
 * before they are opened. Mounts are public unless they set auth, and left out of the
 * OpenAPI document; a root that does not exist is a config error.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, join, relative } from 'node:path'
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib'
import Fastify, { type LightMyRequestResponse } from 'fastify'
import spikard from '../../src/spikard.js'
import { SpikardConfigError } from '../../src/errors.js'
import { createServer, type CreateServerConfig } from '../../src/server.js'
import { acceptsHtml, hasPrecompressed, isHashed } from '../../plugins/static/files.js'
import { assertOptionsRefused, build, listen, rawRequest, withTimeout, type TestApp } from '../helpers.js'

const SECRET = 'TOP-SECRET-OUTSIDE-THE-ROOT'
const HELLO = 'Hello from a static mount.\n'
const INDEX = '<!doctype html><title>home</title><h1>home</h1>\n'
const BIG = 'All work and no play makes a static file. '.repeat(100)
const LITERAL = 'expected a literal path starting with "/" (no ":", "*", "?", "#", "%", spaces or "//")'

/**
 * A site: `<dir>/public` is the root, `<dir>/secret.txt` and `<dir>/outside/` are outside it.
 * Removed when the test ends.
 */
function site (t: TestContext): { dir: string, root: string } {
  const dir = mkdtempSync(join(tmpdir(), 'spikard-static-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const root = join(dir, 'public')
  const files: Record<string, string | Buffer> = {
    'secret.txt': SECRET,
    'outside/page.html': `<p>${SECRET}</p>`,
    'public/hello.txt': HELLO,
    'public/index.html': INDEX,
    'public/big.txt': BIG,
    'public/app.3f9a1c2b.js': 'console.log("hashed")\n',
    'public/app.3f9a1c2b.js.br': brotliCompressSync('console.log("hashed")\n'),
    'public/app.3f9a1c2b.js.gz': gzipSync('console.log("hashed")\n'),
    'public/plain.js': 'console.log("plain")\n',
    'public/plain.js.gz': gzipSync('console.log("plain")\n'),
    'public/3f9a1c2b.css': 'h1 { color: red }\n',
    'public/short.3f9a1c2.js': '// seven hex digits\n',
    'public/nothex.3f9a1c2g.js': '// a g\n',
    'public/dash-3f9a1c2b.js': '// a dash, not a dot\n',
    'public/.secret': SECRET,
    'public/.git/config': SECRET,
    'public/guide/index.html': '<h1>docs</h1>\n',
    'public/guide/home.html': '<h1>docs home</h1>\n',
    'public/guide/.hidden/file.txt': SECRET,
    'public/assets/readme.txt': 'no index here\n',
    'public/inside-target.txt': 'reached through a symlink inside the root\n'
  }
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), content)
  }
  symlinkSync(join(dir, 'secret.txt'), join(root, 'link-out.txt'))
  symlinkSync(join(dir, 'outside'), join(root, 'dir-out'))
  symlinkSync(join(root, 'inside-target.txt'), join(root, 'link-in.txt'))
  return { dir, root }
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build({ server: { logger: { level: 'info' } }, ...config }, async (app) => {
    app.get('/api/hello', async () => ({ hello: 'world' }))
  })
  t.after(() => built.app.close())
  return built
}

/** The 404 problem spikard answers for `path`. */
function assertNotFound (res: LightMyRequestResponse, method: string, path: string): void {
  assert.equal(res.statusCode, 404, `${method} ${path}: ${res.body}`)
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', path)
  assert.deepStrictEqual(res.json(), {
    type: 'https://spikard.dev/errors/not-found',
    title: 'Not Found',
    status: 404,
    detail: `No route matches ${method} ${path}`,
    instance: path,
    requestId: res.headers['x-request-id']
  })
  assert.equal(res.headers['cache-control'], undefined, `${path}: a problem carries no file cache header`)
}

// ---------------------------------------------------------------------------------------
// On and off

test('absent or false: off, nothing served; true with no mounts is refused at startup; a list of mounts is the shorthand', async (t) => {
  const { root } = site(t)
  for (const value of [undefined, false] as const) {
    const { app } = await setup(t, value === undefined ? {} : { static: value })
    assert.equal(app.spikard.options.static, false, String(value))
    assert.equal(app.hasPlugin('spikard-static'), false, String(value))
    assertNotFound(await app.inject({ url: '/hello.txt' }), 'GET', '/hello.txt')
  }
  await assert.rejects(setup(t, { static: true }), (error: Error) => {
    assert.match(error.message, /static\.mounts: expected at least one mount \(static: \[\{ root: \.\/public \}\]\), found none; or leave static off/)
    return true
  })
  // The shorthand: a list of mounts.
  const { app } = await setup(t, { static: [{ root }] } as CreateServerConfig)
  assert.equal(app.spikard.options.static === false ? undefined : app.spikard.options.static.mounts[0].root, root)
  assert.equal((await app.inject({ url: '/hello.txt' })).body, HELLO)
})

test('a mount serves its files with their type, length, validators and the default Cache-Control; the app\'s routes still answer', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root }] } })
  const res = await app.inject({ url: '/hello.txt' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.body, HELLO)
  assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8')
  assert.equal(res.headers['content-length'], String(HELLO.length))
  assert.equal(res.headers['cache-control'], 'public, max-age=0')
  assert.equal(res.headers['accept-ranges'], 'bytes')
  assert.match(String(res.headers.etag), /^W\/"[0-9a-f]+-[0-9a-f]+"$/)
  assert.ok(!Number.isNaN(Date.parse(String(res.headers['last-modified']))))
  assert.deepStrictEqual((await app.inject({ url: '/api/hello' })).json(), { hello: 'world' })
  // A query string is not part of the file name.
  assert.equal((await app.inject({ url: '/hello.txt?v=2' })).body, HELLO)
  // A missing file.
  assertNotFound(await app.inject({ url: '/missing.txt' }), 'GET', '/missing.txt')
  assertNotFound(await app.inject({ url: '/missing.txt?x=1' }), 'GET', '/missing.txt')
  // Other methods: the path exists for GET and HEAD.
  const post = await app.inject({ method: 'POST', url: '/hello.txt' })
  assert.equal(post.statusCode, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
})

test('the access line has the bytes sent: the file piped as it is, or compressed once and sent from memory', async (t) => {
  const { root } = site(t)
  const { app, logs } = await setup(t, { static: { mounts: [{ root }] } })
  const plain = await app.inject({ url: '/big.txt' })
  const compressed = [await app.inject({ url: '/big.txt', headers: { 'accept-encoding': 'br' } }), await app.inject({ url: '/big.txt', headers: { 'accept-encoding': 'br' } })]
  assert.equal(plain.body, BIG)
  for (const res of compressed) assert.equal(brotliDecompressSync(res.rawPayload).toString(), BIG)
  const lines = logs.filter((l) => l.msg === 'request completed' && l.path === '/big.txt')
  assert.deepEqual(lines.map((l) => l.bytes), [BIG.length, ...compressed.map((res) => res.rawPayload.length)])
  assert.ok(compressed[0].rawPayload.length < BIG.length / 10)
})

test('ETag, Last-Modified and 304', async (t) => {
  const { root } = site(t)
  const modified = new Date('2024-01-02T03:04:05Z')
  utimesSync(join(root, 'hello.txt'), modified, modified)
  const { app } = await setup(t, { static: { mounts: [{ root, cacheControl: 'public, max-age=60' }] } })
  const first = await app.inject({ url: '/hello.txt' })
  assert.equal(first.headers['last-modified'], modified.toUTCString())
  const etag = String(first.headers.etag)
  for (const headers of [{ 'if-none-match': etag }, { 'if-none-match': `"other", ${etag}` }, { 'if-modified-since': modified.toUTCString() }, { 'if-modified-since': new Date('2025-01-01').toUTCString() }]) {
    const res = await app.inject({ url: '/hello.txt', headers })
    assert.equal(res.statusCode, 304, JSON.stringify(headers))
    assert.equal(res.body, '')
    assert.equal(res.headers.etag, etag)
    assert.equal(res.headers['cache-control'], 'public, max-age=60', '304s keep the cache header')
    assert.equal(res.headers['content-encoding'], undefined)
  }
  for (const headers of [{ 'if-none-match': '"other"' }, { 'if-modified-since': new Date('2024-01-01').toUTCString() }, { 'if-none-match': '"other"', 'if-modified-since': modified.toUTCString() }]) {
    const res = await app.inject({ url: '/hello.txt', headers })
    assert.equal(res.statusCode, 200, JSON.stringify(headers))
    assert.equal(res.body, HELLO)
  }
  // A changed file has another ETag.
  const later = new Date('2024-06-01T00:00:00Z')
  utimesSync(join(root, 'hello.txt'), later, later)
  const changed = await app.inject({ url: '/hello.txt', headers: { 'if-none-match': etag } })
  assert.equal(changed.statusCode, 200)
  assert.notEqual(changed.headers.etag, etag)
})

test('HEAD: the headers of GET, no body', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root, spa: 'index.html' }] } })
  const get = await app.inject({ url: '/hello.txt' })
  const head = await app.inject({ method: 'HEAD', url: '/hello.txt' })
  assert.equal(head.statusCode, 200)
  assert.equal(head.body, '')
  for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'accept-ranges']) assert.equal(head.headers[name], get.headers[name], name)
  const missing = await app.inject({ method: 'HEAD', url: '/missing.txt' })
  assert.equal(missing.statusCode, 404)
  assert.equal(missing.body, '')
  // The spa fallback answers HEAD too.
  const spa = await app.inject({ method: 'HEAD', url: '/some/page', headers: { accept: 'text/html' } })
  assert.equal(spa.statusCode, 200)
  assert.equal(spa.headers['content-length'], String(INDEX.length))
  // A file the GET compresses: the HEAD says Vary and Content-Encoding as the GET does.
  const gzip = { 'accept-encoding': 'gzip' }
  const big = await app.inject({ url: '/big.txt', headers: gzip })
  const bigHead = await app.inject({ method: 'HEAD', url: '/big.txt', headers: gzip })
  assert.equal(big.headers['content-encoding'], 'gzip')
  assert.equal(bigHead.headers['content-encoding'], 'gzip')
  assert.equal(bigHead.headers.vary, big.headers.vary)
  // Nor the file's length: the GET's is the compressed one (RFC 9110 §8.6).
  assert.equal(bigHead.headers['content-length'], undefined)
  const plainHead = await app.inject({ method: 'HEAD', url: '/big.txt' })
  assert.equal(plainHead.headers['content-length'], String(BIG.length))
})

test('cacheControl and immutable: a year, immutable, for content-hashed names only', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, {
    static: {
      mounts: [
        { root, prefix: '/hashed', immutable: true, cacheControl: 'no-cache' },
        { root, prefix: '/plain', cacheControl: 'private, max-age=30' }
      ]
    }
  })
  const immutable = 'public, max-age=31536000, immutable'
  const cases: Array<[string, string]> = [
    ['/hashed/app.3f9a1c2b.js', immutable],
    ['/hashed/3f9a1c2b.css', immutable],
    ['/hashed/short.3f9a1c2.js', 'no-cache'],
    ['/hashed/nothex.3f9a1c2g.js', 'no-cache'],
    ['/hashed/dash-3f9a1c2b.js', 'no-cache'],
    ['/hashed/hello.txt', 'no-cache'],
    ['/plain/app.3f9a1c2b.js', 'private, max-age=30'],
    ['/plain/hello.txt', 'private, max-age=30']
  ]
  for (const [url, expected] of cases) {
    const res = await app.inject({ url })
    assert.equal(res.statusCode, 200, url)
    assert.equal(res.headers['cache-control'], expected, url)
  }
  // The precompressed sibling of a hashed file is just as immutable.
  const br = await app.inject({ url: '/hashed/app.3f9a1c2b.js', headers: { 'accept-encoding': 'br' } })
  assert.equal(br.headers['content-encoding'], 'br')
  assert.equal(br.headers['cache-control'], immutable)
})

test('isHashed: a dot-separated segment of at least 8 hex digits in the file name', () => {
  for (const name of ['app.3f9a1c2b.js', '3f9a1c2b.js', 'a.DEADBEEF.css', 'chunk.0123456789abcdef.js', 'app.3f9a1c2b.js.br', '/x.y/app.3f9a1c2b']) assert.ok(isHashed(name), name)
  for (const name of ['app.3f9a1c2.js', 'app-3f9a1c2b.js', 'app.3f9a1c2g.js', 'app.js', '/dir.3f9a1c2b/app.js', 'app_3f9a1c2b.js']) assert.ok(!isHashed(name), name)
})

test('index: the index file for a directory, with or without the slash; another name; false serves none; never a listing', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, {
    static: {
      mounts: [
        { root },
        { root, prefix: '/home', index: 'home.html' },
        { root, prefix: '/none', index: false }
      ]
    }
  })
  for (const url of ['/', '/guide/', '/guide']) {
    const res = await app.inject({ url })
    assert.equal(res.statusCode, 200, url)
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8', url)
    assert.equal(res.body, url === '/' ? INDEX : '<h1>docs</h1>\n', url)
  }
  assert.equal((await app.inject({ url: '/home/guide/' })).body, '<h1>docs home</h1>\n')
  assertNotFound(await app.inject({ url: '/home/' }), 'GET', '/home/')
  // Directories never list their files, with or without an index option.
  for (const url of ['/assets/', '/assets', '/none/guide/', '/none/guide', '/none/', '/none/assets/']) {
    const res = await app.inject({ url })
    assertNotFound(res, 'GET', url)
    assert.doesNotMatch(res.body, /readme|index\.html/)
  }
  // The files themselves are still served.
  assert.equal((await app.inject({ url: '/none/guide/index.html' })).body, '<h1>docs</h1>\n')
})

test('spa: the fallback file for unknown paths under the prefix, for clients that accept HTML', async (t) => {
  const { root } = site(t)
  const { app, logs } = await setup(t, { static: { mounts: [{ root, prefix: '/app', spa: 'guide/index.html' }] } })
  const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
  for (const url of ['/app/dashboard', '/app/users/42/edit', '/app/missing.html', '/app/assets/']) {
    const res = await app.inject({ url, headers: { accept: browser } })
    assert.equal(res.statusCode, 200, url)
    assert.equal(res.body, '<h1>docs</h1>\n', url)
    assert.equal(res.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(res.headers['cache-control'], 'public, max-age=0')
    assert.ok(res.headers.etag !== undefined)
  }
  // The access line has the URL asked for.
  assert.ok(logs.some((l) => l.msg === 'request completed' && l.path === '/app/users/42/edit' && l.status === 200))
  // Existing files are themselves.
  assert.equal((await app.inject({ url: '/app/hello.txt', headers: { accept: browser } })).body, HELLO)
  // API clients, fetch() and an explicit refusal of HTML get the 404 problem.
  for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0', 'text/plain']) {
    assertNotFound(await app.inject({ url: '/app/dashboard', headers: accept === undefined ? {} : { accept } }), 'GET', '/app/dashboard')
  }
  // Outside the prefix, no fallback; refused paths are never answered with it.
  assertNotFound(await app.inject({ url: '/dashboard', headers: { accept: browser } }), 'GET', '/dashboard')
  assertNotFound(await app.inject({ url: '/app/.secret', headers: { accept: browser } }), 'GET', '/app/.secret')
  assertNotFound(await app.inject({ url: '/app/%2e%2e%5csecret.txt', headers: { accept: browser } }), 'GET', '/app/%2e%2e%5csecret.txt')
  // The fallback file deleted after startup: a 404 problem, not a loop.
  rmSync(join(root, 'guide', 'index.html'))
  assertNotFound(await app.inject({ url: '/app/dashboard', headers: { accept: browser } }), 'GET', '/app/dashboard')
})

test('spa: an answer chosen by Accept says Vary: Accept (the page, its 304, the 404 problem), so a cache keeps them apart; a file that exists does not vary by Accept', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root, prefix: '/app', spa: 'guide/index.html' }, { root, prefix: '/plain' }] } })
  const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
  // The root holds .gz siblings, so @fastify/static adds accept-encoding to every answer.
  const varies = (res: LightMyRequestResponse): string[] => String(res.headers.vary ?? '').split(',').map((v) => v.trim().toLowerCase()).filter((v) => v !== '').sort()
  const page = await app.inject({ url: '/app/dashboard', headers: { accept: browser } })
  assert.equal(page.statusCode, 200)
  assert.deepEqual(varies(page), ['accept', 'accept-encoding'])
  const notModified = await app.inject({ url: '/app/dashboard', headers: { accept: browser, 'if-none-match': String(page.headers.etag) } })
  assert.equal(notModified.statusCode, 304)
  assert.deepEqual(varies(notModified), ['accept', 'accept-encoding'])
  const head = await app.inject({ method: 'HEAD', url: '/app/dashboard', headers: { accept: browser } })
  assert.deepEqual(varies(head), ['accept', 'accept-encoding'])
  for (const accept of [undefined, '*/*', 'application/json']) {
    const problem = await app.inject({ url: '/app/dashboard', headers: accept === undefined ? {} : { accept } })
    assertNotFound(problem, 'GET', '/app/dashboard')
    assert.deepEqual(varies(problem), ['accept'], String(accept))
  }
  // A file is itself whatever the client accepts; a mount without spa answers a missing
  // file with the 404 problem for everyone; refused paths are refused for everyone.
  assert.deepEqual(varies(await app.inject({ url: '/app/hello.txt', headers: { accept: browser } })), ['accept-encoding'])
  assert.deepEqual(varies(await app.inject({ url: '/plain/dashboard', headers: { accept: browser } })), [])
  assert.deepEqual(varies(await app.inject({ url: '/app/.secret', headers: { accept: browser } })), [])
  // With the app's CORS and a page the compression feature compresses, each Vary is kept.
  const { app: both } = await setup(t, { cors: { origin: ['https://app.example'] }, compression: { threshold: 1 }, static: { mounts: [{ root, prefix: '/app', spa: 'guide/index.html' }] } })
  const compressed = await both.inject({ url: '/app/dashboard', headers: { accept: browser, origin: 'https://app.example', 'accept-encoding': 'gzip' } })
  assert.equal(compressed.statusCode, 200)
  assert.equal(compressed.headers['content-encoding'], 'gzip')
  assert.deepEqual(varies(compressed), ['accept', 'accept-encoding', 'origin'])
  const refused = await both.inject({ url: '/app/dashboard', headers: { origin: 'https://app.example' } })
  assert.equal(refused.statusCode, 404)
  assert.equal(refused.headers['access-control-allow-origin'], 'https://app.example')
  assert.deepEqual(varies(refused), ['accept', 'accept-encoding', 'origin'])
})

test('acceptsHtml: text/html or application/xhtml+xml with a weight above zero', () => {
  for (const accept of ['text/html', 'TEXT/HTML', 'application/xhtml+xml', 'text/html;q=0.5', 'application/json, text/html; q=0.1']) assert.ok(acceptsHtml(accept), accept)
  for (const accept of [undefined, '', '*/*', 'text/*', 'text/html;q=0', 'text/html; q=0.0', 'application/json', 'text/htmlx']) assert.ok(!acceptsHtml(accept), String(accept))
})

test('Range: one range is a 206 with Content-Range, never compressed; past the end, a 416 problem; several ranges, the whole file', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root }] } })
  const part = await app.inject({ url: '/big.txt', headers: { range: 'bytes=4-7', 'accept-encoding': 'gzip, br' } })
  assert.equal(part.statusCode, 206)
  assert.equal(part.body, BIG.slice(4, 8))
  assert.equal(part.headers['content-range'], `bytes 4-7/${BIG.length}`)
  assert.equal(part.headers['content-length'], '4')
  assert.equal(part.headers['content-encoding'], undefined)
  // The same file whole is compressed by the compression feature (no precompressed sibling).
  const whole = await app.inject({ url: '/big.txt', headers: { 'accept-encoding': 'gzip' } })
  assert.equal(whole.statusCode, 200)
  assert.equal(whole.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(whole.rawPayload).toString(), BIG)
  // Open-ended and suffix ranges.
  assert.equal((await app.inject({ url: '/hello.txt', headers: { range: 'bytes=6-' } })).body, HELLO.slice(6))
  assert.equal((await app.inject({ url: '/hello.txt', headers: { range: 'bytes=-7' } })).body, HELLO.slice(-7))
  // Past the end.
  const past = await app.inject({ url: '/hello.txt', headers: { range: `bytes=${HELLO.length}-` } })
  assert.equal(past.statusCode, 416)
  assert.equal(past.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.equal(past.headers['content-range'], `bytes */${HELLO.length}`)
  assert.deepStrictEqual(past.json(), {
    type: 'https://spikard.dev/errors/range-not-satisfiable',
    title: 'Range Not Satisfiable',
    status: 416,
    detail: `No part of the requested range is within the file (${HELLO.length} bytes)`,
    instance: '/hello.txt',
    requestId: past.headers['x-request-id']
  })
  // A malformed range: a 416 too.
  const malformed = await app.inject({ url: '/hello.txt', headers: { range: 'bytes=x-y' } })
  assert.equal(malformed.statusCode, 416)
  assert.equal(malformed.json().detail, `No part of the requested range is within the file (${HELLO.length} bytes)`)
  // Several ranges, another unit: the whole file.
  for (const range of ['bytes=0-1,4-5', 'items=0-1']) {
    const res = await app.inject({ url: '/hello.txt', headers: { range } })
    assert.equal(res.statusCode, 200, range)
    assert.equal(res.body, HELLO, range)
  }
})

test('a suffix range longer than the file is the whole file (RFC 9110 §14.1.2): a 206 of every byte; an empty file, a 200', async (t) => {
  const { root } = site(t)
  writeFileSync(join(root, 'empty.txt'), '')
  const { app, logs } = await setup(t, { static: { mounts: [{ root }, { root, prefix: '/app', spa: 'index.html' }] } })
  for (const [method, range] of [['GET', 'bytes=-100000'], ['GET', `bytes=-${BIG.length + 1}`], ['GET', 'bytes= -100000 '], ['GET', `bytes=${BIG.length}-,-100000`], ['HEAD', 'bytes=-100000']] as const) {
    const res = await app.inject({ method, url: '/big.txt', headers: { range, 'accept-encoding': 'gzip' } })
    assert.equal(res.statusCode, 206, `${method} ${range}: ${res.body}`)
    assert.equal(res.headers['content-range'], `bytes 0-${BIG.length - 1}/${BIG.length}`, range)
    assert.equal(res.headers['content-length'], String(BIG.length), range)
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8', range)
    assert.equal(res.headers['content-encoding'], undefined, range)
    assert.equal(res.body, method === 'HEAD' ? '' : BIG, range)
  }
  // Exactly the file's length was already a 206 of the whole file.
  assert.equal((await app.inject({ url: '/big.txt', headers: { range: `bytes=-${BIG.length}` } })).headers['content-range'], `bytes 0-${BIG.length - 1}/${BIG.length}`)
  // The spa fallback file, asked for with a suffix longer than it: the route's handler runs
  // three times on one response, without Node's warning about its listeners.
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  const spa = await app.inject({ url: '/app/dashboard', headers: { accept: 'text/html', range: 'bytes=-100000' } })
  await new Promise((resolve) => setImmediate(resolve))
  process.off('warning', onWarning)
  assert.deepEqual(warnings.map((w) => w.message), [])
  assert.equal(spa.statusCode, 206)
  assert.equal(spa.headers['content-range'], `bytes 0-${INDEX.length - 1}/${INDEX.length}`)
  assert.equal(spa.body, INDEX)
  // An empty file: no Content-Range can say 0 bytes of 0, so the whole (empty) file, 200.
  const empty = await app.inject({ url: '/empty.txt', headers: { range: 'bytes=-5' } })
  assert.equal(empty.statusCode, 200)
  assert.equal(empty.headers['content-range'], undefined)
  assert.equal(empty.headers['content-length'], '0')
  assert.equal(empty.body, '')
  // A suffix of zero bytes, and ranges that start past the end, stay 416 problems.
  for (const [url, range, size] of [['/big.txt', 'bytes=-0', BIG.length], ['/empty.txt', 'bytes=0-', 0], ['/big.txt', `bytes=${BIG.length}-,-0`, BIG.length]] as const) {
    const res = await app.inject({ url, headers: { range } })
    assert.equal(res.statusCode, 416, range)
    assert.equal(res.headers['content-range'], `bytes */${size}`, range)
    assert.equal(res.json().type, 'https://spikard.dev/errors/range-not-satisfiable', range)
  }
  // One access line per request, with the status and bytes sent; no error logged.
  const lines = logs.filter((l) => l.msg === 'request completed' && l.path === '/big.txt').slice(0, 5)
  assert.deepStrictEqual(lines.map((l) => [l.method, l.status, l.method === 'GET' ? l.bytes : '']), [...Array(4).fill(['GET', 206, BIG.length]), ['HEAD', 206, '']])
  assert.deepStrictEqual(logs.filter((l) => l.level >= 50), [])
})

/** Every kind of answer for one file: 200 asked with and without gzip, HEAD, 304 by ETag and by date, 206. */
async function everyAnswer (app: TestApp['app'], url: string): Promise<Array<[string, LightMyRequestResponse]>> {
  const first = await app.inject({ url })
  assert.equal(first.statusCode, 200, url)
  const gzip = { 'accept-encoding': 'gzip' }
  const zipped = await app.inject({ url, headers: gzip })
  const answers: Array<[string, LightMyRequestResponse]> = [
    ['200', first],
    ['200 gzip', zipped],
    ['HEAD', await app.inject({ method: 'HEAD', url, headers: gzip })],
    // A .gz sibling has an ETag of its own.
    ['304 If-None-Match', await app.inject({ url, headers: { ...gzip, 'if-none-match': String(zipped.headers.etag) } })],
    ['304 If-Modified-Since', await app.inject({ url, headers: { 'if-modified-since': String(first.headers['last-modified']) } })],
    ['206', await app.inject({ url, headers: { ...gzip, range: 'bytes=0-9' } })],
    ['206 If-Range', await app.inject({ url, headers: { range: 'bytes=-4', 'if-range': String(first.headers['last-modified']) } })]
  ]
  assert.deepStrictEqual(answers.map(([, res]) => res.statusCode), [200, 200, 200, 304, 304, 206, 206], url)
  return answers
}

test('Vary: Accept-Encoding on every answer (200, HEAD, 304, 206) for a file that is served compressed, and on none for one that never is', async (t) => {
  const { root } = site(t)
  writeFileSync(join(root, 'photo.png'), Buffer.alloc(4096, 7))
  const mounts = [{ root }, { root, prefix: '/raw', precompressed: false }]
  const { app } = await setup(t, { static: { mounts } })
  // Compressed by the compression feature (text, over its 1 KiB threshold): the 304 and 206 as the 200.
  assert.equal((await app.inject({ url: '/raw/big.txt', headers: { 'accept-encoding': 'gzip' } })).headers['content-encoding'], 'gzip')
  for (const [what, res] of await everyAnswer(app, '/raw/big.txt')) assert.equal(res.headers.vary, 'Accept-Encoding', `/raw/big.txt ${what}`)
  // Never compressed (under the threshold; a type that does not compress): no Vary at all.
  for (const url of ['/raw/hello.txt', '/raw/photo.png']) {
    for (const [what, res] of await everyAnswer(app, url)) assert.equal(res.headers.vary, undefined, `${url} ${what}`)
  }
  // A mount serving precompressed siblings: every answer of every file.
  for (const url of ['/app.3f9a1c2b.js', '/big.txt', '/photo.png']) {
    for (const [what, res] of await everyAnswer(app, url)) assert.match(String(res.headers.vary), /^accept-encoding$/i, `${url} ${what}`)
  }
  // Compression off, or a threshold above the file: nothing varies but the precompressed mount.
  for (const compression of [false, { threshold: '8kb' }] as const) {
    const { app } = await setup(t, { compression, static: { mounts } })
    for (const [what, res] of await everyAnswer(app, '/raw/big.txt')) {
      assert.equal(res.headers.vary, undefined, `${JSON.stringify(compression)} /raw/big.txt ${what}`)
      assert.equal(res.headers['content-encoding'], undefined, `${JSON.stringify(compression)} /raw/big.txt ${what}`)
    }
    for (const [what, res] of await everyAnswer(app, '/big.txt')) assert.match(String(res.headers.vary), /^accept-encoding$/i, `${JSON.stringify(compression)} /big.txt ${what}`)
  }
})

test('precompressed: the .br or .gz sibling when the client accepts it, with its own ETag; false serves the file itself', async (t) => {
  const { root } = site(t)
  const source = 'console.log("hashed")\n'
  // Compression off, so what arrives is what the mount sent.
  const { app } = await setup(t, { compression: false, static: { mounts: [{ root }, { root, prefix: '/raw', precompressed: false }] } })
  const identity = await app.inject({ url: '/app.3f9a1c2b.js' })
  assert.equal(identity.headers['content-encoding'], undefined)
  assert.equal(identity.body, source)
  const br = await app.inject({ url: '/app.3f9a1c2b.js', headers: { 'accept-encoding': 'gzip, deflate, br' } })
  assert.equal(br.headers['content-encoding'], 'br')
  assert.equal(br.headers['content-type'], 'application/javascript; charset=utf-8')
  assert.match(String(br.headers.vary), /accept-encoding/i)
  assert.equal(br.headers['content-length'], String(readFileSync(join(root, 'app.3f9a1c2b.js.br')).length))
  assert.equal(brotliDecompressSync(br.rawPayload).toString(), source)
  assert.notEqual(br.headers.etag, identity.headers.etag)
  const gz = await app.inject({ url: '/app.3f9a1c2b.js', headers: { 'accept-encoding': 'gzip' } })
  assert.equal(gz.headers['content-encoding'], 'gzip')
  assert.equal(gunzipSync(gz.rawPayload).toString(), source)
  // Only a .gz sibling: a br-only client gets the file itself.
  const plain = await app.inject({ url: '/plain.js', headers: { 'accept-encoding': 'br' } })
  assert.equal(plain.headers['content-encoding'], undefined)
  assert.equal(plain.body, 'console.log("plain")\n')
  assert.match(String(plain.headers.vary), /accept-encoding/i)
  // precompressed: false.
  const raw = await app.inject({ url: '/raw/app.3f9a1c2b.js', headers: { 'accept-encoding': 'br, gzip' } })
  assert.equal(raw.headers['content-encoding'], undefined)
  assert.equal(raw.body, source)
})

test('precompressed responses are not compressed again by the compression feature', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root }] } })
  const br = await app.inject({ url: '/app.3f9a1c2b.js', headers: { 'accept-encoding': 'br' } })
  assert.equal(br.headers['content-encoding'], 'br')
  assert.equal(brotliDecompressSync(br.rawPayload).toString(), 'console.log("hashed")\n')
})

test('dotfiles are refused at any depth, as are symlinks that leave the root (logged); symlinks inside it are followed', async (t) => {
  const { root } = site(t)
  const { app, logs } = await setup(t, { static: { mounts: [{ root }] } })
  for (const url of ['/.secret', '/.git/config', '/guide/.hidden/file.txt', '/%2esecret', '/link-out.txt', '/dir-out/page.html']) {
    const res = await app.inject({ url })
    assertNotFound(res, 'GET', url)
    assert.doesNotMatch(res.body, new RegExp(SECRET))
  }
  const warnings = logs.filter((l) => l.level === 40 && /symlink/.test(l.msg))
  assert.deepStrictEqual(warnings.map((l) => [l.path, l.msg]), [
    [join(root, 'link-out.txt'), 'static: refused a file reached through a symlink that leads outside static.mounts[0].root (set static.mounts[0].followSymlinks to serve it)'],
    [join(root, 'dir-out', 'page.html'), 'static: refused a file reached through a symlink that leads outside static.mounts[0].root (set static.mounts[0].followSymlinks to serve it)']
  ])
  assert.equal((await app.inject({ url: '/link-in.txt' })).body, 'reached through a symlink inside the root\n')
})

test('a symlink checked once is checked again when it leads elsewhere: retargeted, or a directory on the way swapped', async (t) => {
  const { dir, root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root }] } })
  const link = join(root, 'moving.txt')
  symlinkSync(join(root, 'inside-target.txt'), link)
  for (let i = 0; i < 2; i++) assert.equal((await app.inject({ url: '/moving.txt' })).body, 'reached through a symlink inside the root\n')
  rmSync(link)
  symlinkSync(join(dir, 'secret.txt'), link)
  const retargeted = await app.inject({ url: '/moving.txt' })
  assertNotFound(retargeted, 'GET', '/moving.txt')
  assert.doesNotMatch(retargeted.body, new RegExp(SECRET))
  // A directory of the root, served, then replaced by a symlink to one outside with the same file name.
  mkdirSync(join(root, 'swap'))
  writeFileSync(join(root, 'swap', 'page.html'), '<p>inside</p>')
  assert.equal((await app.inject({ url: '/swap/page.html' })).body, '<p>inside</p>')
  rmSync(join(root, 'swap'), { recursive: true })
  symlinkSync(join(dir, 'outside'), join(root, 'swap'))
  const swapped = await app.inject({ url: '/swap/page.html' })
  assertNotFound(swapped, 'GET', '/swap/page.html')
  assert.doesNotMatch(swapped.body, new RegExp(SECRET))
})

/** Opens the write end of a FIFO without blocking and closes it: false when no one has it open for reading (ENXIO). */
function hasReader (fifo: string): boolean {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENXIO') return false
    throw error
  }
}

test('what is not a regular file (a FIFO, a socket, a device) is a 404 problem, refused before it is opened', async (t) => {
  const { root } = site(t)
  const fifos = [join(root, 'pipe.txt'), join(root, 'fifo-dir', 'index.html')]
  mkdirSync(join(root, 'fifo-dir'))
  try {
    for (const fifo of fifos) execFileSync('mkfifo', [fifo], { stdio: 'ignore' })
  } catch {
    t.skip('no mkfifo on this platform')
    return
  }
  const socket = createNetServer()
  await new Promise<void>((resolve) => socket.listen(join(root, 'app.sock'), resolve))
  t.after(() => socket.close())
  const devices = existsSync('/dev/zero') ? ['/follow/zero.bin'] : []
  if (devices.length > 0) symlinkSync('/dev/zero', join(root, 'zero.bin'))
  const { app, logs } = await setup(t, { static: { mounts: [{ root }, { root, prefix: '/follow', followSymlinks: true }] } })
  // More FIFO requests at once than libuv has thread-pool threads (4), then a regular file.
  const urls = ['/pipe.txt', '/pipe.txt', '/pipe.txt', '/pipe.txt', '/pipe.txt', '/fifo-dir/', '/fifo-dir', '/follow/pipe.txt', '/app.sock', '/follow/app.sock', ...devices]
  try {
    const answers = await withTimeout(Promise.all(urls.map(async (url) => await app.inject({ url }))), 5000, 'the requests for a FIFO, a socket and a device')
    answers.forEach((res, i) => assertNotFound(res, 'GET', urls[i]))
    const head = await withTimeout(app.inject({ method: 'HEAD', url: '/pipe.txt' }), 5000, 'HEAD of a FIFO')
    assert.equal(head.statusCode, 404)
    assert.equal(head.body, '')
    assert.equal((await withTimeout(app.inject({ url: '/hello.txt' }), 5000, 'a regular file after them')).body, HELLO)
    // No one opened a FIFO for reading (which waits for a writer).
    for (const fifo of fifos) assert.equal(hasReader(fifo), false, fifo)
  } finally {
    // Readers left waiting in open() are let go (the write end opened and closed, they read
    // the end), and those queued behind them on the thread pool, until none is left.
    for (let round = 0; round < 100 && fifos.map(hasReader).includes(true); round++) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const warned = logs.filter((l) => l.level === 40 && /not a regular file/.test(l.msg)).map((l) => l.path)
  assert.ok(warned.includes(fifos[0]) && warned.includes(fifos[1]) && warned.includes(join(root, 'app.sock')), JSON.stringify(warned))
})

/**
 * A regular file that cannot be opened for reading: one without read permission (for a user
 * other than root), or a write-only sysfs file (root too is refused those); undefined if none.
 */
function unreadableFile (dir: string): string | undefined {
  const locked = join(dir, 'locked.bin')
  writeFileSync(locked, 'locked')
  chmodSync(locked, 0o200)
  for (const path of [locked, '/sys/bus/pci/rescan', '/sys/kernel/mm/transparent_hugepage/khugepaged/defrag']) {
    try {
      if (!statSync(path).isFile()) continue
      closeSync(openSync(path, 'r'))
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EACCES') return path
    }
  }
  return undefined
}

test('a file that fails to open once its headers are set: a 500 problem without the file\'s caching, validator, range or coding headers', async (t) => {
  const { dir, root } = site(t)
  const unreadable = unreadableFile(dir)
  if (unreadable === undefined) {
    t.skip('no regular file this user cannot open (chmod 000 as another user than root, or a write-only sysfs file)')
    return
  }
  // A content-hashed name (a year, immutable), and a precompressed sibling (Content-Encoding).
  symlinkSync(unreadable, join(root, 'broken.0123abcd.js'))
  symlinkSync(unreadable, join(root, 'plain.css.gz'))
  writeFileSync(join(root, 'plain.css'), 'h1 { color: blue }\n')
  const { app, logs } = await setup(t, { static: { mounts: [{ root, immutable: true, followSymlinks: true }] } })
  const cases: Array<{ url: string, headers?: Record<string, string> }> = [
    { url: '/broken.0123abcd.js' },
    { url: '/broken.0123abcd.js', headers: { range: 'bytes=0-3' } },
    { url: '/plain.css', headers: { 'accept-encoding': 'gzip' } }
  ]
  for (const { url, headers } of cases) {
    const res = await app.inject({ url, headers })
    assert.equal(res.statusCode, 500, `${url}: ${res.body}`)
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
    assert.equal(res.json().type, 'https://spikard.dev/errors/internal-error')
    for (const name of ['cache-control', 'etag', 'last-modified', 'content-range', 'accept-ranges', 'content-encoding']) {
      assert.equal(res.headers[name], undefined, `${url} ${JSON.stringify(headers ?? {})}: ${name} of the file on its 500 problem`)
    }
  }
  assert.equal(logs.filter((l) => l.level === 50 && l.err?.code === 'EACCES').length, cases.length)
})

test('followSymlinks: true serves files reached through symlinks that leave the root; dotfiles stay refused', async (t) => {
  const { root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root, followSymlinks: true }] } })
  assert.equal((await app.inject({ url: '/link-out.txt' })).body, SECRET)
  assert.equal((await app.inject({ url: '/dir-out/page.html' })).body, `<p>${SECRET}</p>`)
  assertNotFound(await app.inject({ url: '/.secret' }), 'GET', '/.secret')
})

test('a root that is itself a symlink: its files are served, a symlink out of its target refused', async (t) => {
  const { dir, root } = site(t)
  const alias = join(dir, 'alias')
  symlinkSync(root, alias)
  const { app } = await setup(t, { static: { mounts: [{ root: alias }] } })
  assert.equal((await app.inject({ url: '/hello.txt' })).body, HELLO)
  assertNotFound(await app.inject({ url: '/link-out.txt' }), 'GET', '/link-out.txt')
})

/**
 * Each traversal form, as bytes on a socket (no client normalises it), against a mount at
 * `/` and one at `/static`, both of `<dir>/public`; `<dir>/secret.txt` is one level up.
 */
test('traversal in every form, over a raw socket: a 404 problem and never a byte outside the root', async (t) => {
  const { dir, root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root }, { root, prefix: '/static' }] } })
  const { port } = await listen(app)
  const secretPath = join(dir, 'secret.txt')
  const forms = [
    // ../
    '/../secret.txt', '/static/../secret.txt', '/static/../../secret.txt', '/guide/../../secret.txt', '/./../secret.txt',
    // %2e%2e, in every case and mixed with dots and encoded slashes
    '/%2e%2e/secret.txt', '/%2E%2E/secret.txt', '/.%2e/secret.txt', '/%2e./secret.txt', '/%2e%2e%2fsecret.txt', '/..%2fsecret.txt',
    '/static/%2e%2e/%2e%2e/secret.txt', '/static/..%2f..%2fsecret.txt', '/guide%2f..%2f..%2fsecret.txt',
    // double encoding
    '/%252e%252e/secret.txt', '/%252e%252e%252fsecret.txt', '/static/%252e%252e%252f%252e%252e%252fsecret.txt', '/%25%32%65%25%32%65/secret.txt',
    // backslashes, raw and encoded
    '/..\\secret.txt', '/static/..\\..\\secret.txt', '/\\..\\secret.txt', '/..%5csecret.txt', '/%5c..%5csecret.txt', '/guide\\..\\..\\secret.txt',
    // NUL bytes, encoded
    '/hello.txt%00', '/hello.txt%00.png', '/%00../secret.txt', '/..%00/secret.txt',
    // absolute paths
    '//etc/passwd', '/%2fetc%2fpasswd', '/static//etc/passwd', `/${encodeURIComponent(secretPath)}`, `/static/${secretPath}`, `/${secretPath}`,
    // the odd separators of other servers
    '/..;/secret.txt', '/static/..;/secret.txt',
    // dotfiles and listings
    '/.secret', '/static/.git/config', '/assets/'
  ]
  for (const path of forms) {
    const res = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.equal(res.status, 404, `${path}: ${res.statusLine} ${res.body}`)
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', path)
    const body = JSON.parse(res.body)
    assert.equal(body.type, 'https://spikard.dev/errors/not-found', path)
    assert.equal(body.instance, path.split('?')[0], path)
    assert.ok(!res.body.includes(SECRET) && !res.body.includes('root:x:0:0'), `${path}: ${res.body}`)
  }
  // Overlong UTF-8 dots do not decode: Fastify's router answers a 400 problem before any route.
  for (const path of ['/%c0%ae%c0%ae/secret.txt', '/static/%c0%2e%c0%2e/secret.txt']) {
    const res = await rawRequest(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.equal(res.status, 400, path)
    assert.equal(JSON.parse(res.body).type, 'https://spikard.dev/errors/bad-request', path)
    assert.ok(!res.body.includes(SECRET), path)
  }
  // Raw NUL bytes: Node's HTTP parser refuses the request line, a 400 problem, still no byte.
  for (const target of ['/hello.txt\0', '/..\0/secret.txt']) {
    const res = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
    assert.equal(res.status, 400, JSON.stringify(target))
    assert.equal(res.headers['content-type'], 'application/problem+json', JSON.stringify(target))
    assert.ok(!res.body.includes(SECRET), JSON.stringify(target))
  }
  // An absolute-form request target (a proxy request) is routed by its path only.
  const absolute = await rawRequest(port, 'GET http://127.0.0.1/../secret.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  assert.ok(absolute.status === 400 || absolute.status === 404, `${absolute.statusLine} ${absolute.body}`)
  assert.ok(!absolute.body.includes(SECRET))
  // The same socket path that is allowed: the file, to show the requests above could succeed.
  const ok = await rawRequest(port, 'GET /static/hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  assert.equal(ok.status, 200)
  assert.equal(ok.body, HELLO)
})

test('several mounts: each serves its own root under its prefix, with or without the trailing slash', async (t) => {
  const { dir, root } = site(t)
  const { app } = await setup(t, { static: { mounts: [{ root, prefix: '/a' }, { root: join(dir, 'outside'), prefix: '/b/' }] } })
  assert.equal((await app.inject({ url: '/a/hello.txt' })).body, HELLO)
  assert.equal((await app.inject({ url: '/b/page.html' })).body, `<p>${SECRET}</p>`)
  assertNotFound(await app.inject({ url: '/a/page.html' }), 'GET', '/a/page.html')
  assertNotFound(await app.inject({ url: '/b/hello.txt' }), 'GET', '/b/hello.txt')
  assertNotFound(await app.inject({ url: '/hello.txt' }), 'GET', '/hello.txt')
  assert.equal((await app.inject({ url: '/a/' })).body, INDEX)
})

test('public unless auth: true, which asks for the app\'s credentials; every mount route is out of the OpenAPI document', async (t) => {
  const { root } = site(t)
  const key = 'static-test-key-0123456789abcdef'
  const { app } = await setup(t, { auth: { apiKey: { keys: [key] } }, static: { mounts: [{ root, prefix: '/public' }, { root, prefix: '/private', auth: true }] } })
  assert.equal((await app.inject({ url: '/public/hello.txt' })).body, HELLO)
  const refused = await app.inject({ url: '/private/hello.txt' })
  assert.equal(refused.statusCode, 401)
  assert.equal(refused.json().type, 'https://spikard.dev/errors/unauthorized')
  assert.doesNotMatch(refused.body, /Hello/)
  assert.equal((await app.inject({ url: '/private/hello.txt', headers: { 'x-api-key': key } })).body, HELLO)
  // A missing file behind auth: 401 first, then 404 with the key.
  assert.equal((await app.inject({ url: '/private/missing.txt' })).statusCode, 401)
  assert.equal((await app.inject({ url: '/private/missing.txt', headers: { 'x-api-key': key } })).statusCode, 404)
  // The app's own routes keep their auth.
  assert.equal((await app.inject({ url: '/api/hello' })).statusCode, 401)
  // What spikard check shows, and the document.
  const mounts = app.spikard.routes.filter((r) => String(r.url).startsWith('/p'))
  assert.deepStrictEqual(mounts.map((r) => [r.url, r.method, r.config?.auth, (r.config as { openapi?: boolean }).openapi]), [
    ['/public/*', ['HEAD', 'GET'], false, false],
    ['/public', ['GET', 'HEAD'], false, false],
    ['/private/*', ['HEAD', 'GET'], true, false],
    ['/private', ['GET', 'HEAD'], true, false]
  ])
  const paths = Object.keys((app.swagger() as { paths: Record<string, unknown> }).paths)
  assert.deepStrictEqual(paths.filter((p) => !p.startsWith('/api') && !['/livez', '/readyz'].includes(p)), [])
})

test('a mount root relative to the config file (createServer baseDir), or to the working directory in code', async (t) => {
  const { dir } = site(t)
  const fromConfig = await createServer({ server: { logger: { level: 'silent' } }, static: { mounts: [{ root: 'public' }] } }, { baseDir: dir })
  t.after(() => fromConfig.close())
  assert.equal((await fromConfig.inject({ url: '/hello.txt' })).body, HELLO)
  const inCode = Fastify()
  t.after(() => inCode.close())
  const fromCwd = relative(process.cwd(), join(dir, 'public'))
  assert.ok(!isAbsolute(fromCwd))
  await inCode.register(spikard, { static: { mounts: [{ root: fromCwd }] } })
  assert.equal((await inCode.inject({ url: '/hello.txt' })).body, HELLO)
})

test('invalid mounts are refused at startup, each naming its key and what was found', async (t) => {
  const { dir, root } = site(t)
  const missing = join(dir, 'nope')
  await assertOptionsRefused('static', { mounts: [{ root: missing }] }, [`static.mounts[0].root: expected an existing directory, found nothing at ${missing}`])
  await assertOptionsRefused('static', { mounts: [{ root }, { root: join(root, 'hello.txt'), prefix: '/x' }] }, [`static.mounts[1].root: expected an existing directory, found a file at ${join(root, 'hello.txt')}`])
  await assertOptionsRefused('static', [{ root, index: 'docs/index.html' }], ['static.mounts[0].index: expected a file name (no "/" or "\\"), found "docs/index.html"'])
  // One mount written as an object instead of a list: said so.
  await assertOptionsRefused('static', { root, prefix: '/x' }, [
    'static.root: unknown key (it goes in each entry of static.mounts, a list)',
    'static.prefix: unknown key (it goes in each entry of static.mounts, a list)'
  ])
  await assertOptionsRefused('static', [{ root, spa: 'app.html' }], [`static.mounts[0].spa: expected a file under the root, found nothing at ${join(root, 'app.html')}`])
  await assertOptionsRefused('static', [{ root, spa: '../secret.txt' }], ['static.mounts[0].spa: expected a file path inside the root, found "../secret.txt"'])
  await assertOptionsRefused('static', [{ root, spa: 'guide' }], [`static.mounts[0].spa: expected a file under the root, found a directory at ${join(root, 'guide')}`])
  await assertOptionsRefused('static', [{ root, prefix: '/a' }, { root, prefix: '/a/' }], ['static.mounts[1].prefix: /a/ is also static.mounts[0].prefix; give each mount a prefix of its own'])
  // Route syntax in a prefix: a parameter, a wildcard the router refuses, a path no request reaches.
  for (const prefix of ['/a/:id', '/a/*', '/a?b', '/a#b', '/a b', '//', '/a//b', '']) {
    await assertOptionsRefused('static', [{ root, prefix }], [`static[0].prefix: ${LITERAL}, found ${JSON.stringify(prefix)}`])
  }
  // Node would refuse the header on every file: each a 500.
  await assertOptionsRefused('static', [{ root, cacheControl: 'no-cache\r\nSet-Cookie: a=b' }], ['static.mounts[0].cacheControl: expected a header value (no CR, LF or other control character), found "no-cache\\r\\nSet-Cookie: a=b"'])
  await assertOptionsRefused('static', [{ root, auth: true }], ['static.mounts[0].auth: true protects the mount with the app\'s auth, and the auth feature is off; configure auth or remove static.mounts[0].auth'])
  // What the schema refuses names the key in the list shorthand too (it said only that
  // static was not true, false, an object or a list of objects).
  await assertOptionsRefused('static', [{ root, prefix: 'assets' }], [`static[0].prefix: ${LITERAL}, found "assets"`])
  await assertOptionsRefused('static', [{ root }, { root, index: '' }], ['static[1].index: expected a file name, or false, found ""'])
  await assertOptionsRefused('static', { mounts: [{ root, prefix: 'assets' }] }, [`static.mounts[0].prefix: ${LITERAL}, found "assets"`])
  // Several problems at once.
  await assertOptionsRefused('static', [{ root: missing }, { root: missing, prefix: '/b' }], [
    `static.mounts[0].root: expected an existing directory, found nothing at ${missing}`,
    `static.mounts[1].root: expected an existing directory, found nothing at ${missing}`
  ])
})

test('a mount whose prefix is already a route of the app is refused at startup', async (t) => {
  const { root } = site(t)
  const app = Fastify()
  t.after(() => app.close())
  app.get('/*', async () => 'mine')
  app.register(spikard, { static: { mounts: [{ root }] } })
  await assert.rejects(async () => { await app.ready() }, (error: unknown) => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.deepStrictEqual(error.problems, ['static.mounts[0].prefix: / is taken: a route GET /* was registered before spikard; move it, or give the mount another prefix'])
    return true
  })
})

test('a mount at the path of one of spikard\'s own routes is refused naming both options, not as a route of yours', async (t) => {
  const { root } = site(t)
  await assertOptionsRefused('static', { mounts: [{ root, prefix: '/docs' }, { root, prefix: '/livez/' }, { root, prefix: '/files' }] }, [
    'static.mounts[0].prefix: /docs is openapi.docs already; give each its own path',
    'static.mounts[1].prefix: /livez/ is health.liveness already; give each its own path'
  ])
  // Moved, or the docs off: served.
  const { app } = await setup(t, { openapi: false, static: { mounts: [{ root, prefix: '/docs' }] } })
  assert.equal((await app.inject({ url: '/docs' })).statusCode, 301)
})

test('the prefix without its trailing slash redirects to it, keeping the query string', async (t) => {
  const { root } = site(t)
  const key = 'static-test-key-0123456789abcdef'
  const { app } = await setup(t, { auth: { apiKey: { keys: [key] } }, static: { mounts: [{ root, prefix: '/app' }, { root, prefix: '/private/', auth: true }] } })
  for (const [url, location] of [['/app', '/app/'], ['/app?tab=2', '/app/?tab=2']]) {
    const res = await app.inject({ url })
    assert.equal(res.statusCode, 301, url)
    assert.equal(res.headers.location, location, url)
  }
  assert.equal((await app.inject({ method: 'HEAD', url: '/app' })).statusCode, 301)
  assert.equal((await app.inject({ url: '/app/' })).body, INDEX)
  // The redirect of a mount with auth asks for credentials like its files.
  assert.equal((await app.inject({ url: '/private' })).statusCode, 401)
  assert.equal((await app.inject({ url: '/private', headers: { 'x-api-key': key } })).statusCode, 301)
  // Not in the document either.
  assert.deepStrictEqual(Object.keys((app.swagger() as { paths: Record<string, unknown> }).paths).filter((p) => p.startsWith('/app') || p.startsWith('/private')), [])
})

test('a router that ignores trailing slashes: no redirect (it would loop), the files still served', async (t) => {
  const { root } = site(t)
  for (const options of [{ routerOptions: { ignoreTrailingSlash: true } }, { ignoreTrailingSlash: true }]) {
    const app = Fastify(options)
    t.after(() => app.close())
    await app.register(spikard, { static: { mounts: [{ root, prefix: '/assets' }] } })
    for (const url of ['/assets', '/assets/']) assert.notEqual((await app.inject({ url })).statusCode, 301, `${JSON.stringify(options)} ${url}`)
    assert.equal((await app.inject({ url: '/assets/hello.txt' })).body, HELLO)
  }
})

test('precompressed siblings are looked for only in a root that holds a .br or .gz file at startup, at any depth', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'spikard-precompressed-'))
  t.after(() => rmSync(root, { recursive: true, force: true }))
  mkdirSync(join(root, 'a', 'b'), { recursive: true })
  writeFileSync(join(root, 'a', 'page.html'), '<p>hi</p>')
  assert.equal(await hasPrecompressed(root), false)
  writeFileSync(join(root, 'a', 'b', 'app.js.gz'), gzipSync('x'))
  assert.equal(await hasPrecompressed(root), true)
  // Without siblings at startup, a file added later is not looked for: the file itself is sent.
  const empty = mkdtempSync(join(tmpdir(), 'spikard-precompressed-'))
  t.after(() => rmSync(empty, { recursive: true, force: true }))
  writeFileSync(join(empty, 'app.js'), 'console.log(1)\n')
  const { app } = await setup(t, { compression: false, static: { mounts: [{ root: empty }] } })
  await app.ready()
  writeFileSync(join(empty, 'app.js.gz'), gzipSync('console.log(2)\n'))
  const res = await app.inject({ url: '/app.js', headers: { 'accept-encoding': 'gzip' } })
  assert.equal(res.headers['content-encoding'], undefined)
  assert.equal(res.body, 'console.log(1)\n')
})
