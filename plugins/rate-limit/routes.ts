/**
 * Putting limits on routes. Fastify gives each route its hooks when it is registered
 * (`onRoute`), fixes them at `ready()`, and keeps the not-found handler apart from routes.
 * So the limit is attached as a route hook to each route spikard knows of, the not-found
 * handler's context is given the global limit once Fastify has built it, and routes
 * registered before spikard, which nothing can reach any more, refuse startup.
 */
import type { FastifyInstance, RouteOptions } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { append, type OnRequest, type PreParsing } from '../../src/route-hooks.js'


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

export function refuseEarlyRoutes (app: FastifyInstance, seen: RouteOptions[]): void {
  const { count, names } = routesRegisteredBefore(app, seen)
  if (count === 0) return
  const what = names.length > 0
    ? `${names.length === 1 ? 'a route was' : 'routes were'} registered before spikard and would not be rate limited: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', ...' : ''}`
    : `${count} route entr${count === 1 ? 'y was' : 'ies were'} registered before spikard and would not be rate limited`
  throw new SpikardConfigError([
    `rateLimit: ${what}. ` +
    'Register spikard first, with await (`await app.register(spikard, options)`), then the routes; ' +
    'a route that must not be limited says so with `config: { rateLimit: false }`.'
  ])
}

/** Description of the symbol under which Fastify keeps an instance's not-found context (lib/symbols.js). */
const NOT_FOUND_CONTEXT = 'fastify.404ContextKey'

function findSymbol (object: object, description: string): symbol | undefined {
  for (let o: object | null = object; o !== null; o = Object.getPrototypeOf(o)) {
    const found = Object.getOwnPropertySymbols(o).find((s) => s.description === description)
    if (found !== undefined) return found
  }
  return undefined
}

type Hooked = Record<'onRequest' | 'preParsing', unknown[] | null>

/**
 * Gives the not-found handlers (spikard's, and any a prefixed plugin set of its own) the
 * global limit, so unknown paths are limited like any route: a scanner or a flood of
 * random URLs is a client like any other. Fastify builds a not-found context's hooks from
 * its instance's global hooks only, when the app becomes ready; a global hook would also
 * run on every route, `rateLimit: false` ones included. So the limit goes into the
 * contexts themselves in an onReady hook, after Fastify has built them. The context is
 * Fastify's private state, found by symbol description like the timeout feature's timer;
 * if a Fastify release renames it, `fallback` is registered instead (a global hook that
 * only acts on not-found requests) and a warning says so.
 */
export function limitNotFound (
  app: FastifyInstance,
  hook: 'onRequest' | 'preParsing',
  handler: OnRequest | PreParsing,
  fallback: () => void,
  description = NOT_FOUND_CONTEXT
): void {
  const symbol = findSymbol(app, description)
  if (symbol === undefined) {
    app.log.warn('spikard-rate-limit: cannot find Fastify\'s not-found context; not-found requests are limited through a global hook instead')
    return fallback()
  }
  const instances: FastifyInstance[] = [app]
  app.addHook('onRegister', (instance) => { instances.push(instance) })
  app.addHook('onReady', function limitUnknownPaths (done) {
    const contexts = new Set<Hooked>()
    for (const instance of instances) {
      const context = (instance as unknown as Record<symbol, Hooked | null | undefined>)[symbol]
      if (context !== null && context !== undefined) contexts.add(context)
    }
    for (const context of contexts) context[hook] = append(context[hook] ?? undefined, handler)
    done()
  })
}
