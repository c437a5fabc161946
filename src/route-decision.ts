/**
 * Per-route decisions: what a feature does on a route (its auth policy, its limit, its
 * timer), worked out once and kept on the route's config object under the feature's
 * symbol, so the feature's app-wide hook needs one property read per request.
 *
 * Routes registered after spikard are decided in the feature's onRoute hook, which also
 * refuses invalid route options at startup. Routes Fastify registered before spikard never
 * went through it: they are decided when the feature registers (decideEarlier), from the
 * config Fastify keeps for them, so their invalid options fail at startup too. The
 * not-found handler, and any route the router could not list, are decided on their first
 * request, from what `request.routeOptions` says, and the decision is kept the same way.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import { routeConfig, routesInRouter, type RouteConfig } from './fastify-internals.js'

/** What a decision is made from: a route's options, as onRoute or `request.routeOptions` give them. */
export interface RouteView {
  method: string | string[]
  url: string | undefined
  config: Record<string, unknown> | undefined
  /** The route's own limit in onRoute; the effective one (own or the server's) for a lazy decision. */
  bodyLimit: number | undefined
  /** The route's own handler timeout in onRoute; the effective one for a lazy decision. */
  handlerTimeout: number | undefined
  /** The route's constraints (`version`, `host`...); unknown (undefined) for a lazy decision. */
  constraints?: Record<string, unknown>
  /** No route matched: the not-found handler. */
  is404: boolean
  /** Decided on the first request rather than at registration (a route registered before spikard, or the not-found handler). */
  late: boolean
}

/** The view of a route being registered. */
export function registered (route: RouteOptions): RouteView {
  return {
    method: route.method,
    url: route.url,
    config: route.config as Record<string, unknown> | undefined,
    bodyLimit: route.bodyLimit,
    handlerTimeout: route.handlerTimeout,
    constraints: route.constraints,
    is404: false,
    late: false
  }
}

/** Stores a decision made in onRoute (the root gave the route a config object of its own). */
export function decide (route: RouteOptions, key: symbol, decision: unknown): void {
  route.config ??= {}
  ;(route.config as unknown as RouteConfig)[key] = decision
}

/**
 * The routes in the app already, which an onRoute hook added now will never see: those
 * registered before spikard (and spikard's own, registered by the features before the
 * caller), viewed as `request.routeOptions` would show them (`late`). Only those the app's
 * hooks reach: with spikard registered in an encapsulated plugin, its own routes and its
 * children's, not a sibling plugin's. HEAD routes come last, so a GET's problem is named
 * after the GET rather than the HEAD route Fastify added for it.
 */
export function earlierRoutes (app: FastifyInstance): RouteView[] {
  const views: RouteView[] = []
  for (const route of routesInRouter(app)) {
    if (route.server !== app && (route.server === undefined || !Object.prototype.isPrototypeOf.call(app, route.server))) continue
    const { config } = route
    views.push({
      method: config.method ?? 'GET',
      url: config.url,
      config: config as unknown as Record<string, unknown>,
      bodyLimit: route.bodyLimit,
      handlerTimeout: route.handlerTimeout,
      is404: false,
      late: true
    })
  }
  const headOnly = (view: RouteView): boolean => [view.method].flat().every((m) => m === 'HEAD')
  return [...views.filter((v) => !headOnly(v)), ...views.filter(headOnly)]
}

/**
 * Decides, now, each route registered before the feature's onRoute hook (earlierRoutes) and
 * keeps the decision where decisionOf reads it: a route option the feature refuses fails at
 * startup, naming the route, as it does on a route registered later.
 */
export function decideEarlier (app: FastifyInstance, key: symbol, make: (route: RouteView) => unknown): void {
  for (const route of earlierRoutes(app)) {
    const config = route.config as unknown as RouteConfig
    if (config[key] === undefined) config[key] = make(route)
  }
}

/** The route's decision for `key`; made from `request.routeOptions` on the first request of a route onRoute never saw. */
export function decisionOf<T> (request: FastifyRequest, key: symbol, make: (route: RouteView) => T): T {
  const config = routeConfig(request)
  const decision = config[key] as T | undefined
  if (decision !== undefined) return decision
  return (config[key] = make(late(request))) as T
}

function late (request: FastifyRequest): RouteView {
  const route = request.routeOptions
  return {
    method: route.method ?? request.method,
    url: route.url,
    config: route.config as unknown as Record<string, unknown>,
    bodyLimit: route.bodyLimit,
    handlerTimeout: (route as { handlerTimeout?: number }).handlerTimeout,
    is404: request.is404,
    late: true
  }
}

/** `GET,HEAD /users/:id`, for messages that name a route. */
export function routeName (route: Pick<RouteView, 'method' | 'url'>): string {
  return `${[route.method].flat().join(',')} ${route.url ?? '(not found)'}`
}
