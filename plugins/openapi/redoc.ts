/**
 * The Redoc page. The `redoc` package ships a standalone bundle but no page: this is the
 * page, rendering `<prefix>/openapi.json` with the bundle served from `<prefix>/`.
 *
 * Redoc 2.x shows a "Redocly" logo from its CDN in the sidebar, with no option to turn it
 * off. The bundle is served with that URL removed (an image without a source loads nothing
 * and removes itself), and the page's Content-Security-Policy allows this server only, in
 * case a later Redoc names another.
 */
export const REDOC_LOGO = 'https://cdn.redoc.ly/redoc/logo-mini.svg'

export const REDOC_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  // styled-components injects <style> elements.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  // The search index runs in a worker built from a blob.
  "worker-src 'self' blob:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'self'"
].join('; ')

export function redocPage (prefix: string): string {
  const base = prefix.replace(/\/$/, '')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference</title>
</head>
<body>
<redoc spec-url="${base}/openapi.json"></redoc>
<script src="${base}/redoc.standalone.js"></script>
</body>
</html>
`
}
