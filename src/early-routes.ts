/**
 * Routes registered before spikard: hooks that spikard adds to each route as Fastify
 * registers it (`onRoute`) never reach them, so a feature that protects every route
 * refuses to start rather than leave them out silently.
 */
import type { FastifyInstance, RouteOptions } from 'fastify'
import { SpikardConfigError } from './errors.js'

/** A route entry as `printRoutes()` lists it: `├── users/ (GET, HEAD) {"version":"1.0.0"}`. */
const ROUTE_LINE = /^([│ ]*)(?:[├└]── )?(.*?) \(([A-Z][A-Z-]*(?:, [A-Z][A-Z-]*)*)\)(?: \{.*\})?$/

/**
 * The routes Fastify's router holds that spikard never saw: registered before
 * `app.register(spikard)` finished, typically `app.register(spikard)` without `await`
 * followed by `app.get(...)`. Detected by counting: the router's entries (from
 * `printRoutes()`, where every route and method is one entry whatever its path looks like)
 * against the routes spikard's `onRoute` saw. A route under a prefix declared as `/` is
 * entered twice by Fastify (`/api` and `/api/`) and seen once, so each such route is assumed
 * to have its twin: a miscount can only hide an early route, never invent one. The names in
 * the message are the best effort of matching paths; the count is what decides.
 */
export function routesRegisteredBefore (app: FastifyInstance, seen: RouteOptions[]): { count: number, names: string[] } {
  const tree = app.printRoutes()
  let inRouter = 0
  const paths: string[] = []
  const entries: Array<{ method: string, path: string }> = []
  for (const line of tree.split('\n')) {
    const branch = line.search(/[├└]── /)
    const depth = branch === -1 ? -1 : branch / 4
    const label = branch === -1 ? undefined : line.slice(branch + 4).replace(/ \([A-Z][A-Z, -]*\)(?: \{.*\})?$/, '')
    if (label !== undefined) paths[depth] = (depth > 0 ? paths[depth - 1] : '') + label
    const match = ROUTE_LINE.exec(line)
    if (match === null) continue
    const methods = match[3].split(', ')
    inRouter += methods.length
    // A line without a branch is another handler of the node above it (other constraints).
    const path = (label !== undefined ? paths[depth] : paths[match[1].length / 4 - 1]) ?? ''
    for (const method of methods) entries.push({ method, path })
  }
  let accounted = 0
  const known = new Set<string>()
  for (const route of seen) {
    const methods = [route.method].flat()
    accounted += methods.length
    // What Fastify passes to onRoute holds more than RouteOptions declares.
    const { routePath, prefix } = route as { routePath?: string, prefix?: string }
    const twin = routePath === '' && prefix !== undefined && prefix.length > 0 &&
      (route.prefixTrailingSlash === undefined || route.prefixTrailingSlash === 'both')
    if (twin) accounted += methods.filter((m) => m !== 'HEAD').length
    for (const method of methods) known.add(`${method} ${shape(route.url ?? '')}`)
  }
  const count = Math.max(0, inRouter - accounted)
  if (count === 0) return { count, names: [] }
  const names = entries.map(({ method, path }) => `${method} ${path}`)
    .filter((name) => !known.has(`${name.slice(0, name.indexOf(' '))} ${shape(name.slice(name.indexOf(' ') + 1))}`))
  // HEAD routes Fastify adds for each GET are left out of the list.
  const gets = new Set(names.filter((n) => n.startsWith('GET ')).map((n) => n.slice(4)))
  return { count, names: [...new Set(names.filter((n) => !(n.startsWith('HEAD ') && gets.has(n.slice(5)))))] }
}

/** A path reduced to what printRoutes and onRoute agree on: no parameter names, no trailing slash, lower case. */
function shape (path: string): string {
  return path.replace(/:[^/(.|-]*(?:\|:[^/(.|-]*)*/g, ':').replace(/\/+$/, '').toLowerCase()
}

/**
 * Refuses startup when the router holds routes spikard never saw, which a feature that
 * hooks each route (auth, rate limiting) would silently leave out. `consequence` says what
 * such a route would be, `optOut` how a route that wants that says so.
 */
export function refuseEarlyRoutes (app: FastifyInstance, feature: string, consequence: string, optOut: string): void {
  const { count, names } = routesRegisteredBefore(app, app.spikard.routes)
  if (count === 0) return
  const what = names.length > 0
    ? `${names.length === 1 ? 'a route was' : 'routes were'} registered before spikard and ${consequence}: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}`
    : `${count} route entr${count === 1 ? 'y was' : 'ies were'} registered before spikard and ${consequence}`
  throw new SpikardConfigError([
    `${feature}: ${what}. ` +
    `Register spikard first, with await (\`await app.register(spikard, options)\`), then the routes; ${optOut}.`
  ])
}
