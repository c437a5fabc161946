/**
 * The browser tests' harness: Debian's Chromium (/usr/bin/chromium, `apt-get install
 * chromium`) driven by playwright-core, never a downloaded browser, with the network cut
 * off: a context lets through requests to the app under test (http://127.0.0.1:<port>) and
 * aborts every other one, recording it, so a test asserts that a page reached for nothing
 * outside the server. Chromium's resolver fails every host name too, in case a request
 * escaped the route.
 *
 * Without the binary the browser tests are skipped (`browserSkip()`), except under CI=true,
 * where they run and fail: CI installs chromium, so a missing one is a broken CI.
 *
 * The browser and every context are closed by `scope.after` (node:test's `after` for the
 * file by default), within bounded time; every wait has a timeout.
 */
import { accessSync, constants } from 'node:fs'
import { after } from 'node:test'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { withTimeout } from '../helpers.js'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const INSTALL = 'install it (apt-get install chromium) or set CHROMIUM_PATH=/path/to/chromium'

/**
 * Each step's bound: launching, a navigation, a wait for an element, closing. A bound, not
 * a speed check: with three test files running on two cores (`npm test`), loading the
 * AsyncAPI viewer once took more than 10 s.
 */
export const TIMEOUT = 20_000

interface Scope { after: (fn: () => Promise<void>) => void }

/** False when the browser tests can run (or must: CI=true); else why they are skipped. */
export function browserSkip (env: NodeJS.ProcessEnv = process.env): string | false {
  if (['true', '1'].includes(env.CI ?? '')) return false
  try {
    accessSync(CHROMIUM, constants.X_OK)
    return false
  } catch (error) {
    return `Chromium cannot be run (${(error as Error).message}): ${INSTALL}`
  }
}

/** Launches Chromium (headless; no sandbox, since the tests may run as root); closed by `scope.after`. */
export async function launchBrowser (scope: Scope = { after }): Promise<Browser> {
  let browser: Browser
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 2 * TIMEOUT,
      // No host name resolves: a request the route below missed fails as well.
      args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']
    })
  } catch (error) {
    throw new Error(`cannot launch ${CHROMIUM}: ${(error as Error).message.split('\n')[0]}; ${INSTALL}`)
  }
  scope.after(async () => { await withTimeout(browser.close(), TIMEOUT, 'closing Chromium') })
  return browser
}

/** What the pages of an offline context did. */
export interface Traffic {
  /** Requests (and WebSockets) to anything but the app's origin: each reached the route and was aborted. Empty when the pages behaved. */
  blocked: string[]
  /**
   * Every request the pages started to anything but the app's origin, with why it failed.
   * A superset of `blocked`: Chromium reports a request its Content-Security-Policy stopped
   * (failure `csp`) as started and failed, although it never reaches the network (nor the route).
   */
  offOrigin: Array<{ url: string, failure: string | undefined }>
  /** Every failed request, of the app's origin too (`net::ERR_...`, `csp`). */
  failed: Array<{ url: string, failure: string | undefined }>
  /** Console messages of type error (CSP violations are logged there). */
  consoleErrors: string[]
  /** Uncaught errors thrown in the pages. */
  pageErrors: string[]
}

export interface OfflineContext { context: BrowserContext, traffic: Traffic, newPage: () => Promise<Page> }

/**
 * A context that reaches `origin` (`http://127.0.0.1:<port>`) and nothing else: every other
 * request is aborted and recorded in `traffic.blocked`. Closed by `scope.after`.
 *
 * To change what a page gets (a header), do it in the server (a hook), not with
 * `route.fulfill`: Chromium then refuses the page's WebSocket to 127.0.0.1
 * (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
 */
export async function offlineContext (browser: Browser, origin: string, scope: Scope = { after }): Promise<OfflineContext> {
  const allowed = new URL(origin)
  if (allowed.hostname !== '127.0.0.1' || allowed.port === '') throw new Error(`offlineContext: ${origin} is not http://127.0.0.1:<port>`)
  const sameOrigin = (url: URL): boolean => (url.protocol === 'http:' || url.protocol === 'ws:') && url.host === allowed.host
  // data: and blob: URLs are not requests to any host.
  const local = (url: URL): boolean => url.protocol === 'data:' || url.protocol === 'blob:' || sameOrigin(url)

  // A service worker's fetches would bypass the route.
  const context = await browser.newContext({ serviceWorkers: 'block' })
  scope.after(async () => { await withTimeout(context.close(), TIMEOUT, 'closing the browser context') })
  context.setDefaultTimeout(TIMEOUT)
  context.setDefaultNavigationTimeout(TIMEOUT)

  const traffic: Traffic = { blocked: [], offOrigin: [], failed: [], consoleErrors: [], pageErrors: [] }
  await context.route('**/*', async (route) => {
    const url = route.request().url()
    if (sameOrigin(new URL(url))) return await route.fallback()
    traffic.blocked.push(url)
    await route.abort('blockedbyclient')
  })
  await context.routeWebSocket((url) => !sameOrigin(url), (ws) => {
    traffic.blocked.push(ws.url())
    void ws.close({ code: 1008, reason: 'offline test' })
  })
  context.on('request', (request) => {
    if (!local(new URL(request.url()))) traffic.offOrigin.push({ url: request.url(), failure: undefined })
  })
  context.on('requestfailed', (request) => {
    const failure = request.failure()?.errorText
    traffic.failed.push({ url: request.url(), failure })
    const entry = traffic.offOrigin.find((r) => r.url === request.url() && r.failure === undefined)
    if (entry !== undefined) entry.failure = failure
  })
  context.on('console', (message) => { if (message.type() === 'error') traffic.consoleErrors.push(message.text()) })
  context.on('weberror', (error) => { traffic.pageErrors.push(String(error.error())) })

  return { context, traffic, newPage: () => context.newPage() }
}

/** Resolves once `condition()` holds, polling every 50 ms; rejects after `ms` naming `what`. */
export async function until (condition: () => boolean, what: string, ms = TIMEOUT): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
