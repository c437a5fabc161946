/**
 * The root plugin. Registers problem details first, so every error below it is rendered
 * by one handler, then each enabled feature in this order, which is also the order their
 * hooks run in at each point of the request lifecycle:
 *
 *   1. openapi  2. asyncapi  3. requestContext  4. requestId  5. logging  6. cors
 *   7. shutdown  8. tasks  9. health  10. timeout  11. rateLimit  12. auth  13. bodyLimit
 *   14. stream  15. sse  16. websocket  17. static  18. compression
 *
 * The OpenAPI document first: it adds no request hooks, and its collector must see every
 * route registered after it, the health probes included. The AsyncAPI document next: no
 * request hooks either; its onRoute hook must see the WebSocket and event-stream routes
 * registered after it (for their shared schemas), and it builds the document from the
 * routes when the app is ready. Of the features with request hooks, the request context
 * first, so every later hook runs inside it; request ids and the access log next so every
 * later hook's errors and logs carry the id; CORS next, so a preflight (sent without
 * credentials) is answered before anything refuses it, and every refusal after it is
 * readable by the allowed pages; shutdown before health so readiness can see
 * the shutdown phase; background tasks next to shutdown, whose drain waits for them (they
 * have no hook before the response: theirs queue or drop a request's tasks once it is
 * done or aborted, after the access log's, and the tasks carry the request's context and
 * id); the handler timeout's clock before anything that may wait (a Redis count, a JWKS
 * fetch); rate limiting before auth, so a flood of bad credentials is counted; streams, event streams,
 * WebSockets and static files after every check that refuses a request (a WebSocket
 * upgrade is a request too: the shutdown, rate limit and auth hooks refuse it with a real
 * HTTP problem carrying its id, before its own Origin check runs); compression last so it
 * sees every other feature's responses.
 *
 * How a feature attaches: its hooks are added once, to the whole app (every feature is a
 * fastify-plugin plugin), so they run for every route, those registered before spikard
 * and in encapsulated or prefixed children included, and for the not-found handler. What a
 * route wants is worked out once, when Fastify registers it (onRoute), or for a route
 * registered before spikard when the feature registers, and stored on the route's own
 * config object under the feature's symbol; the hook reads it with one property access
 * (src/route-decision.ts).
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, RouteOptions } from 'fastify'
import problemDetails from './problem-details.js'
import { SpikardConfigError } from './errors.js'
import type { FeatureDefinition } from './feature.js'
import { features, resolveSpikardOptions, type FeatureName, type ResolvedSpikardOptions, type SpikardOptions } from './options.js'
import type { Rooms } from '../plugins/websocket/rooms.js'
import { attachLifecycle, closeWithoutShutdown, Lifecycle, type DrainHook, type LifecyclePhase } from './lifecycle.js'
import { flushLog } from './flush-log.js'
import { startupSummary } from './summary.js'
import { answers503OnClosing, mirrorServerSetup } from './fastify-internals.js'
import { earlierRoutes, routeName, type RouteView } from './route-decision.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The options spikard resolved (every default filled in). */
    spikard: {
      options: ResolvedSpikardOptions
      /** Every route registered after spikard, as declared, with the config every onRoute hook left (`spikard check` prints them). */
      routes: import('fastify').RouteOptions[]
      /** Where the server is in its life: `serving`, then `draining`, `closing`, `closed` as it shuts down. */
      readonly phase: LifecyclePhase
      /**
       * Registers a drain hook: how a feature with long-lived connections or background work
       * (WebSocket, SSE, tasks) finishes it at shutdown. Hooks run once per close, all at once,
       * after the server has stopped accepting connections, each given the milliseconds left
       * in the shutdown budget and a signal aborted when it runs out. Names must be unique;
       * returns a function that removes the hook.
       *
       *     app.spikard.onDrain('websocket', async ({ remainingMs, signal }) => {
       *       for (const socket of sockets) socket.close(1001, 'server shutting down')
       *       await allClosed(sockets, { signal })
       *     })
       */
      onDrain: (name: string, hook: DrainHook) => () => void
      /**
       * WebSocket rooms (plugins/websocket/rooms.ts): `join(room, socket)`, `leave(room, socket)`,
       * `publish(room, data)`, `broadcast(data)`. Reading it while the websocket feature is off throws.
       */
      readonly rooms: Rooms
      /** `server.trustProxy` as createServer gave it to Fastify, for the startup warnings (Fastify's initialConfig does not keep it). */
      trustProxy?: unknown
    }
  }
}

