/**
 * Request context: off by default (no hook, no async hooks switched on); on, the request's
 * id and logger are reachable from anywhere in its async context, request by request.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyPluginAsync } from 'fastify'
import { requestContext } from '../../src/index.js'
import type { CreateServerConfig } from '../../src/server.js'
import { assertOptionsRefused, build, listen, type TestApp } from '../helpers.js'

/**
 * Requests held until the test lets them go, by the delay they were sent with: the test
 * decides in which order concurrent requests finish, whatever order they arrived in.
 */
const held = new Map<number, () => void>()
let allHeld: () => void = () => {}

/** A service function the handler calls: it knows nothing of the request but the context. */
async function chargeCard (delayMs: number): Promise<string | null> {
  await sleep(delayMs)
  await new Promise<void>((resolve) => { held.set(delayMs, resolve); if (held.size === 20) allHeld() })
  requestContext.get('log')?.info('charging card')
  await Promise.resolve()
  return requestContext.get('requestId') ?? null
}

const routes: FastifyPluginAsync = async (app) => {
  app.get('/where', async (request) => ({ id: request.id, fromContext: requestContext.get('requestId') ?? null }))
  app.post('/charge', {
    schema: { body: { type: 'object', required: ['delayMs'], properties: { delayMs: { type: 'integer', minimum: 0, maximum: 50 } } } }
  }, async (request) => {
    const { delayMs } = request.body as { delayMs: number }
    return { id: request.id, fromContext: await chargeCard(delayMs) }
  })
  app.post('/late', async (request) => {
    await sleep(1)
    return { id: request.id, fromContext: requestContext.get('requestId') ?? null }
  })
}

async function setup (t: TestContext, config: CreateServerConfig): Promise<TestApp> {
  const built = await build({ server: { logger: { level: 'info' } }, ...config }, routes)
  t.after(() => built.app.close())
  return built
}

test('off by default: nothing in the context, and no hook on the routes', async (t) => {
  const { app } = await setup(t, { requestId: true })
  const res = await app.inject({ url: '/where', headers: { 'x-request-id': 'trace-off' } })
  assert.deepStrictEqual(res.json(), { id: 'trace-off', fromContext: null })
  assert.doesNotMatch(app.printRoutes({ includeHooks: true }), /requestContext/)
  assert.equal(app.hasDecorator('requestContext'), false)
})

test('on: each request\'s id and logger reach a service function over a real socket, after the body, timers and awaits', async (t) => {
  const { app, logs } = await setup(t, { requestContext: true, requestId: true })
  const { url } = await listen(app)
  // Concurrent requests finishing in another order than they started: none sees another's context.
  const ids = Array.from({ length: 20 }, (_, i) => `trace-${i}`)
  held.clear()
  const arrived = new Promise<void>((resolve) => { allHeld = resolve })
  // Once all 20 are in their handlers, released last-sent first, one macrotask apart.
  void arrived.then(async () => {
    for (let i = ids.length - 1; i >= 0; i--) {
      held.get((20 - i) * 2)?.()
      await sleep(1)
    }
  })
  const bodies = await Promise.all(ids.map(async (id, i) => {
    const res = await fetch(`${url}/charge`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ delayMs: (20 - i) * 2 })
    })
    assert.equal(res.status, 200)
    return await res.json()
  }))
  assert.deepStrictEqual(bodies, ids.map((id) => ({ id, fromContext: id })))
  const charged = logs.filter((l) => l.msg === 'charging card')
  assert.deepStrictEqual(charged.map((l) => l.reqId).sort(), [...ids].sort())
  // Finished in the reverse order of sending, each with its own context.
  assert.deepStrictEqual(charged.map((l) => l.reqId), [...ids].reverse())
})

test('on: a body that arrives after the headers, in another packet, is handled in its request\'s context', async (t) => {
  const { app } = await setup(t, { requestContext: true, requestId: true })
  const { port } = await listen(app)
  // The body is read from the socket after the request's first hooks have returned.
  const body = JSON.stringify({ late: true })
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/late', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-request-id': 'trace-late-body' } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).on('end', () => resolve(text))
    })
    req.on('error', reject)
    req.flushHeaders()
    setTimeout(() => { req.end(body) }, 50)
  })
  assert.deepStrictEqual(JSON.parse(answer), { id: 'trace-late-body', fromContext: 'trace-late-body' })
})

test('on, without requestId: the context carries Fastify\'s own id', async (t) => {
  const { app } = await setup(t, { requestContext: true, requestId: false })
  const res = await app.inject({ url: '/where' })
  const { id, fromContext } = res.json()
  assert.match(id, /^req-/)
  assert.equal(fromContext, id)
})

test('invalid options fail at createServer and at ready(), naming the key path', async () => {
  await assertOptionsRefused('requestContext', { hook: 'onRequest' }, ['requestContext.hook: unknown key'])
  await assertOptionsRefused('requestContext', 'on', ['requestContext: expected true, false or an options object, found "on"'])
})
