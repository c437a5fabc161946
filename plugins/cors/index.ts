/**
 * Cross-origin requests (the CORS protocol of the Fetch standard). Registered after the
 * request id and the access log and before every feature that may refuse a request
 * (shutdown, the timeout, rate limiting, auth, the body limit): a browser sends its
 * preflight without credentials, so it must be answered before auth would refuse it, and a
 * refusal must carry `Access-Control-Allow-Origin` or the page cannot read its status (a 401
 * that should trigger a token refresh looks like a network error). A CORS plugin the app
 * registers itself comes after every feature's hooks, too late for both.
 *
 * Written here rather than with @fastify/cors (checked against 11.4.3), which answers
 * preflights through a catch-all `OPTIONS *` route it always adds: with that route every
 * unknown path is answered 405 `Allow: OPTIONS` instead of 404, the route falls under auth
 * and shows in the route table; and an OPTIONS request that is not a preflight gets a
 * plain-text 400 (`strictPreflight`) instead of the app's own answer. The protocol itself
 * is a handful of headers, set here by one onRequest hook:
 *
 * - a request with an allowed `Origin` gets `Access-Control-Allow-Origin` (its origin, or `*`,
 *   which every request gets, with or without `Origin`), `Access-Control-Allow-Credentials`
 *   when configured and `Access-Control-Expose-Headers`;
 * - a preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) is answered 204
 *   at once, on any path, with the methods, headers and max age when its origin is allowed,
 *   and with none of them otherwise or for a route with `config.cors: false` (the browser
 *   then refuses the request itself);
 * - any other OPTIONS request goes on to the app's routes (405 with `Allow`, or 404);
 * - with a list of origins every response says `Vary: Origin`, so caches keep apart the
 *   answers for different pages (added back by an onSend hook when a handler set its own `Vary`).
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { routeConfig } from '../../src/fastify-internals.js'
import { PathTable } from '../../src/path-table.js'
import { earlierRoutes } from '../../src/route-decision.js'
import { pathOf } from '../../src/problem-details.js'
import type { ResolvedSpikardOptions } from '../../src/options.js'
import { resolveCorsOptions, type CorsOptions } from './options.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Sets the CORS headers of an answer that is not a preflight's; for the problems of requests refused before the CORS hook ran (src/problem-details.ts). */
    spikardCorsHeaders?: (request: FastifyRequest, reply: FastifyReply) => void
  }
  interface FastifyContextConfig {
    /** `false`: no CORS headers on this route's responses or on preflights for it: no page of another origin can read them, or send it a request that needs a preflight. */
    cors?: false
  }
}

/** The response headers of spikard's own features that a page may want to read. */
function ownHeaders (options: ResolvedSpikardOptions): string[] {
  const headers = ['retry-after']
  if (options.requestId !== false) headers.push(options.requestId.header.toLowerCase())
  if (options.rateLimit !== false && options.rateLimit.headers === 'x-ratelimit') headers.push('x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset')
  if (options.rateLimit !== false && options.rateLimit.headers === 'ietf') headers.push('ratelimit-policy', 'ratelimit')
  if (options.auth !== false) headers.push('www-authenticate')
  return headers
}

