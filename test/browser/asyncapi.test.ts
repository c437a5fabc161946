/**
 * The AsyncAPI viewer in a real browser (test/browser/harness.ts: Debian's Chromium, every
 * request outside the test server aborted and recorded): /asyncapi renders the document of
 * an app with a WebSocket chat and an event stream, its channels, operations and messages,
 * from this server alone, with no console or page error. Skipped, saying how to install it,
 * where Chromium is missing (never under CI=true).
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser } from 'playwright-core'
import { build, listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext } from './harness.js'
import { websocketRoutes } from '../plugins/asyncapi-helpers.js'

const skip = browserSkip()

async function setup (): Promise<{ origin: string, browser: Browser }> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, asyncapi: { info: { title: 'Chat service', version: '2.1.0' } } }, async (app) => {
    await websocketRoutes(app)
    app.get('/ticks', { sse: true, schema: { summary: 'The clock', sse: { events: { tick: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } } } }, async () => {})
  })
  after(() => app.close())
  const { url } = await listen(app)
  return { origin: url, browser: await launchBrowser() }
}

const { origin, browser } = skip === false ? await setup() : { origin: '', browser: undefined as unknown as Browser }

test('/asyncapi: the viewer renders the channels, operations and messages of the app from this server alone', { skip, timeout: 60_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  const response = await page.goto(origin + '/asyncapi')
  assert.equal(response?.status(), 200)
  assert.match(response?.headers()['content-security-policy'] ?? '', /default-src 'none'/)
  await page.locator('#operation-send-sendTicks').waitFor()

  const text = await page.locator('#asyncapi').innerText()
  assert.match(text, /Chat service\s+2\.1\.0\s/)
  // Each operation, from the server's side, with its channel's address and its messages' ids.
  const operations = await page.locator('[id^="operation-"]').evaluateAll((elements) => elements.map((e) => e.id))
  assert.deepEqual(operations.filter((id) => /^operation-(send|receive)-[A-Za-z]+$/.test(id)).sort(), [
    'operation-receive-receiveChatByRoom', 'operation-receive-receiveEcho',
    'operation-send-sendChatByRoom', 'operation-send-sendEcho', 'operation-send-sendTicks'
  ])
  for (const line of ['RECEIVE /chat/{room}', 'SEND /chat/{room}', 'RECEIVE /echo', 'SEND /echo', 'SEND /ticks']) assert.ok(text.includes(line), line)
  for (const id of ['join', 'say', 'joined', 'said', 'problem', 'echo.received', 'binary', 'echo.sent', 'tick']) assert.ok(text.includes(`Message ID${id}\n`), `message ${id}`)
  // The servers: where the app listens, ws and http.
  const { host } = new URL(origin)
  assert.ok(text.includes(`ws://${host}/`) && text.includes(`http://${host}/`), 'the servers')

  assert.deepEqual(traffic.blocked, [], 'requests outside 127.0.0.1')
  assert.deepEqual(traffic.offOrigin, [], 'requests outside 127.0.0.1, CSP-blocked ones included')
  assert.deepEqual(traffic.failed, [], 'failed requests')
  assert.deepEqual(traffic.consoleErrors, [], 'console errors')
  assert.deepEqual(traffic.pageErrors, [], 'uncaught errors')
})
