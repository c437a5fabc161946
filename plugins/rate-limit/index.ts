/**
 * Rate limiting, on @fastify/rate-limit's stores and address grouping, with what the
 * plugin itself gets wrong for a production preset done here instead:
 *
 * - Its `global: true` hooks only the routes registered after it (an `app.register()`
 *   without `await` followed by `app.get()` leaves that route unlimited) and never the
 *   not-found handler. Here every route spikard knows of gets the limit as a route hook,
 *   the not-found handler too (routes.ts), and a route registered before spikard refuses
 *   startup, naming it, rather than running unlimited.
 * - Its hook is an async function with several promises per request and a
 *   `request.routeOptions` object built on each; here a limit is a callback hook built
 *   once, and routes with `config: { rateLimit: false }` get no hook at all.
 * - Its `enableDraftSpec` headers are an expired draft's; `headers: 'ietf'` sends the
 *   current `RateLimit` / `RateLimit-Policy`.
 * - A store error is either thrown raw (a 500) or ignored silently (`skipOnError`); here
 *   it is logged once a minute and answered as `onStoreError` says.
 * - Its `config.rateLimit` type has no `keyBy`; spikard declares its own (below) and
 *   loads the package untyped so the two never meet.
 *
 * Limits keyed by address, header or cookie run in onRequest, first among the route's own
 * hooks, so before auth (which hooks each route too) and body parsing: floods of bad
 * credentials, of large bodies and of unknown paths are counted too. Only app-wide
 * onRequest hooks run before them (request id, shutdown). Identity limits run in
 * preParsing, after every onRequest hook (auth's included) and still before the body is
 * read.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, RouteOptions } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { validate } from '../../src/schema.js'
import { resolveRateLimitOptions, RouteRateLimitSchema, type RateLimitOptions, type RouteRateLimitOptions } from './options.js'
import { addressKeyer, AllowList } from './keys.js'
import { createLimit, Shared, type Limit } from './limiter.js'
import { memoryStores, Outage, redisStores } from './store.js'
import { limitNotFound } from './routes.js'
import { refuseEarlyRoutes } from '../../src/early-routes.js'
import { append, prepend, type OnRequest, type PreParsing } from '../../src/route-hooks.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * This route's rate limit: absent or `true`, the global one; `false`, none; an object,
     * a limit of its own (`max`, `timeWindow`, `keyBy`; the others from the global options),
     * counted apart from the global one.
     */
    rateLimit?: RouteRateLimitOptions | boolean
  }
}

async function spikardRateLimit (app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const resolved = resolveRateLimitOptions(options)
  refuseEarlyRoutes(app, 'rateLimit', 'would not be rate limited', 'a route that must not be limited says so with `config: { rateLimit: false }`')
  if (resolved.redis !== undefined && !isUrl(resolved.redis)) {
    // Not shown: a Redis URL may hold a password.
    throw new SpikardConfigError(['rateLimit.redis: expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS), found one that does not parse'])
  }
  const shared = new Shared(resolved, new AllowList(resolved.allowList), addressKeyer(resolved.ipv6Subnet), new Outage(app.log, resolved.onStoreError), app.log)

  const stores = resolved.redis === undefined
    ? memoryStores(resolved.cacheSize)
    : redisStores({ url: resolved.redis, prefix: resolved.redisPrefix, timeout: resolved.redisTimeout }, shared.outage, app.log)
  app.addHook('onClose', async () => { await stores.close() })

  let warnedIdentity = false
  /** keyBy identity with spikard's auth off: every request would be counted by its address. */
  function noteIdentity (keyBy: string, where: string): void {
    if (keyBy !== 'identity' || warnedIdentity || app.spikard.options.auth !== false) return
    warnedIdentity = true
    app.log.warn({ keyBy, where }, 'rateLimit: keyBy is "identity" but spikard\'s auth is off: unless a hook of your own sets request.identity, every request is counted by its address')
  }
  noteIdentity(resolved.keyBy, 'rateLimit.keyBy')

  const global = createLimit(shared, { max: resolved.max, window: resolved.timeWindow, keyBy: resolved.keyBy, store: stores.global, policy: 'default' })
  /** A route's own limit, by its config object and path: a GET and the HEAD Fastify adds for it share one. */
  const own = new WeakMap<object, Map<string, Limit>>()

  function limitOf (route: RouteOptions): Limit | undefined {
    const setting: unknown = route.config?.rateLimit
    if (setting === false) return undefined
    if (setting === undefined || setting === true) return global
    const url = route.url ?? ''
    const methods = [route.method].flat()
    const name = `${methods.filter((m) => m !== 'HEAD').join(',') || 'HEAD'} ${url}`
    if (setting === null || typeof setting !== 'object' || Array.isArray(setting)) {
      throw new SpikardConfigError([`config.rateLimit: expected false, true or an object ({ max, timeWindow, keyBy }), found ${JSON.stringify(setting)}`], `route ${name}`)
    }
    let byUrl = own.get(setting)
    if (byUrl === undefined) own.set(setting, byUrl = new Map())
    let limit = byUrl.get(url)
    if (limit === undefined) {
      const set = routeOptions(name, setting)
      noteIdentity(set.keyBy ?? resolved.keyBy, `route ${name}`)
      limit = createLimit(shared, {
        max: set.max ?? resolved.max,
        window: set.timeWindow ?? resolved.timeWindow,
        keyBy: set.keyBy ?? resolved.keyBy,
        store: stores.route(name),
        policy: 'route'
      })
      byUrl.set(url, limit)
    }
    return limit
  }

  function attach (route: RouteOptions): void {
    const limit = limitOf(route)
    if (limit === undefined) return
    // An address limit goes before the route's other onRequest hooks (auth's, the route's
    // own), so what they reject is counted too; an identity limit after everything else.
    if (limit.hook === 'onRequest') route.onRequest = prepend(route.onRequest, limit.handler as OnRequest)
    else route.preParsing = append(route.preParsing, limit.handler as PreParsing)
  }

  // Routes spikard registered before this plugin (health, auth) get their hooks through the
  // options objects Fastify reads at ready(); routes registered from now on, in onRoute.
  for (const route of app.spikard.routes) attach(route)
  app.addHook('onRoute', attach)

  limitNotFound(app, global.hook, global.handler, () => {
    if (global.hook === 'onRequest') {
      const handler = global.handler as OnRequest
      app.addHook('onRequest', function limitNotFound (request, reply, done) {
        if (request.is404) handler.call(this, request, reply, done)
        else done()
      })
    } else {
      const handler = global.handler as PreParsing
      app.addHook('preParsing', function limitNotFound (request, reply, payload, done) {
        if (request.is404) handler.call(this, request, reply, payload, done)
        else done(null, payload)
      })
    }
  })

  await stores.connected()
}

/** Validates a route's `config.rateLimit`; the error names the route. */
function routeOptions (name: string, setting: object): RouteRateLimitOptions & { timeWindow?: number } {
  return validate(RouteRateLimitSchema, setting, { path: 'config.rateLimit', source: `route ${name}` }) as RouteRateLimitOptions & { timeWindow?: number }
}

function isUrl (text: string): boolean {
  try {
    return new URL(text).hostname !== ''
  } catch {
    return false
  }
}

export default fp(spikardRateLimit, { name: 'spikard-rate-limit', fastify: '5.x', decorators: { fastify: ['spikard'] } })
