/**
 * Putting limits on routes. Fastify gives each route its hooks when it is registered
 * (`onRoute`), fixes them at `ready()`, and keeps the not-found handler apart from routes.
 * So the limit is attached as a route hook to each route spikard knows of, the not-found
 * handler's context is given the global limit once Fastify has built it (routes registered
 * before spikard, which nothing can reach any more, refuse startup: src/early-routes.ts).
 */
import type { FastifyInstance } from 'fastify'
import { append, type OnRequest, type PreParsing } from '../../src/route-hooks.js'

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
