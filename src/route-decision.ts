/**
 * Per-route decisions: what a feature does on a route (its auth policy, its limit, its
 * timer), worked out once and kept on the route's config object under the feature's
 * symbol, so the feature's app-wide hook needs one property read per request.
 *
 * Routes registered after spikard are decided in the feature's onRoute hook, which also
 * refuses invalid route options at startup. Routes Fastify registered before spikard (and
 * the not-found handler) never went through it: they are decided on their first request,
 * from what `request.routeOptions` says, and the decision is kept the same way.
 */
import type { FastifyRequest, RouteOptions } from 'fastify'
import { routeConfig, type RouteConfig } from './fastify-internals.js'

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
