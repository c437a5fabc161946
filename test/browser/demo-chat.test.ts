/**
 * The demo's chat page (examples/public/chat.html, `npm start`) in Chromium, with every
 * request outside the server aborted (test/browser/harness.ts): two pages join a room, one
 * says something and both see the room echo it, as does a `ws` client in the same room;
 * nothing reached outside the server and no page logged an error. Skipped, saying how to
 * install it, where Chromium is missing (never under CI=true). The pages get a strict
 * Content-Security-Policy, which they must run under.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import WebSocket from 'ws'
import { loadConfig } from '../../src/config/load.js'
import { createServer } from '../../src/server.js'
import { listen, withTimeout } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext } from './harness.js'

const skip = browserSkip()
const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples')
const CSP = "default-src 'self'"

async function setup (): Promise<{ origin: string, browser: Browser }> {
  const { config } = loadConfig({ file: join(EXAMPLES, 'spikard.config.yaml'), env: { LOG_LEVEL: 'silent' } })
  const app = await createServer(config, { baseDir: EXAMPLES })
  after(() => app.close())
  // The static mount sends no Content-Security-Policy; a deployment may send a strict one, so
  // the pages here get it: nothing inline, no eval, nothing but this server (ws: included).
  app.addHook('onSend', async (_request, reply) => { if (!reply.hasHeader('content-security-policy')) reply.header('content-security-policy', CSP) })
  const { url } = await listen(app)
  return { origin: url, browser: await launchBrowser() }
}

const { origin, browser } = skip === false ? await setup() : { origin: '', browser: undefined as unknown as Browser }

/** Opens the chat page (at `?room=`) and joins as `name`, once the room's welcome is shown. */
async function joinAs (page: Page, room: string, name: string): Promise<void> {
  const response = await page.goto(`${origin}/chat.html?room=${room}`)
  assert.equal(response?.status(), 200)
  assert.equal(response?.headers()['content-security-policy'], CSP)
  assert.equal(await page.locator('#room').inputValue(), room)
  await page.locator('#name').fill(name)
  await page.getByRole('button', { name: 'Join' }).click()
  await page.locator('#status', { hasText: `connected to ${room}` }).waitFor()
  await page.locator('li.notice', { hasText: `You joined ${room} as ${name}.` }).waitFor()
  assert.equal(await page.locator('#say').isVisible(), true)
}

test('the chat page: two pages and a ws client in a room each see what one page says; nothing outside the server, nothing the CSP forbids', { skip, timeout: 60_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const ada = await newPage()
  await joinAs(ada, 'lobby', 'ada')
  const bob = await newPage()
  await joinAs(bob, 'lobby', 'bob')
  assert.equal(await bob.locator('li.notice').first().textContent(), 'You joined lobby as bob. Here: ada, bob')
  await ada.locator('li.notice', { hasText: 'bob joined' }).waitFor()

  // A ws client in the same room, as a server-side observer (no Origin: not a browser).
  const observer = new WebSocket(`${origin.replace('http', 'ws')}/chat/lobby`)
  after(() => { observer.terminate() })
  const heard: unknown[] = []
  observer.on('message', (data: Buffer) => heard.push(JSON.parse(String(data))))
  await withTimeout(new Promise((resolve, reject) => { observer.once('open', resolve); observer.once('error', reject) }), 5000, 'the observer\'s socket')
  observer.send(JSON.stringify({ type: 'join', name: 'observer' }))

  await ada.locator('li.notice', { hasText: 'observer joined' }).waitFor()
  await ada.locator('#text').fill('hello from <b>Chromium</b>')
  await ada.getByRole('button', { name: 'Send' }).click()
  // Echoed by the room to the sender, as text (not HTML), and to everyone else in it.
  for (const page of [ada, bob]) await page.locator('li.said', { hasText: 'ada: hello from <b>Chromium</b>' }).waitFor()
  assert.equal(await ada.locator('#text').inputValue(), '')
  assert.equal(await ada.locator('li.said b').count(), 0)
  await withTimeout((async () => { while (heard.length < 2) await new Promise((resolve) => setTimeout(resolve, 50)) })(), 5000, 'the observer hearing ada')
  assert.deepEqual(heard[0], { type: 'welcome', room: 'lobby', name: 'observer', members: ['ada', 'bob', 'observer'] })
  assert.deepEqual({ ...heard[1] as object, at: undefined }, { type: 'said', name: 'ada', text: 'hello from <b>Chromium</b>', at: undefined })

  // A name the room has: the page shows the refusal and lets its visitor pick another.
  const third = await newPage()
  await third.goto(`${origin}/chat.html?room=lobby`)
  await third.locator('#name').fill('ada')
  await third.getByRole('button', { name: 'Join' }).click()
  await third.locator('li.problem', { hasText: 'The name ada is taken in this room.' }).waitFor()
  assert.equal(await third.locator('#say').isVisible(), false)
  await third.locator('#name').fill('cy')
  await third.getByRole('button', { name: 'Join' }).click()
  await third.locator('li.notice', { hasText: 'You joined lobby as cy. Here: ada, bob, observer, cy' }).waitFor()

  // Leaving: the room tells the others, and the page goes back to its join form.
  await bob.getByRole('button', { name: 'Leave' }).click()
  await ada.locator('li.notice', { hasText: 'bob left' }).waitFor()
  await bob.locator('#join').waitFor()
  assert.equal(await bob.locator('#say').isVisible(), false)

  assert.deepEqual(traffic.blocked, [])
  assert.deepEqual(traffic.offOrigin, [])
  assert.deepEqual(traffic.failed, [])
  assert.deepEqual(traffic.pageErrors, [])
  assert.deepEqual(traffic.consoleErrors, [])
})

test('the demo page links to the chat', { skip, timeout: 60_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  await page.goto(origin + '/')
  await page.getByRole('link', { name: '/chat.html' }).click()
  await page.waitForURL(`${origin}/chat.html`)
  assert.equal(await page.title(), 'spikard demo: chat')
  assert.deepEqual(traffic.blocked, [])
  assert.deepEqual(traffic.pageErrors, [])
  assert.deepEqual(traffic.consoleErrors, [])
})

test('the demo\'s AsyncAPI viewer shows the chat\'s channel and every message', { skip, timeout: 60_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  assert.equal((await page.goto(origin + '/asyncapi'))?.status(), 200)
  await page.locator('#operation-send-sendChatByRoom').waitFor()
  const text = await page.locator('#asyncapi').innerText()
  assert.match(text, /spikard demo/)
  for (const line of ['RECEIVE /chat/{room}', 'SEND /chat/{room}', 'SEND /ticks']) assert.ok(text.includes(line), line)
  for (const id of ['join', 'say', 'leave', 'welcome', 'joined', 'said', 'left', 'refused', 'problem']) assert.ok(text.includes(`Message ID${id}\n`), `message ${id}`)
  assert.deepEqual(traffic.blocked, [])
  assert.deepEqual(traffic.offOrigin, [])
  assert.deepEqual(traffic.failed, [])
  assert.deepEqual(traffic.consoleErrors, [])
  assert.deepEqual(traffic.pageErrors, [])
})
