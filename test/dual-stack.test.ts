/**
 * Listening on `localhost` (Fastify's default host), Fastify binds each address it resolves
 * to, 127.0.0.1 and ::1 on most systems, on a server of its own, and forwards only the
 * 'upgrade' event of the second one to `app.server`. What spikard sets up on the server
 * (src/fastify-internals.ts, mirrorServerSetup) must hold on both: the same raw request to
 * 127.0.0.1 and to ::1 gets the same answer.
 */
import { before, after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import dns from 'node:dns'
import net, { type AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import spikard from '../src/spikard.js'
import { build } from './helpers.js'

const ipv6 = await new Promise<boolean>((resolve) => {
  net.createServer().once('error', () => resolve(false)).listen(0, '::1', function (this: net.Server) { this.close(() => resolve(true)) })
})
const NO_IPV6 = ipv6 ? false : 'no IPv6 loopback (::1) on this machine: nothing listens there'

/**
 * `app.listen({ host: 'localhost', port: 0 })`, localhost resolving to 127.0.0.1 and ::1 as
 * on most systems (here it may resolve to one of them only); the port both are on.
 */
async function listenOnLocalhost (app: FastifyInstance): Promise<number> {
  const lookup = dns.lookup
  ;(dns as { lookup: unknown }).lookup = (host: string, options: unknown, callback: (...args: unknown[]) => void) => {
    if (host === 'localhost' && (options as { all?: boolean } | undefined)?.all === true) return callback(null, [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }])
    return Reflect.apply(lookup, dns, [host, options, callback])
  }
  try {
    await app.listen({ host: 'localhost', port: 0 })
  } finally {
    (dns as { lookup: unknown }).lookup = lookup
  }
  const { port } = app.server.address() as AddressInfo
  assert.deepStrictEqual(app.addresses().map((a) => typeof a === 'string' ? a : `${a.address} ${a.port}`).sort(), [`127.0.0.1 ${port}`, `::1 ${port}`])
  return port
}

/**
 * Writes `data` on a fresh connection to host:port; what came back until the server closed
 * it, or `[open]` after `ms`. A bound, not a speed check: each case's server closes the
 * connection well within it, and a loaded machine must not make one side `[open]`.
 */
function exchange (host: string, port: number, data: string, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    let received = ''
    const socket = net.connect({ host, port }, () => socket.write(data, 'latin1'))
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('error', () => {})
    const timer = setTimeout(() => { socket.destroy(); resolve(`${received}[open]`) }, ms)
    socket.on('close', () => { clearTimeout(timer); resolve(received) })
  })
}

const UUIDS = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g
/** The same request to 127.0.0.1 and to ::1: both answers (request ids and dates blanked). */
async function both (port: number, data: string, ms?: number): Promise<{ v4: string, v6: string }> {
  const blank = (text: string): string => text.replace(UUIDS, '<id>').replace(/\r\ndate: [^\r]*/i, '')
  const [v4, v6] = await Promise.all([exchange('127.0.0.1', port, data, ms), exchange('::1', port, data, ms)])
  return { v4: blank(v4), v6: blank(v6) }
}

describe('listening on localhost, ::1 answers as 127.0.0.1 does (createServer)', { skip: NO_IPV6 }, () => {
  let app: FastifyInstance
  let port: number
  before(async () => {
    ({ app } = await build({ server: { logger: { level: 'silent' } } }, async (routes) => {
      routes.get('/hello', async () => ({ hello: 'world' }))
      routes.post('/echo', async (request) => request.body)
    }))
    port = await listenOnLocalhost(app)
  })
  after(() => app.close())

  it('an HTTP/1.1 request without Host: a 400 problem, not Node\'s bare 400', async () => {
    const { v4, v6 } = await both(port, 'GET /hello HTTP/1.1\r\n\r\n')
    assert.match(v4, /^HTTP\/1\.1 400 Bad Request\r\n[^]*content-type: application\/problem\+json[^]*"detail":"An HTTP\/1\.1 request must have a Host header"/)
    assert.equal(v6, v4)
  })

  it('an Expect other than 100-continue: a 417 problem, not Node\'s bare 417', async () => {
    const { v4, v6 } = await both(port, 'GET /hello HTTP/1.1\r\nHost: x\r\nExpect: something\r\n\r\n')
    assert.match(v4, /^HTTP\/1\.1 417 Expectation Failed\r\n[^]*content-type: application\/problem\+json/)
    assert.equal(v6, v4)
  })

  it('a request Node cannot parse, headers too large: 400 and 431 problems (the clientErrorHandler)', async () => {
    for (const [request, status] of [['GET /hello HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n', 400], [`GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431]] as const) {
      const { v4, v6 } = await both(port, request)
      assert.match(v4, new RegExp(`^HTTP/1\\.1 ${status} [^]*Content-Type: application/problem\\+json`))
      assert.equal(v6, v4)
    }
  })

  it('CONNECT: a 501 problem, not a connection closed unanswered', async () => {
    const { v4, v6 } = await both(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
    assert.match(v4, /^HTTP\/1\.1 501 Not Implemented\r\n[^]*Content-Type: application\/problem\+json/)
    assert.equal(v6, v4)
  })

  it('Expect: 100-continue: no go-ahead for a body over the limit (a 413 problem only), one for a body within it', async () => {
    const over = await both(port, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n')
    assert.match(over.v4, /^HTTP\/1\.1 413 Content Too Large\r\n/)
    assert.equal(over.v6, over.v4)
    const within = await both(port, 'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n{}')
    assert.match(within.v4, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n[^]*\r\n\r\n\{\}$/)
    assert.equal(within.v6, within.v4)
  })
})

describe('listening on localhost, ::1 has the server timeouts of 127.0.0.1 (spikard registered on an instance of your own)', { skip: NO_IPV6 }, () => {
  let app: FastifyInstance
  let port: number
  before(async () => {
    // Fastify's own server timeouts (no headers timeout within a minute, checked every 30 s,
    // 72 s keep-alive); the plugin sets these on app.server after Fastify created it.
    app = Fastify()
    await app.register(spikard, { timeout: { headers: '300ms', request: '1s', keepAlive: '1s' } })
    app.get('/hello', async () => ({ hello: 'world' }))
    port = await listenOnLocalhost(app)
  })
  after(() => app.close())

  it('an idle keep-alive connection is closed after timeout.keepAlive, and its responses say so', async () => {
    // Closed about 1 s after keepAlive on Node 24 (its keepAliveTimeoutBuffer), so at ~2 s:
    // 6 s is far from Fastify's default 72 s and from the 1 s margin a loaded host had.
    const { v4, v6 } = await both(port, 'GET /hello HTTP/1.1\r\nHost: x\r\n\r\n', 6000)
    assert.match(v4, /^HTTP\/1\.1 200 OK\r\n[^]*Keep-Alive: timeout=1\r\n[^]*\{"hello":"world"\}$/)
    assert.equal(v6, v4)
  })

  it('headers still arriving after timeout.headers: a 408, checked often enough to send it within seconds (Node checks every 30 s)', async () => {
    // The 408 comes at ~330 ms (300 ms, checked every 30 ms); 3 s leaves a loaded host room, far from 30 s.
    const { v4, v6 } = await both(port, 'GET /hello HTTP/1.1\r\nHost: x\r\n', 3000)
    assert.match(v4, /^HTTP\/1\.1 408 Request Timeout\r\n/)
    assert.equal(v6, v4)
  })
})
