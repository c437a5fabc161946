/** The route table `spikard check` prints: every route with its effective per-route settings. */
import type { FastifyInstance, RouteOptions } from 'fastify'
import { routeAuthLabel } from '../../plugins/auth/route.js'
import { describeRouteLimit } from '../../plugins/rate-limit/describe.js'
import { handlerTimeoutOf } from '../../plugins/timeout/index.js'

type Column = [title: string, value: (route: RouteOptions, app: FastifyInstance) => string]

/** One column per per-route setting; each feature that adds a route option adds a column here. */
const columns: Column[] = [
  ['METHOD', (r) => [r.method].flat().join(',')],
  ['PATH', (r) => r.url ?? ''],
  ['AUTH', (r, app) => routeAuthLabel(r, app.spikard.options.auth)],
  ['RATE LIMIT', (r, app) => describeRouteLimit(r.config?.rateLimit, app.spikard.options.rateLimit)],
  ['BODY LIMIT', (r, app) => formatBytes(r.bodyLimit ?? app.initialConfig.bodyLimit ?? 0)],
  ['TIMEOUT', (r, app) => {
    const ms = handlerTimeoutOf(r) ?? r.handlerTimeout ?? (app.initialConfig as { handlerTimeout?: number }).handlerTimeout ?? 0
    return ms > 0 ? `${ms}ms` : 'off'
  }],
  ['COMPRESSION', (r, app) => app.spikard.options.compression === false || (r as { compress?: unknown }).compress === false ? 'off' : 'on'],
  ['ACCESS LOG', (r, app) => app.spikard.options.logging === false || r.config?.logging === false ? 'off' : 'on']
]

export function formatBytes (bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}mb`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}kb`
  return `${bytes}b`
}

export function routeTable (app: FastifyInstance): string {
  const routes = app.spikard.routes
  // Leave out the HEAD routes Fastify adds for every GET; keep HEAD routes declared alone.
  const gets = new Set(routes.filter((r) => [r.method].flat().includes('GET')).map((r) => r.url))
  const shown = routes.filter((r) => !(r.method === 'HEAD' && gets.has(r.url)))
  const rows = [columns.map(([title]) => title), ...shown.map((r) => columns.map(([, value]) => value(r, app)))]
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)))
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}
