/**
 * The docs pages in a real browser (test/browser/harness.ts: Debian's Chromium, every
 * request outside the test server aborted and recorded): Swagger UI at /docs and Redoc at
 * /redoc render the app's operations from this server alone, and Swagger UI's Authorize
 * dialog and "Try it out" call a route protected by an API key, 401 without it, 200 with it.
 * Skipped, saying how to install it, where Chromium is missing (never under CI=true).
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { build, listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext, type OfflineContext } from './harness.js'

const skip = browserSkip()
const KEY = 'browser-test-key-0123456789'
/** Redoc 2.x renders this image in its sidebar, with no option to leave it out. */

/** What GET /secret answered, and the key each request carried. */
const secretCalls: Array<{ key: string | undefined, status: number }> = []

/** The app (an API key protects every route but the public /items/:id and the docs) and Chromium, closed when the file ends. */
async function setup (): Promise<{ origin: string, browser: Browser }> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, auth: { apiKey: { keys: [KEY] } } }, async (app) => {
    app.get('/secret', {
      onResponse: async (request, reply) => { secretCalls.push({ key: request.headers['x-api-key'] as string | undefined, status: reply.statusCode }) },
      schema: { summary: 'Read the secret', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } }
    }, async () => ({ ok: true }))
    app.get('/items/:id', {
      config: { auth: false },
      schema: { summary: 'Read one item', params: { type: 'object', properties: { id: { type: 'string' } } } }
    }, async (request) => ({ id: (request.params as { id: string }).id }))
  })
  after(() => app.close())
  const { url } = await listen(app)
  return { origin: url, browser: await launchBrowser() }
}

const { origin, browser } = skip === false ? await setup() : { origin: '', browser: undefined as unknown as Browser }

/** A fresh offline context (its own traffic record) with one page at `path`. */
async function open (path: string): Promise<{ page: Page, traffic: OfflineContext['traffic'] }> {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  const response = await page.goto(origin + path)
  assert.equal(response?.status(), 200, `GET ${path}`)
  return { page, traffic }
}

/** The text of every element `selector` matches, trimmed. */
async function texts (page: Page, selector: string): Promise<string[]> {
  return (await page.locator(selector).allInnerTexts()).map((text) => text.trim())
}

test('/docs: Swagger UI renders every operation of the app from this server alone', { skip, timeout: 60_000 }, async () => {
  const { page, traffic } = await open('/docs')
  await page.locator('.opblock-summary-path[data-path="/items/{id}"]').waitFor()

  assert.deepEqual((await texts(page, '.opblock-summary-path')).sort(), ['/items/{id}', '/livez', '/readyz', '/secret'])
  assert.deepEqual((await texts(page, '.opblock-summary-description')).filter((s) => s.startsWith('Read ')).sort(), ['Read one item', 'Read the secret'])
  assert.ok(await page.locator('.opblock-get .opblock-summary-path[data-path="/secret"]').isVisible())
  // The API key scheme is offered; no validator badge (it would send the document away).
  assert.ok(await page.locator('button.authorize').isVisible())
  assert.equal(await page.locator('.validator-badge, img[src*="validator"]').count(), 0)

  assert.deepEqual(traffic.blocked, [], 'requests outside 127.0.0.1')
  assert.deepEqual(traffic.offOrigin, [], 'requests outside 127.0.0.1, CSP-blocked ones included')
  assert.deepEqual(traffic.failed, [], 'failed requests')
  assert.deepEqual(traffic.consoleErrors, [], 'console errors')
  assert.deepEqual(traffic.pageErrors, [], 'uncaught errors')
})

