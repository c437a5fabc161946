/**
 * The WebSocket bench's budget line (bench/lib/ws-bench.ts): spikard's echo messages/s
 * against bare @fastify/websocket's, paired by repetition, invalid samples left out, and
 * "not measured" (never PASS) while the spikard server is missing.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { wsBudget, wsRatio, type WsBenchResult, type WsSample } from '../bench/lib/ws-bench.js'

const sample = (rep: number, messagesPerS: number, invalid?: string): WsSample => ({
  rep, messagesPerS, p50Ms: 0.5, p99Ms: 5, cpuUsPerMessage: 10, errorFrames: 0, otherCpu: 0, ...(invalid === undefined ? {} : { invalid })
})

const result = (samples: WsBenchResult['samples'], skipped: WsBenchResult['skipped'] = {}): WsBenchResult =>
  ({ clients: 10_000, echoSockets: 50, echoSeconds: 3, samples, skipped })

test('wsRatio: the median of the per-repetition ratios, invalid and unpaired samples left out', () => {
  const r = result({
    'ws-bare': [sample(1, 1000), sample(2, 2000), sample(3, 1000, 'error frames'), sample(4, 1000)],
    'spikard-ws': [sample(1, 900), sample(2, 1400), sample(3, 1000), sample(4, 850), sample(5, 10)]
  })
  // Repetitions 1, 2 and 4 pair up: 0.9, 0.7, 0.85.
  assert.equal(wsRatio(r), 0.85)
  assert.deepEqual(wsBudget(r).pass, true)
  assert.match(wsBudget(r).text, /85%/)
  const slow = result({ 'ws-bare': [sample(1, 1000)], 'spikard-ws': [sample(1, 700)] })
  assert.equal(wsBudget(slow).pass, false)
})

test('wsBudget: not measured (neither PASS nor FAIL) without a spikard server, saying why', () => {
  const r = result({ 'ws-bare': [sample(1, 1000)] }, { 'spikard-ws': 'bench/servers/spikard-ws.ts is not written yet' })
  const line = wsBudget(r)
  assert.equal(line.pass, undefined)
  assert.match(line.text, /not measured \(bench\/servers\/spikard-ws\.ts is not written yet\)/)
})