async function spikardCors (app: FastifyInstance, options: CorsOptions): Promise<void> {
  const o = resolveCorsOptions(options)
  const anyOrigin = o.origin === '*'
  if (anyOrigin && o.credentials) {
    throw new SpikardConfigError(['cors.credentials: true needs the allowed origins listed in cors.origin: browsers refuse credentials from a server that allows any origin ("*")'])
  }
  // Compared as browsers send them (an origin's serialization): scheme and host in lower
  // case, no default port (`https://app.example.com:443` is sent without it), IP addresses
  // in their short form. What the schema let through that is no URL has a port over 65535.
  const allowed = new Set<string>()
  const problems: string[] = []
  if (!anyOrigin) {
    [o.origin].flat().forEach((origin, i) => {
      try {
        allowed.add(new URL(origin).origin)
      } catch {
        problems.push(`cors.origin${Array.isArray(o.origin) ? `[${i}]` : ''}: expected an origin such as https://app.example.com (scheme, host and a port up to 65535), found ${JSON.stringify(origin)}`)
      }
    })
  }
  // With credentials, browsers take a `*` literally: a method or header named "*".
  if (o.credentials) {
    for (const [key, list, what] of [['methods', o.methods, 'method'], ['allowedHeaders', o.allowedHeaders ?? [], 'header'], ['exposedHeaders', o.exposedHeaders, 'header']] as const) {
      const i = list.indexOf('*')
      if (i !== -1) problems.push(`cors.${key}[${i}]: "*" is no wildcard with cors.credentials: true (browsers take it for a ${what} named "*"); list the ${what}s`)
    }
  }
  if (problems.length > 0) throw new SpikardConfigError(problems)
  const exposed = [...new Set([...ownHeaders(app.spikard.options), ...o.exposedHeaders.map((h) => h.toLowerCase())])].join(', ')
  // Browsers compare them exactly, the request's in upper case (fetch's `put` is sent as PUT),
  // and Fastify routes them in upper case.
  const methods = [...new Set(o.methods.map((m) => m.toUpperCase()))].join(', ')
  const allowedHeaders = o.allowedHeaders?.join(', ')
  const maxAge = String(o.maxAge)
  // What the answer depends on besides the URL: the page's origin (unless any will do), and
  // for a preflight the headers it asks for (when they are echoed).
  const vary = anyOrigin ? undefined : 'Origin'
  const preflightVary = allowedHeaders !== undefined ? vary : vary === undefined ? 'Access-Control-Request-Headers' : `${vary}, Access-Control-Request-Headers`

  /** Whether the page may read the answer; if so, says so. */
  function allow (origin: string | undefined, reply: FastifyReply): boolean {
    // Any origin: on every response, requests without Origin included, as the Fetch standard
    // asks of `*` without Vary; else a cache (the browser's own) that kept the answer to a
    // navigation or a server's request would give it, without the header, to the pages.
    const permitted = anyOrigin || (origin !== undefined && allowed.has(origin))
    if (permitted) {
      reply.header('access-control-allow-origin', anyOrigin ? '*' : origin)
      if (o.credentials) reply.header('access-control-allow-credentials', 'true')
    }
    return permitted
  }
  /** The headers of an answer that is not a preflight's. */
  function answer (origin: string | undefined, reply: FastifyReply): void {
    const permitted = allow(origin, reply)
    if (vary !== undefined) reply.header('vary', vary)
    if (permitted) reply.header('access-control-expose-headers', exposed)
  }
  app.decorate('spikardCorsHeaders', (request: FastifyRequest, reply: FastifyReply) => {
    if (routeConfig(request).cors !== false) answer(request.headers.origin, reply)
  })

  // The routes with `config.cors: false`, by method and path: the route a preflight asks
  // about is not the one the OPTIONS request itself matched.
  const closed = new PathTable(app)
  for (const route of earlierRoutes(app)) if (route.config?.cors === false && route.url !== undefined) closed.add({ method: route.method, url: route.url })
  app.addHook('onRoute', (route) => { if (route.config?.cors === false) closed.add(route) })

  app.addHook('onRequest', function spikardCors (request, reply, done) {
    if (routeConfig(request).cors === false) return done()
    const origin = request.headers.origin
    if (request.method !== 'OPTIONS' || origin === undefined || request.headers['access-control-request-method'] === undefined) {
      answer(origin, reply)
      return done()
    }
    // A preflight: for a route that left CORS (`config.cors: false`), none of the headers, so
    // the browser never sends it the request (a DELETE or a JSON POST with the page's cookies).
    const method = request.headers['access-control-request-method']
    const permitted = !closed.has(method, pathOf(request.url)) && allow(origin, reply)
    if (preflightVary !== undefined) reply.header('vary', preflightVary)
    if (permitted) {
      reply.header('access-control-allow-methods', methods)
      const headers = allowedHeaders ?? request.headers['access-control-request-headers']
      if (headers !== undefined) reply.header('access-control-allow-headers', headers)
      reply.header('access-control-max-age', maxAge)
    }
    reply.code(204).send()
  })
  if (vary !== undefined) {
    // A handler's `reply.header('vary', ...)` replaces the `Vary: Origin` set above: a cache
    // would then give one page's answer (its Access-Control-Allow-Origin, or none) to another.
    app.addHook('onSend', function spikardCorsVary (request, reply, payload, done) {
      const current = reply.getHeader('vary')
      if (current !== vary && current !== preflightVary && routeConfig(request).cors !== false && !variesOnOrigin(current)) {
        reply.header('vary', current === undefined || current === '' ? vary : `${[current].flat().join(', ')}, ${vary}`)
      }
      done(null, payload)
    })
  }
}

/** Whether a `Vary` already names `Origin` (in any case), or is `*`. */
function variesOnOrigin (vary: number | string | string[] | undefined): boolean {
  return vary !== undefined && /(?:^|,)\s*(?:origin|\*)\s*(?:,|$)/i.test([vary].flat().join(','))
}

export default fp(spikardCors, { name: 'spikard-cors', fastify: '5.x' })
