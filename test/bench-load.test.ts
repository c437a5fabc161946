/**
 * The benchmark's load (bench/lib/load.ts): its response count divides every server's CPU
 * time, and while it runs the harness must poll rather than sleep (a sleeping client is
 * woken by each response, and the server is charged for the wake-up), then stop polling.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { runLoad, SPIN } from '../bench/lib/load.js'

const immediatePending = (): boolean => process.getActiveResourcesInfo().includes('Immediate')

test('counts the responses the server sent, polls while loading, and stops polling after', async () => {
  let served = 0
  let sawPolling = 0
  const server = http.createServer((_req, res) => {
    served++
    if (immediatePending()) sawPolling++
    res.setHeader('content-type', 'application/json')
    res.end('{"ok":true}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = server.address() as AddressInfo
    const result = await runLoad({ port, path: '/', connections: 2, duration: 0.5 })
    assert.ok(result.responses > 100, `only ${result.responses} responses`)
    assert.equal(result.ok, result.responses)
    assert.equal(result.errors, 0)
    // autocannon stops with at most one request per connection unanswered.
    assert.ok(served - result.responses >= 0 && served - result.responses <= 2, `served ${served}, counted ${result.responses}`)
    assert.ok(result.p50Ms > 0 && result.p99Ms >= result.p50Ms)
    // The handler runs in the poll phase: an immediate is queued then on every request
    // but the last in flight, which may be answered after the load has ended.
    if (SPIN) assert.ok(served - sawPolling <= 2, `polling during ${sawPolling} of ${served} requests`)
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(immediatePending(), false, 'the harness still polls after the load')
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

test('stops polling when the load cannot start', async () => {
  await assert.rejects(runLoad({ port: 1, path: '/', connections: 0, duration: 0.2 }), /connections/)
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(immediatePending(), false, 'the harness still polls after the load')
})
