/**
 * Server-Sent Events in a real browser (test/browser/harness.ts: Debian's Chromium, every
 * request outside the test server aborted and recorded): a page's EventSource gets named
 * events, ids and multi-line data as sent, reconnects as `retry` says with the
 * `Last-Event-ID` of the last event it saw, and gets the final event at shutdown.
 * Skipped, saying how to install it, where Chromium is missing (never under CI=true).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Browser, Page } from 'playwright-core'
import type { FastifyPluginAsync } from 'fastify'
import type { CreateServerConfig } from '../../src/server.js'
import { build, listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext, TIMEOUT, type Traffic } from './harness.js'

const skip = browserSkip()

/** A page that subscribes to /events and keeps what it receives in `window.received`. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>events</title></head>
<body><ul id="events"></ul>
<script>
  window.received = []
  window.errors = 0
  const source = new EventSource('/events')
  const keep = (event) => {
    window.received.push({ type: event.type, data: event.data, lastEventId: event.lastEventId })
    const li = document.createElement('li')
    li.textContent = event.type + ': ' + event.data
    document.getElementById('events').append(li)
  }
  for (const name of ['message', 'tick', 'shutdown']) source.addEventListener(name, keep)
  source.addEventListener('error', () => { window.errors++ })
</script></body></html>`

interface Received { type: string, data: string, lastEventId: string }

/** One Chromium for the file, closed when it ends. */
const browser: Browser | undefined = skip === false ? await launchBrowser() : undefined

async function open (t: TestContext, config: CreateServerConfig, routes: FastifyPluginAsync): Promise<{ page: Page, traffic: Traffic, close: () => Promise<void> }> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, ...config }, async (app) => {
    app.get('/', async (_request, reply) => await reply.type('text/html; charset=utf-8').send(PAGE))
    await routes(app, {})
  })
  t.after(() => app.close())
  const { url } = await listen(app)
  const { newPage, traffic } = await offlineContext(browser as Browser, url)
  const page = await newPage()
  const response = await page.goto(`${url}/`)
  assert.equal(response?.status(), 200)
  return { page, traffic, close: async () => { await app.close() } }
}

async function received (page: Page): Promise<Received[]> {
  return await page.evaluate(() => (window as unknown as { received: Received[] }).received)
}

/** What the page received, once it holds at least `count` events; rejects after `ms` with what it has. */
async function waitForEvents (page: Page, count: number, ms = TIMEOUT): Promise<Received[]> {
  const deadline = Date.now() + ms
  for (;;) {
    const events = await received(page)
    if (events.length >= count) return events
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${count} events in the page; got ${JSON.stringify(events)}`)
    await sleep(50)
  }
}

test('Chromium\'s EventSource: named events, ids, multi-line and JSON data; reconnects as retry says, sending Last-Event-ID', { skip, timeout: 60_000 }, async (t) => {
  const lastEventIds: Array<string | undefined> = []
  const { page, traffic } = await open(t, {}, async (app) => {
    app.get('/events', { sse: true }, async (request, reply) => {
      const last = request.headers['last-event-id'] as string | undefined
      lastEventIds.push(last)
      if (last === undefined) {
        await reply.sse.send({ id: '1', event: 'tick', data: { n: 1 } })
        await reply.sse.send({ id: '2', data: 'two\nlines', retry: 100 })
        // A data string trying to start an event of its own.
        await reply.sse.send({ data: 'x\r\revent: tick\ndata: injected' })
        return
      }
      await reply.sse.send({ id: String(Number(last) + 1), event: 'tick', data: `resumed after ${last}` })
      reply.sse.keepAlive()
    })
  })
  const got = await waitForEvents(page, 4)
  assert.deepEqual(got.slice(0, 4), [
    { type: 'tick', data: '{"n":1}', lastEventId: '1' },
    { type: 'message', data: 'two\nlines', lastEventId: '2' },
    { type: 'message', data: 'x\n\nevent: tick\ndata: injected', lastEventId: '2' },
    { type: 'tick', data: 'resumed after 2', lastEventId: '3' }
  ])
  assert.deepEqual(lastEventIds.slice(0, 2), [undefined, '2'])
  assert.deepEqual(await page.locator('#events li').allTextContents(), ['tick: {"n":1}', 'message: two\nlines', 'message: x\n\nevent: tick\ndata: injected', 'tick: resumed after 2'])
  assert.deepEqual(traffic.blocked, [])
  assert.deepEqual(traffic.pageErrors, [])
})

test('Chromium\'s EventSource gets the final event at shutdown, and keep-alive comments are not events', { skip, timeout: 60_000 }, async (t) => {
  const { page, traffic, close } = await open(t, { sse: { keepAlive: '1s', shutdownEvent: { retry: 60_000 } } }, async (app) => {
    app.get('/events', { sse: true }, async (_request, reply) => {
      reply.sse.keepAlive()
      await reply.sse.send({ event: 'tick', data: 'open' })
    })
  })
  await waitForEvents(page, 1)
  // Two keep-alive comments go by without an event.
  await sleep(2200)
  assert.deepEqual(await received(page), [{ type: 'tick', data: 'open', lastEventId: '' }])
  await close()
  assert.deepEqual(await waitForEvents(page, 2, 5000), [
    { type: 'tick', data: 'open', lastEventId: '' },
    { type: 'shutdown', data: 'server shutting down', lastEventId: '' }
  ])
  assert.deepEqual(traffic.blocked, [])
})
