/**
 * A route of yours at a path one of the docs features serves (the documents, a UI's page,
 * its files). Fastify refuses the second GET at a path with its duplicate-route error,
 * which names neither the option nor the feature, and blames the route that came second:
 * spikard's when yours was registered first, yours when it was registered after (a config
 * file's `app` is). Refused here instead, naming the option, as the health probes do.
 */
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'

/** A path a feature's own GET route takes, and the option that puts it there (`openapi.json`). */
export interface OwnPath { path: string, option: string }

function taken (option: string, path: string, other: string): string {
  return `${option}: ${path} is a route of spikard's, and ${other} is registered there too; move that route, or set ${option} to another path (or false)`
}

/**
 * Where the feature serves each path: spikard registered in a prefixed plugin serves them
 * under its prefix, and the router and onRoute know routes by their whole URL.
 */
function served (app: FastifyInstance, owned: OwnPath[]): OwnPath[] {
  return owned.map(({ path, option }) => ({ path: app.prefix + path, option }))
}

/** Routes registered before spikard: checked before the feature adds its own. */
export function refuseTakenPaths (app: FastifyInstance, owned: OwnPath[]): void {
  const problems = served(app, owned).filter(({ path }) => app.hasRoute({ method: 'GET', url: path }))
    .map(({ path, option }) => taken(option, path, `your route GET ${path} (registered before spikard)`))
  if (problems.length > 0) throw new SpikardConfigError(problems)
}

/** Routes registered later: an onRoute hook, added once the feature's own routes are in (it would refuse them too). */
export function refuseLaterRoutes (app: FastifyInstance, owned: OwnPath[]): void {
  const options = new Map(served(app, owned).map(({ path, option }) => [path, option]))
  app.addHook('onRoute', (route) => {
    const option = options.get(route.url ?? '')
    const methods = [route.method].flat()
    // Only GET and HEAD clash (the feature's GET routes have their HEAD ones), and only
    // where the feature's route is (`/redoc/` is one only without ignoreTrailingSlash).
    if (option === undefined || !methods.some((m) => m === 'GET' || m === 'HEAD') || !app.hasRoute({ method: 'GET', url: route.url as string })) return
    throw new SpikardConfigError([taken(option, route.url as string, `your route ${methods.join(',')} ${route.url as string}`)])
  })
}