/** Route options a feature reads that make no sense while that feature is off. */
const WANTS = { auth: 'config.auth', rateLimit: 'config.rateLimit', sse: 'the sse route option', websocket: 'the websocket route option' } as const

async function spikard (app: FastifyInstance, options: SpikardOptions): Promise<void> {
  const resolved = resolveSpikardOptions(options)
  const routes: RouteOptions[] = []
  const lifecycle = new Lifecycle()
  const state: FastifyInstance['spikard'] = {
    options: resolved,
    routes,
    get phase () { return lifecycle.phase },
    onDrain: (name: string, hook: DrainHook) => lifecycle.onDrain(name, hook),
    // Replaced (Object.defineProperty) by the websocket feature when it is on.
    get rooms (): Rooms { throw new Error('app.spikard.rooms: the websocket feature is off') }
  }
  attachLifecycle(state, lifecycle)
  app.decorate('spikard', state)
  // The first onClose hook runs last: what a buffered log destination (`server.logger.buffer`)
  // still holds is written out after every other hook's last line.
  app.addHook('onClose', async (instance) => { await flushLog(instance.log) })
  // A route asking for auth, its own rate limit or an event stream while that feature is
  // off would otherwise be silently public, unlimited, or fail at its first request.
  const refuseUnwanted = (route: Pick<RouteView, 'method' | 'url'>, wants: (feature: keyof typeof WANTS) => unknown): void => {
    for (const feature of Object.keys(WANTS) as Array<keyof typeof WANTS>) {
      const wanted = wants(feature)
      if (resolved[feature] === false && wanted !== undefined && wanted !== false) {
        throw new SpikardConfigError([`route ${routeName(route)}: ${WANTS[feature]} is set but the ${feature} feature is off; configure ${feature} or remove ${WANTS[feature]}`])
      }
    }
  }
  // Routes registered before spikard: only their config is kept (the sse and websocket route options are not).
  for (const route of earlierRoutes(app)) refuseUnwanted(route, (feature) => feature === 'auth' || feature === 'rateLimit' ? route.config?.[feature] : undefined)
  // First among spikard's onRoute hooks, so the features below see its copy.
  app.addHook('onRoute', (route) => {
    refuseUnwanted(route, (feature) => feature === 'sse' || feature === 'websocket' ? (route as { sse?: unknown, websocket?: unknown })[feature] : (route.config as Record<string, unknown> | undefined)?.[feature])
    // The route's own config object, for the features' decisions: the one a route was
    // given may be shared with other routes.
    route.config = { ...route.config }
    // A copy (Fastify reuses this object for the `/prefix/` twin of a prefix's `/` route),
    // whose config is read live: what later onRoute hooks set (the docs routes' config.auth) shows too.
    routes.push(Object.defineProperty({ ...route }, 'config', { get: () => route.config, enumerable: true }))
  })

  // Listening on `localhost` binds its other addresses (::1) on servers of their own, which
  // get only the upgrades of `app.server`: the rest of its setup is copied onto them, first
  // of spikard's onListen hooks.
  app.addHook('onListen', function spikardEveryServer (done) {
    mirrorServerSetup(app)
    done()
  })
  await app.register(problemDetails)
  // In the order of the features list (src/options.ts); each plugin is loaded only when its feature is on.
  for (const [name, feature] of Object.entries(features) as Array<[FeatureName, FeatureDefinition]>) {
    const options = resolved[name]
    if (options !== false) await app.register((await feature.plugin()).default, options)
    else if (name === 'shutdown') closeWithoutShutdown(app, lifecycle)
  }

  // What the server got, once it listens: one line, and a warning per risky choice.
  app.addHook('onListen', function spikardSummary (done) {
    const { record, warnings } = startupSummary(resolved, { trustProxy: state.trustProxy, bodyLimit: app.initialConfig.bodyLimit, logLevel: app.log.level, pluginTimeout: app.initialConfig.pluginTimeout, return503OnClosing: answers503OnClosing(app) })
    app.log.info(record, 'spikard features')
    for (const warning of warnings) app.log.warn(warning)
    done()
  })
}

export default fp(spikard, { name: 'spikard', fastify: '5.x' })
