/**
 * The demo (`npm start`: examples/spikard.config.yaml and examples/app.ts) in a real
 * browser, with every request outside the server aborted (test/browser/harness.ts): its
 * page, served from the static mount, subscribes to the /ticks event stream and lists the
 * ticks as they arrive. Skipped, saying how to install it, where Chromium is missing
 * (never under CI=true).
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { loadConfig } from '../../src/config/load.js'
import { createServer } from '../../src/server.js'
import { listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext } from './harness.js'

const skip = browserSkip()
const EXAMPLES = join(import.meta.dirname, '..', '..', 'examples')

async function setup (): Promise<{ origin: string, browser: Browser }> {
  const { config } = loadConfig({ file: join(EXAMPLES, 'spikard.config.yaml'), env: { LOG_LEVEL: 'silent' } })
  const app = await createServer(config, { baseDir: EXAMPLES })
  after(() => app.close())
  const { url } = await listen(app)
  return { origin: url, browser: await launchBrowser() }
}

const { origin, browser } = skip === false ? await setup() : { origin: '', browser: undefined as unknown as Browser }

test('the demo page subscribes to /ticks and lists the ticks as they arrive, reaching for nothing outside the server', { skip, timeout: 60_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  const response = await page.goto(origin + '/')
  assert.equal(response?.status(), 200)
  await page.locator('#status', { hasText: 'connected' }).waitFor()
  // A tick a second: at least two (a third may have come by the time they are read), newest first.
  // The second comes ~2 s after connecting: waited for within the context's 20 s, not 5 s.
  await page.locator('li.tick').nth(1).waitFor()
  const ticks = await page.locator('li.tick').allTextContents()
  assert.ok(ticks.length >= 2, JSON.stringify(ticks))
  for (const [i, text] of ticks.entries()) assert.match(text, new RegExp(`^tick ${ticks.length - i} at \\d{4}-\\d\\d-\\d\\dT`))
  assert.deepStrictEqual(traffic.blocked, [])
  assert.deepStrictEqual(traffic.offOrigin, [])
  assert.deepStrictEqual(traffic.pageErrors, [])
  assert.deepStrictEqual(traffic.consoleErrors, [])
})
