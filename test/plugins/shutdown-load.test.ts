/**
 * Shutdown under steady load loses nothing: 8 keep-alive clients send requests back to back
 * while the server shuts down (SIGTERM to `spikard start`, or `app.close()` in process). Every
 * request gets a complete 200, or a 503 shutting-down problem with `Connection: close`, or its
 * connection is refused once the listener has closed; nothing is reset or cut short.
 *
 * The clients behave as a client told "retry on another instance" would with only this
 * instance to go to: after a 503 they wait 250 ms, then try again; a refused connection
 * ends them.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyPluginAsync } from 'fastify'
import { build, listen, withTimeout } from '../helpers.js'
import { exited, get, PAD, SHUTTING_DOWN, startCli, type Response } from '../fixtures/shutdown-child.js'

const CLIENTS = 8
/** How long a client waits after a 503 before it tries again. */
const BACKOFF_MS = 250

type Outcome =
  | { id: string, kind: 'ok', close: boolean }
  | { id: string, kind: 'shutting-down' }
  | { id: string, kind: 'refused' }
  | { id: string, kind: 'failed' | 'invalid', detail: string }

/** One GET /work, classified: a complete valid 200 or 503 problem, a refused connection, a failure, or an invalid answer. */
async function work (port: number, id: string, agent: http.Agent): Promise<Outcome> {
  let res: Response
  try {
    res = await get(port, '/work', { agent, headers: { 'x-request-id': id } })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return code === 'ECONNREFUSED' ? { id, kind: 'refused' } : { id, kind: 'failed', detail: `${code ?? ''} ${(error as Error).message}` }
  }
  const length = Number(res.headers['content-length'])
  if (length !== Buffer.byteLength(res.body)) return { id, kind: 'invalid', detail: `content-length ${length}, body ${Buffer.byteLength(res.body)} bytes` }
  if (res.status === 200 && res.body === JSON.stringify({ id, pad: PAD })) return { id, kind: 'ok', close: res.headers.connection === 'close' }
  if (res.status === 503 && res.headers.connection === 'close' && /^application\/problem\+json/.test(String(res.headers['content-type'])) &&
    res.body === JSON.stringify({ ...SHUTTING_DOWN, instance: '/work', requestId: id })) return { id, kind: 'shutting-down' }
  return { id, kind: 'invalid', detail: `${res.status} ${JSON.stringify(res.headers)} ${res.body.slice(0, 200)}` }
}

interface Load { outcomes: Outcome[], sentBefore: () => number, stop: () => Promise<void> }

/** CLIENTS keep-alive clients looping on GET /work until refused. */
function load (port: number): Load {
  const outcomes: Outcome[] = []
  const state = { stopped: false }
  const clients = Array.from({ length: CLIENTS }, async (_, c) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (let i = 0; !state.stopped; i++) {
        const outcome = await work(port, `c${c}-${i}`, agent)
        outcomes.push(outcome)
        if (outcome.kind === 'refused') break // the listener has closed: nothing more to learn
        if (outcome.kind === 'shutting-down') await sleep(BACKOFF_MS)
      }
    } finally {
      agent.destroy()
    }
  })
  return {
    outcomes,
    sentBefore: () => outcomes.length,
    // Each client ends at its first refused connection; the stop is for a test that failed.
    stop: async () => {
      try {
        await withTimeout(Promise.all(clients), 5000, 'every client to be refused')
      } finally {
        state.stopped = true
      }
    }
  }
}

/** Counts each kind of outcome, and asserts that none failed and every accepted request was answered. */
function assertNothingLost (t: TestContext, outcomes: Outcome[], accepted: Set<string>, sent: number, preCloseDelay: number): void {
  const count = (kind: Outcome['kind']): number => outcomes.filter((o) => o.kind === kind).length
  const closing = outcomes.filter((o) => o.kind === 'ok' && o.close).length
  t.diagnostic(`before shutdown ${sent}; ok ${count('ok')} (with Connection: close ${closing}); 503 ${count('shutting-down')}; ` +
    `refused ${count('refused')}; failed ${count('failed')}; invalid ${count('invalid')}; accepted by the server ${accepted.size}`)

  assert.deepStrictEqual(outcomes.filter((o) => o.kind === 'invalid'), [], 'every response is complete and valid')
  assert.deepStrictEqual(outcomes.filter((o) => o.kind === 'failed'), [], 'no request failed (no reset, no hang-up)')
  const answered = new Set(outcomes.filter((o) => o.kind === 'ok' || o.kind === 'shutting-down').map((o) => o.id))
  assert.deepStrictEqual([...accepted].filter((id) => !answered.has(id)), [], 'every accepted request was answered')
  assert.deepStrictEqual([...answered].filter((id) => !accepted.has(id)), [], 'the server saw every request it answered')
  assert.ok(sent > 20, `a steady stream before the shutdown: ${sent}`)
  assert.ok(count('ok') >= sent, 'every request before the shutdown was served')
  assert.ok(count('shutting-down') >= 1, 'requests that came once the server was closing got a 503 problem')
  assert.ok(count('refused') >= 1, 'clients saw the listener close')
  if (preCloseDelay > 0) assert.ok(closing >= CLIENTS, 'the pre-close delay served, every response with Connection: close')
}

describe('load through SIGTERM: 8 keep-alive clients, `spikard start` in a child process', { concurrency: 1 }, () => {
  for (const preCloseDelay of [0, 300]) {
    it(`preCloseDelay ${preCloseDelay}: no request fails other than refused connections and 503 problems; exit 0`, async (t) => {
      const server = await startCli(t, { requestId: true, shutdown: { preCloseDelay, timeout: '5s' } })
      const run = load(server.port)
      await sleep(500)
      const sent = run.sentBefore()
      server.child.kill('SIGTERM')
      const exit = await exited(server)
      await run.stop()
      assert.deepStrictEqual(exit, { code: 0, signal: null }, server.stderr())
      const accepted = new Set(server.lines().filter((l) => l.msg === 'accepted').map((l) => l.accepted as string))
      assertNothingLost(t, run.outcomes, accepted, sent, preCloseDelay)
    })
  }
})

const routes: FastifyPluginAsync = async (app) => {
  app.get('/work', async (request) => {
    await sleep(Math.random() * 10)
    return { id: request.id, pad: PAD }
  })
}

describe('load through app.close(): 8 keep-alive clients, in process', { concurrency: 1 }, () => {
  for (const preCloseDelay of [0, 300]) {
    it(`preCloseDelay ${preCloseDelay}: no request fails other than refused connections and 503 problems`, async (t) => {
      const { app, logs } = await build({ requestId: true, server: { logger: { level: 'warn' } }, shutdown: { preCloseDelay, timeout: '5s', signals: false } }, routes)
      t.after(() => app.close())
      const accepted = new Set<string>()
      app.server.on('request', (req: http.IncomingMessage) => { accepted.add(String(req.headers['x-request-id'])) })
      const { port } = await listen(app)
      const run = load(port)
      await sleep(500)
      const sent = run.sentBefore()
      await withTimeout(app.close(), 5000, 'close')
      await run.stop()
      assert.deepStrictEqual(logs.filter((l) => l.level >= 50), [], 'no error logged (the budget was not overrun)')
      assertNothingLost(t, run.outcomes, accepted, sent, preCloseDelay)
    })
  }
})
