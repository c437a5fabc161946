/**
 * A page from a static mount in a real browser (test/browser/harness.ts: Debian's
 * Chromium, every request outside the test server aborted and recorded): testing_data/
 * static/files/index.html loads its stylesheet and its content-hashed script from the
 * same mount (the script from its .br sibling, as Chromium accepts brotli), the script
 * runs and the style applies, and the page reaches for nothing outside 127.0.0.1; the spa
 * fallback serves the same page at a client-side route. Skipped, saying how to install it,
 * where Chromium is missing (never under CI=true).
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { Browser, Page, Response } from 'playwright-core'
import { build, listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext, type OfflineContext } from './harness.js'

const skip = browserSkip()
const ROOT = join(import.meta.dirname, '..', '..', 'testing_data', 'static', 'files')

async function setup (): Promise<{ origin: string, browser: Browser }> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, static: { mounts: [{ root: ROOT, immutable: true, spa: 'index.html' }] } })
  after(() => app.close())
  const { url } = await listen(app)
  return { origin: url, browser: await launchBrowser() }
}

const { origin, browser } = skip === false ? await setup() : { origin: '', browser: undefined as unknown as Browser }

/** A fresh offline context with one page at `path`, and every response the page got. */
async function open (path: string): Promise<{ page: Page, traffic: OfflineContext['traffic'], responses: Response[] }> {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  const responses: Response[] = []
  page.on('response', (response) => { responses.push(response) })
  const response = await page.goto(origin + path)
  assert.equal(response?.status(), 200, `GET ${path}`)
  await page.waitForLoadState('load')
  return { page, traffic, responses }
}

/** The page rendered from the mount alone: its script ran, its style applied, nothing outside the server was asked for. */
async function assertRendered (page: Page, traffic: OfflineContext['traffic'], responses: Response[]): Promise<void> {
  await page.locator('#status', { hasText: 'script ran from the mount' }).waitFor()
  assert.equal(await page.title(), 'spikard static page')
  assert.equal(await page.locator('h1').evaluate((h1) => getComputedStyle(h1).color), 'rgb(12, 34, 56)')

  const byPath = new Map(responses.map((r) => [new URL(r.url()).pathname, r]))
  const css = byPath.get('/style.css')
  assert.equal(css?.status(), 200)
  assert.equal((await css?.allHeaders())?.['content-type'], 'text/css; charset=utf-8')
  const js = byPath.get('/app.3f9a1c2b.js')
  assert.equal(js?.status(), 200)
  const jsHeaders = await js?.allHeaders()
  assert.equal(jsHeaders?.['content-encoding'], 'br', 'the precompressed sibling')
  assert.equal(jsHeaders?.['cache-control'], 'public, max-age=31536000, immutable')

  assert.deepStrictEqual(traffic.blocked, [])
  assert.deepStrictEqual(traffic.offOrigin, [])
  assert.deepStrictEqual(traffic.failed, [])
  assert.deepStrictEqual(traffic.pageErrors, [])
  assert.deepStrictEqual(traffic.consoleErrors, [])
  for (const response of responses) assert.equal(new URL(response.url()).origin, origin, response.url())
}

test('a page from a static mount loads its CSS and JS from the mount and nothing outside 127.0.0.1', { skip, timeout: 60_000 }, async () => {
  const { page, traffic, responses } = await open('/')
  await assertRendered(page, traffic, responses)
  assert.equal((await responses[0].allHeaders())['content-type'], 'text/html; charset=utf-8')
})

test('a client-side route is answered with the spa file, which renders the same way', { skip, timeout: 60_000 }, async () => {
  const { page, traffic, responses } = await open('/dashboard/settings')
  assert.equal(new URL(page.url()).pathname, '/dashboard/settings')
  await assertRendered(page, traffic, responses)
})
