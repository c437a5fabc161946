/**
 * Node's server timeouts as spikard sets them: a slow-header client gets its 408 within
 * headersTimeout and a small margin, also while the event loop is busy, and also when the
 * timeouts are applied to a server that is already listening (Node reads the checking
 * interval once, when the server starts listening).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import { applyServerTimeouts, serverTimeouts } from '../../plugins/timeout/server-timeouts.js'
import { resolveTimeoutOptions } from '../../plugins/timeout/options.js'
import { build, listen, withTimeout } from '../helpers.js'

/** Node's field, missing from @types/node 20. */
const interval = (server: http.Server): unknown => (server as http.Server & { connectionsCheckingInterval?: number }).connectionsCheckingInterval

/** Keeps the event loop busy: `ms` of CPU work per turn, until stopped. */
function busyLoop (ms: number): () => void {
  let running = true
  const turn = (): void => {
    const end = performance.now() + ms
    while (performance.now() < end) { /* CPU-bound work */ }
    if (running) setImmediate(turn)
  }
  setImmediate(turn)
  return () => { running = false }
}

/** A client that sends its request line, then a header line every 300 ms; resolves with what it got and when. */
function slowHeaders (port: number): Promise<{ ms: number, received: string }> {
  return new Promise((resolve) => {
    const begin = performance.now()
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    let n = 0
    const timer = setInterval(() => { if (socket.writable) socket.write(`x-slow-${n++}: 1\r\n`) }, 300)
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n')
    socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
    socket.on('error', () => {})
    socket.on('close', () => { clearInterval(timer); resolve({ ms: performance.now() - begin, received }) })
    // A bound for the test, not for the server.
    setTimeout(() => socket.destroy(), 10_000).unref()
  })
}

test('serverTimeouts: the checking interval is a tenth of the shortest timeout, 25 ms to 30 s', () => {
  const of = (o: Record<string, unknown>): number => serverTimeouts(resolveTimeoutOptions(o)).connectionsCheckingInterval
  assert.equal(of({}), 1000)
  assert.equal(of({ headers: '1s', request: '2s' }), 100)
  assert.equal(of({ headers: 100, request: 100 }), 25)
  assert.equal(of({ headers: 0, request: 0 }), 30_000)
})

test('applyServerTimeouts on a server already listening: its connection check restarts with the new interval', async (t) => {
  const server = http.createServer((_req, res) => res.end('ok'))
  t.after(() => { server.closeAllConnections(); server.close() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  // Node started its check at 'listening', every 30 s (its default).
  applyServerTimeouts(server, serverTimeouts(resolveTimeoutOptions({ headers: '1s', request: '2s' })))
  assert.deepStrictEqual([server.headersTimeout, server.requestTimeout, interval(server)], [1000, 2000, 100])
  const stop = busyLoop(5)
  try {
    const { ms, received } = await slowHeaders((server.address() as AddressInfo).port)
    assert.match(received, /^HTTP\/1\.1 408 /)
    assert.ok(ms >= 950 && ms < 1600, `408 after ${Math.round(ms)} ms`)
  } finally {
    stop()
  }
})

test('spikard: a slow-header client gets its 408 problem within timeout.headers and a small margin, with a busy event loop', async (t) => {
  const { app } = await build({ timeout: { headers: '1s', request: '2s' }, server: { logger: { level: 'silent' } } })
  t.after(() => app.close())
  const { port } = await listen(app)
  assert.deepStrictEqual([app.server.headersTimeout, interval(app.server)], [1000, 100])
  const stop = busyLoop(5)
  try {
    const results = await withTimeout(Promise.all([1, 2, 3].map(() => slowHeaders(port))), 8000, 'the slow clients')
    for (const { ms, received } of results) {
      assert.match(received, /^HTTP\/1\.1 408 Request Timeout\r\n/)
      assert.match(received, /\r\nContent-Type: application\/problem\+json\r\n/)
      assert.ok(ms >= 950 && ms < 1600, `408 after ${Math.round(ms)} ms`)
    }
  } finally {
    stop()
  }
})
