/**
 * The viewer page: @asyncapi/react-component's standalone bundle (React, the component and
 * the AsyncAPI parser in one file) and its default styles, served from the package, and a
 * small script of ours that renders the document. The page and its scripts come from this
 * server only: its Content-Security-Policy allows nothing else (the bundle's schema URLs,
 * asyncapi.com's, are identifiers it never fetches), and it has no inline script.
 */
import { createRequire } from 'node:module'
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { serve, send, type Served } from '../openapi/served.js'
import type { Encoding } from '../compression/negotiate.js'

export const VIEWER_CSP = [
  "default-src 'none'",
  // 'unsafe-eval': the bundle's AsyncAPI parser validates with Ajv, which compiles its
  // validators with `new Function` (as the bundle loads). Scripts still come from here only.
  "script-src 'self' 'unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'"
].join('; ')

const require = createRequire(import.meta.url)
const BUNDLE = '@asyncapi/react-component/browser/standalone/index.js'
const STYLES = '@asyncapi/react-component/styles/default.min.css'

function page (base: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>AsyncAPI</title>
<link rel="stylesheet" href="${base}/default.min.css">
</head>
<body>
<div id="asyncapi" data-document="${base}/asyncapi.json"></div>
<script src="${base}/asyncapi.standalone.js"></script>
<script src="${base}/viewer.js"></script>
</body>
</html>
`
}

/** Renders the document the page names: fetched by the component itself, from this server. */
const SCRIPT = `(function () {
  var element = document.getElementById('asyncapi')
  AsyncApiStandalone.render({
    schema: { url: element.dataset.document, requestOptions: { credentials: 'same-origin' } },
    config: { show: { sidebar: true, errors: true }, sidebar: { showOperations: 'byDefault' } }
  }, element)
})()
`

/** The paths of viewerRoutes under `prefix`: the page, with and without the slash, and its files. */
export function viewerPaths (prefix: string): string[] {
  const base = prefix.replace(/\/$/, '')
  return [base === '' ? '/' : base, `${base}/`, ...['/asyncapi.standalone.js', '/default.min.css', '/viewer.js', '/asyncapi.json'].map((file) => base + file)]
}

/** The viewer under `prefix`: its page, the bundle, the styles, its script and the document (`served.json`, filled in when the app is ready; `current()` brings it up to date). */
export function viewerRoutes (prefix: string, served: { json?: Served }, encodings: readonly Encoding[], current: () => Promise<void> | undefined) {
  const base = prefix.replace(/\/$/, '')
  return async function asyncapiViewer (child: FastifyInstance): Promise<void> {
    const files = new Map<string, Promise<Served>>()
    /** Each file read and compressed once, on its first request. */
    const file = (name: string, load: () => Promise<string>, type: string) => {
      let served = files.get(name)
      if (served === undefined) files.set(name, served = load().then((text) => serve(text, type, encodings)))
      return served
    }
    child.get('/', async (request, reply) => {
      reply.header('content-security-policy', VIEWER_CSP)
      return send(request, reply, await file('page', async () => page(base), 'text/html; charset=utf-8'))
    })
    child.get('/asyncapi.standalone.js', async (request, reply) =>
      send(request, reply, await file('bundle', () => readFile(require.resolve(BUNDLE), 'utf8'), 'text/javascript; charset=utf-8')))
    child.get('/default.min.css', async (request, reply) =>
      send(request, reply, await file('styles', () => readFile(require.resolve(STYLES), 'utf8'), 'text/css; charset=utf-8')))
    child.get('/viewer.js', async (request, reply) =>
      send(request, reply, await file('script', async () => SCRIPT, 'text/javascript; charset=utf-8')))
    child.get('/asyncapi.json', async (request, reply) => {
      await current()
      return send(request, reply, served.json as Served)
    })
  }
}
