/**
 * The demo `npm start` runs (examples/spikard.config.yaml, examples/app.ts), built the way
 * the CLI builds it (its routes module loaded by spikard's loader): it streams ndjson,
 * serves an event stream and the static page that subscribes to it, and documents itself.
 * test/browser/demo.test.ts watches the page in Chromium.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { loadConfig } from '../src/config/load.js'
import { createServer } from '../src/server.js'
import { listen } from './helpers.js'

const EXAMPLES = join(import.meta.dirname, '..', 'examples')

test('the demo: ndjson export, the /ticks event stream, its page, and its OpenAPI document', async (t) => {
  const { config } = loadConfig({ file: join(EXAMPLES, 'spikard.config.yaml'), env: { LOG_LEVEL: 'silent' } })
  const app = await createServer(config, { baseDir: EXAMPLES })
  t.after(() => app.close())
  const { url } = await listen(app)

  // ndjson() from a routes module loaded by spikard's loader (its own instance of spikard's modules).
  const exported = await fetch(`${url}/export?count=3`)
  assert.equal(exported.headers.get('content-type'), 'application/x-ndjson')
  assert.deepStrictEqual((await exported.text()).split('\n'), [
    '{"n":1,"name":"item 1","price":1.5}', '{"n":2,"name":"item 2","price":3}', '{"n":3,"name":"item 3","price":4.5}', ''
  ])

  const ac = new AbortController()
  t.after(() => ac.abort())
  // Any client gets the stream (fetch sends Accept: */*, as curl does).
  const ticks = await fetch(`${url}/ticks`, { signal: ac.signal })
  assert.equal(ticks.status, 200)
  assert.equal(ticks.headers.get('content-type'), 'text/event-stream')
  const reader = (ticks.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value)
  assert.match(text, /^id: 1\nevent: tick\ndata: \{"n":1,"at":"[^"]+"\}\n\n/)
  ac.abort()

  const page = await fetch(`${url}/`)
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8')
  assert.match(await page.text(), /<script src="\/app\.js"><\/script>/)

  const document = await (await fetch(`${url}/openapi.json`)).json() as { info: { title: string }, paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> }
  assert.equal(document.info.title, 'spikard demo')
  assert.ok(document.paths['/ticks'].get.responses['200'].content?.['text/event-stream'] !== undefined, 'the event stream documented as text/event-stream')
  assert.ok(document.paths['/export'] !== undefined)
})
