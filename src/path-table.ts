/**
 * Which paths a set of routes answers, for which methods, matched as the app's router
 * matches them (its trailing-slash, duplicate-slash and case options). For answers given
 * where the request's own route is not the one that matters: a 405's `Allow` (no route of
 * the request's method matched) and a CORS preflight (an OPTIONS for another method's route).
 */
import FindMyWay from 'find-my-way'
import type { FastifyInstance, RouteOptions } from 'fastify'

export interface RouterOptions { ignoreTrailingSlash?: boolean, ignoreDuplicateSlashes?: boolean, caseSensitive?: boolean }

/** How the app's router matches paths: `routerOptions` (Fastify 5.x), else the deprecated top-level options. */
export function routerOptions (app: FastifyInstance): RouterOptions {
  const config = app.initialConfig as RouterOptions & { routerOptions?: RouterOptions }
  const { ignoreTrailingSlash, ignoreDuplicateSlashes, caseSensitive } = { ...config, ...config.routerOptions }
  return { ignoreTrailingSlash, ignoreDuplicateSlashes, caseSensitive }
}

export class PathTable {
  readonly #router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1>
  /** Every method added. */
  readonly methods = new Set<string>()

  constructor (app: FastifyInstance) {
    this.#router = FindMyWay({ ...routerOptions(app), defaultRoute: () => {} })
  }

  add (route: Pick<RouteOptions, 'method' | 'url'>): void {
    for (const method of [route.method].flat()) {
      this.methods.add(method)
      try {
        this.#router.on(method as never, route.url, () => {})
      } catch {
        // the same path declared twice with constraints: once is enough to know it exists
      }
    }
  }

  /** Whether a route of this method answers this path (without its query). */
  has (method: string, path: string): boolean {
    return this.#router.find(method as never, path) !== null
  }
}
