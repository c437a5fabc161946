/**
 * Adding hooks to a route in onRoute, where a route's hook option is one hook, a list of
 * them, or absent. Always returns a new list: the one found may be shared with other routes.
 */
import type { RouteOptions } from 'fastify'

/** One hook of a route's hook option. */
export type HookOf<T> = T extends Array<infer H> ? H : Exclude<T, undefined>

export type OnRequest = HookOf<RouteOptions['onRequest']>
export type PreParsing = HookOf<RouteOptions['preParsing']>
export type OnSend = HookOf<RouteOptions['onSend']>
export type OnError = HookOf<RouteOptions['onError']>

/** The route's hooks with `hook` last. */
export function append<H> (hooks: H | H[] | undefined, hook: H): H[] {
  return hooks === undefined ? [hook] : Array.isArray(hooks) ? [...hooks, hook] : [hooks, hook]
}

/** The route's hooks with `hook` first. */
export function prepend<H> (hooks: H | H[] | undefined, hook: H): H[] {
  return hooks === undefined ? [hook] : Array.isArray(hooks) ? [hook, ...hooks] : [hook, hooks]
}