test('/redoc: Redoc renders every operation of the app, and attempts nothing outside the server (not even its CDN logo)', { skip, timeout: 60_000 }, async () => {
  const { page, traffic } = await open('/redoc')
  await page.getByRole('heading', { name: 'Read one item' }).waitFor()

  for (const summary of ['Read the secret', 'Read one item']) {
    assert.ok(await page.getByRole('heading', { name: summary }).isVisible(), summary)
    assert.ok(await page.getByRole('menuitem', { name: summary }).count() > 0, `${summary} in the sidebar`)
  }
  // Each operation's endpoint: the method and the path.
  const endpoints = (await texts(page, '[data-section-id^="operation/"] button > span')).join(' ')
  for (const path of ['/secret', '/items/{id}', '/livez', '/readyz']) assert.ok(endpoints.includes(path), `${path} in ${endpoints}`)

  // Redoc's sidebar renders <img src="https://cdn.redoc.ly/redoc/logo-mini.svg">: spikard serves
  // the bundle with that URL removed, so nothing is even attempted (the CSP is the second guard).
  assert.equal(await page.locator('img[alt="redocly logo"]').count(), 0)
  assert.deepEqual(traffic.blocked, [], 'requests outside 127.0.0.1')
  assert.deepEqual(traffic.offOrigin, [], 'requests outside 127.0.0.1, CSP-blocked ones included')
  assert.deepEqual(traffic.failed, [], 'failed requests')
  assert.deepEqual(traffic.consoleErrors, [], 'console errors')
  assert.deepEqual(traffic.pageErrors, [], 'uncaught errors')
})

test('/docs: Try it out on a route needing an API key is a 401, then a 200 once authorized with the key', { skip, timeout: 60_000 }, async () => {
  const { page, traffic } = await open('/docs')
  const operation = page.locator('.opblock', { has: page.locator('.opblock-summary-path[data-path="/secret"]') })
  await operation.locator('.opblock-summary').click()
  await operation.locator('.try-out__btn').click()
  const status = operation.locator('.live-responses-table .response .response-col_status')
  const body = operation.locator('.live-responses-table .response .response-col_description pre')

  secretCalls.length = 0
  await operation.locator('button.execute').click()
  await status.waitFor()
  assert.equal((await status.innerText()).trim(), '401')
  assert.match(await body.first().innerText(), /"status": 401/)
  assert.deepEqual(secretCalls, [{ key: undefined, status: 401 }])

  // Authorize: the dialog lists the apiKey scheme (header x-api-key).
  await page.locator('.auth-wrapper button.authorize').click()
  const dialog = page.locator('.modal-ux')
  await dialog.waitFor()
  const scheme = dialog.locator('.auth-container', { hasText: 'x-api-key' })
  await scheme.locator('input').fill(KEY)
  await scheme.locator('button.authorize').click()
  // Swagger UI 5 shows the scheme as authorized, the value masked, and a Logout button.
  await scheme.locator('h6', { hasText: /^Authorized$/ }).waitFor()
  assert.equal((await scheme.locator('label[for="api_key_value"] + code').innerText()).trim(), '******')
  await scheme.getByRole('button', { name: 'Remove authorization' }).waitFor()
  await dialog.locator('button.btn-done').click()
  await dialog.waitFor({ state: 'detached' })

  await operation.locator('button.execute').click()
  // The table is replaced when the new response arrives.
  await page.waitForFunction(() => document.querySelector('.live-responses-table .response .response-col_status')?.textContent?.trim() === '200')
  assert.deepEqual(JSON.parse(await body.first().innerText()), { ok: true })
  assert.deepEqual(secretCalls, [{ key: undefined, status: 401 }, { key: KEY, status: 200 }])

  assert.deepEqual(traffic.blocked, [], 'requests outside 127.0.0.1')
  assert.deepEqual(traffic.offOrigin, [], 'requests outside 127.0.0.1, CSP-blocked ones included')
  assert.deepEqual(traffic.failed, [], 'failed requests')
  // Chromium logs every 4xx response of a fetch; the 401 is the only console error.
  assert.deepEqual(traffic.consoleErrors, ['Failed to load resource: the server responded with a status of 401 (Unauthorized)'], 'console errors')
  assert.deepEqual(traffic.pageErrors, [], 'uncaught errors')
})
