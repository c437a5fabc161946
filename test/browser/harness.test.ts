/**
 * The browser harness itself: a page reaching outside the test server (a CDN script, an
 * image, a fetch to another host name of this machine, a WebSocket) has every such request
 * aborted and recorded, and its own origin served; a CSP-blocked image is told apart.
 */
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import type { Browser } from 'playwright-core'
import { listen } from '../helpers.js'
import { browserSkip, launchBrowser, offlineContext, until } from './harness.js'

const skip = browserSkip()

async function setup (): Promise<{ origin: string, port: number, browser: Browser }> {
  const app = Fastify()
  const page = `<!doctype html><html><head>
<script src="https://cdn.example.com/lib.js"></script>
<link rel="stylesheet" href="https://fonts.example.com/font.css">
</head><body>
<img src="http://10.1.2.3/pixel.png">
<script src="/local.js"></script>
</body></html>`
  let port = 0
  app.get('/', (_request, reply) => { reply.type('text/html').send(page) })
  app.get('/local.js', (_request, reply) => {
    reply.type('text/javascript').send(`
      document.body.dataset.local = 'ran'
      fetch('http://localhost:${port}/').catch(() => { document.body.dataset.fetch = 'failed' })
      const ws = new WebSocket('ws://ws.example.com/socket')
      ws.onclose = (event) => { document.body.dataset.ws = String(event.code) }
    `)
  })
  app.get('/csp', (_request, reply) => {
    reply.header('content-security-policy', "img-src 'self'").type('text/html').send('<!doctype html><img src="https://img.example.com/logo.svg">')
  })
  after(() => app.close())
  const listening = await listen(app)
  port = listening.port
  return { origin: listening.url, port, browser: await launchBrowser() }
}

const { origin, port, browser } = skip === false ? await setup() : { origin: '', port: 0, browser: undefined as unknown as Browser }

test('every request outside the test server is aborted and recorded; the server\'s own are served', { skip, timeout: 40_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  await page.goto(origin + '/')
  await page.waitForFunction(() => document.body.dataset.fetch === 'failed' && document.body.dataset.ws !== undefined)
  assert.equal(await page.evaluate(() => document.body.dataset.local), 'ran')
  // The harness closes a WebSocket to another host with 1008 (policy violation).
  assert.equal(await page.evaluate(() => document.body.dataset.ws), '1008')

  const expected = [
    'http://10.1.2.3/pixel.png',
    `http://localhost:${port}/`,
    'https://cdn.example.com/lib.js',
    'https://fonts.example.com/font.css',
    'ws://ws.example.com/socket'
  ]
  // Each blocked request's 'requestfailed' comes after the route aborted it, and the image's
  // after nothing the page waited for: wait for every failure, not only the routes.
  const started = expected.filter((url) => !url.startsWith('ws:')).length
  await until(() => traffic.blocked.length >= expected.length && traffic.offOrigin.length >= started && traffic.offOrigin.every((r) => r.failure !== undefined), 'the blocked requests and their failures')
  assert.deepEqual([...traffic.blocked].sort(), expected)
  // The WebSocket is no request event; the others were started, and failed as aborted.
  assert.deepEqual(traffic.offOrigin.map((r) => r.url).sort(), expected.filter((url) => !url.startsWith('ws:')))
  for (const r of traffic.offOrigin) assert.match(r.failure ?? '', /^net::ERR_BLOCKED_BY_CLIENT/, r.url)
  assert.deepEqual(traffic.pageErrors, [])
})

test('an image the page\'s CSP refuses is a started and failed request (`csp`), which never reaches the route', { skip, timeout: 40_000 }, async () => {
  const { newPage, traffic } = await offlineContext(browser, origin)
  const page = await newPage()
  await page.goto(origin + '/csp')
  await until(() => traffic.offOrigin.some((r) => r.failure !== undefined) && traffic.consoleErrors.length > 0, 'the CSP to block the image', 5000)
  assert.deepEqual(traffic.blocked, [])
  assert.deepEqual(traffic.offOrigin, [{ url: 'https://img.example.com/logo.svg', failure: 'csp' }])
  assert.equal(traffic.consoleErrors.length, 1)
  assert.match(traffic.consoleErrors[0], /img\.example\.com\/logo\.svg.*Content Security Policy/)
})
