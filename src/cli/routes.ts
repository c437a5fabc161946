/**
 * The route table `spikard check` prints: every route with its effective per-route
 * settings. METHOD and PATH are the table's own; every other column comes from a feature's
 * definition (`features[name].columns`), in registration order, so a feature that adds a
 * route option adds its column there and nothing here changes.
 */
import type { RouteOptions } from 'fastify'
import { features, type FeatureName, type ResolvedSpikardOptions } from '../options.js'
import type { RouteColumn } from '../feature.js'

type Column = [title: string, value: (route: RouteOptions) => string]

export function routeColumns (options: ResolvedSpikardOptions): Column[] {
  const columns: Column[] = [
    ['METHOD', (r) => [r.method].flat().join(',')],
    ['PATH', (r) => r.url ?? '']
  ]
  for (const name of Object.keys(features) as FeatureName[]) {
    const own = (features[name] as { columns?: Array<RouteColumn<unknown>> }).columns ?? []
    for (const { title, value } of own) columns.push([title, (r) => value(r, options[name])])
  }
  return columns
}

/** `routes` as declared (app.spikard.routes), `options` as resolved (app.spikard.options). */
export function routeTable (routes: RouteOptions[], options: ResolvedSpikardOptions): string {
  // Leave out the HEAD routes Fastify adds for every GET (a prefix's `/` route is both
  // `/prefix` and `/prefix/`); keep HEAD routes declared alone.
  const bare = (url: string | undefined) => url?.replace(/(.)\/$/, '$1')
  const gets = new Set(routes.filter((r) => [r.method].flat().includes('GET')).map((r) => bare(r.url)))
  const shown = routes.filter((r) => !(r.method === 'HEAD' && gets.has(bare(r.url))))
  const columns = routeColumns(options)
  return formatTable([columns.map(([title]) => title), ...shown.map((r) => columns.map(([, value]) => value(r)))])
}

/** Rows of cells as aligned columns, two spaces apart, no trailing spaces. */
export function formatTable (rows: string[][]): string {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd()).join('\n')
}
