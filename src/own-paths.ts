/**
 * A route of yours at a path a feature of spikard's serves (the health probes, the docs
 * features' documents, pages and files). Fastify refuses the second GET at a path with its
 * duplicate-route error, which names neither the option nor the feature, and blames the
 * route that came second: spikard's when yours was registered first, yours when it was
 * registered after (a config file's `app` is). Refused here instead, naming the option.
 */
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from './errors.js'

/** A path a feature's own GET route takes, the option that puts it there (`openapi.json`), and what it is. */
export interface OwnPath { path: string, option: string, what?: string }

/**
 * Which of your routes clash: `get` those of GET and HEAD (the feature's GET routes have
 * their HEAD ones) where the feature's route is; `any` a route of any method at the path
 * (a probe's path is the probe's alone).
 */
export type Clash = 'get' | 'any'

function taken ({ path, option, what = 'a route of spikard\'s' }: OwnPath, other: string): string {
  return `${option}: ${path} is ${what}, and ${other} is registered there too; move that route, or set ${option} to another path (or false)`
}

/**
 * Where the feature serves each path: spikard registered in a prefixed plugin serves them
 * under its prefix, and the router and onRoute know routes by their whole URL.
 */
function served (app: FastifyInstance, owned: OwnPath[]): OwnPath[] {
  return owned.map((own) => ({ ...own, path: app.prefix + own.path }))
}

/** Routes registered before spikard: checked before the feature adds its own. */
export function refuseTakenPaths (app: FastifyInstance, owned: OwnPath[], clash: Clash = 'get'): void {
  const methods = clash === 'get' ? ['GET'] : app.supportedMethods
  // One problem per path, naming the first method there (a GET's HEAD twin would be a second).
  const problems = served(app, owned).flatMap((own) => {
    const method = methods.find((m) => app.hasRoute({ method: m, url: own.path }))
    return method === undefined ? [] : [taken(own, `your route ${method} ${own.path} (registered before spikard)`)]
  })
  if (problems.length > 0) throw new SpikardConfigError(problems)
}

/** Routes registered later: an onRoute hook, added once the feature's own routes are in (it would refuse them too). */
export function refuseLaterRoutes (app: FastifyInstance, owned: OwnPath[], clash: Clash = 'get'): void {
  const byPath = new Map(served(app, owned).map((own) => [own.path, own]))
  app.addHook('onRoute', (route) => {
    const own = byPath.get(route.url ?? '')
    const methods = [route.method].flat()
    if (own === undefined) return
    // Only GET and HEAD clash, and only where the feature's route is (`/redoc/` is one only
    // without ignoreTrailingSlash).
    if (clash === 'get' && (!methods.some((m) => m === 'GET' || m === 'HEAD') || !app.hasRoute({ method: 'GET', url: own.path }))) return
    throw new SpikardConfigError([taken(own, `your route ${methods.join(',')} ${own.path}`)])
  })
}
