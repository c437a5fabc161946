/**
 * Rate limiting, on @fastify/rate-limit's stores and address grouping, with what the
 * plugin itself gets wrong for a production preset done here instead:
 *
 * - Its `global: true` hooks only the routes registered after it (an `app.register()`
 *   without `await` followed by `app.get()` leaves that route unlimited) and never the
 *   not-found handler. Here one hook for the whole app limits every route, those
 *   registered before spikard and the not-found handler included.
 * - Its hook is an async function with several promises per request and a
 *   `request.routeOptions` object built on each; here each route's limit is decided once
 *   (src/route-decision.ts) and checked with callbacks.
 * - Its `enableDraftSpec` headers are an expired draft's; `headers: 'ietf'` sends the
 *   current `RateLimit` / `RateLimit-Policy`.
 * - A store error is either thrown raw (a 500) or ignored silently (`skipOnError`); here
 *   it is logged once a minute and answered as `onStoreError` says.
 * - Its `config.rateLimit` type has no `keyBy`; spikard declares its own (below) and
 *   loads the package untyped so the two never meet.
 *
 * Limits keyed by address, header or cookie run in onRequest, before auth (the feature
 * after this one) and body parsing: floods of bad credentials, of large bodies and of
 * unknown paths are counted too. Identity limits run in preParsing, after every onRequest
 * hook (auth's included) and still before the body is read.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { validate } from '../../src/schema.js'
import { resolveRateLimitOptions, RouteRateLimitSchema, type RateLimitOptions, type RouteRateLimitOptions } from './options.js'
import { addressKeyer, AllowList } from './keys.js'
import { createLimit, kCounted, Shared, type Limit } from './limiter.js'
import { memoryStores, Outage, redisStores } from './store.js'
import { decide, decideEarlier, decisionOf, registered, routeName, type RouteView } from '../../src/route-decision.js'
import type { OnRequest, PreParsing } from './limiter.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * This route's rate limit: absent or `true`, the global one; `false`, none; an object,
     * a limit of its own (`max`, `timeWindow`, `keyBy`; the others from the global options),
     * counted apart from the global one.
     */
    rateLimit?: (RouteRateLimitOptions & object) | boolean // `& object`: see RouteAuth (plugins/auth/route.ts)
  }
}

/** Where a route keeps its limit (src/route-decision.ts). */
const kRateLimit = Symbol('spikard.rate-limit')

async function spikardRateLimit (app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const resolved = resolveRateLimitOptions(options)
  const problem = resolved.redis === undefined ? undefined : redisUrlProblem(resolved.redis)
  if (problem !== undefined) {
    // Not shown: a Redis URL may hold a password.
    throw new SpikardConfigError([`rateLimit.redis: expected a Redis URL (redis://[user:password@]host[:port][/db], or rediss:// for TLS), found one ${problem}`])
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

  /** The route's limit: the global one, its own, or null (`config.rateLimit: false`). The not-found handler has the global one. */
  function limitOf (route: RouteView): Limit | null {
    if (route.is404) return global
    const setting: unknown = route.config?.rateLimit
    if (setting === false) return null
    if (setting === undefined || setting === true) return global
    const url = route.url ?? ''
    const methods = [route.method].flat()
    const name = `${methods.filter((m) => m !== 'HEAD').join(',') || 'HEAD'} ${url}`
    if (setting === null || typeof setting !== 'object' || Array.isArray(setting)) {
      throw new SpikardConfigError([`config.rateLimit: expected false, true or an object ({ max, timeWindow, keyBy }), found ${JSON.stringify(setting)}`], `route ${routeName(route)}`)
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
        // Routes told apart by their constraints (`version`, `host`) count apart in Redis too.
        store: stores.route(name + constraintsText(route.constraints)),
        policy: 'route'
      })
      byUrl.set(url, limit)
    }
    return limit
  }

  app.decorateRequest(kCounted, false)
  // Routes registered before spikard too: an invalid config.rateLimit fails at startup, not at each request.
  decideEarlier(app, kRateLimit, limitOf)
  app.addHook('onRoute', (route) => { decide(route, kRateLimit, limitOf(registered(route))) })
  // An address, header or cookie limit counts before auth and the body; an identity limit
  // after auth (every onRequest hook), still before the body is read.
  app.addHook('onRequest', function spikardRateLimit (request, reply, done) {
    const limit = decisionOf(request, kRateLimit, limitOf)
    if (limit === null) return done()
    if (limit.hook !== 'onRequest') return limit.early === undefined ? done() : limit.early.call(this, request, reply, done)
    ;(limit.handler as OnRequest).call(this, request, reply, done)
  })
  // An identity limit counts the requests auth refused (they never reach preParsing) by address.
  app.addHook('onError', function spikardRateLimitFailed (request, reply, error, done) {
    const limit = decisionOf(request, kRateLimit, limitOf)
    if (limit !== null && limit.failed !== undefined) limit.failed(request, reply, error)
    done()
  })
  app.addHook('preParsing', function spikardRateLimitIdentity (request, reply, payload, done) {
    const limit = decisionOf(request, kRateLimit, limitOf)
    if (limit === null || limit.hook !== 'preParsing') return done(null, payload)
    ;(limit.handler as PreParsing).call(this, request, reply, payload, done)
  })

  await stores.connected()
}

/** Validates a route's `config.rateLimit`; the error names the route. */
function routeOptions (name: string, setting: object): RouteRateLimitOptions & { timeWindow?: number } {
  return validate(RouteRateLimitSchema, setting, { path: 'config.rateLimit', source: `route ${name}` }) as RouteRateLimitOptions & { timeWindow?: number }
}

/** ` host=api.example.com version=2.0.0`: a route's constraints, sorted, for its store's name. */
function constraintsText (constraints: Record<string, unknown> | undefined): string {
  if (constraints === undefined) return ''
  return Object.keys(constraints).sort().map((key) => ` ${key}=${String(constraints[key])}`).join('')
}

/**
 * Why a Redis URL cannot be used, or undefined. A database that is not a number
 * (`redis://host/cache`, `?db=x`) would make ioredis send `SELECT NaN` on connecting, a
 * rejection nothing handles: the process would go down.
 */
function redisUrlProblem (text: string): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'that does not parse'
  }
  if (url.hostname === '') return 'that does not parse'
  const db = url.searchParams.get('db') ?? (url.pathname.length > 1 ? url.pathname.slice(1) : undefined)
  if (db !== undefined && !/^\d+$/.test(db)) return 'whose database (after the host) is not a number'
  return undefined
}

export default fp(spikardRateLimit, { name: 'spikard-rate-limit', fastify: '5.x', decorators: { fastify: ['spikard'] } })
