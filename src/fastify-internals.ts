/**
 * The one module that reads Fastify's private state. Everything else in spikard uses
 * Fastify's public API. Each access here has a public fallback, and
 * test/fastify-internals.test.ts fails when a Fastify release changes what it relies on.
 *
 * 1. A route's config object, from a hook. The public way is `request.routeOptions.config`,
 *    but `routeOptions` is a getter that builds a 12-field object on every read (about
 *    30 ns, and a known hot spot: fastify/fastify#6141); every feature reads its per-route
 *    decision from the config on every request. The config is the object Fastify keeps in
 *    the route's context (`request[kRouteContext].config`), the same one routeOptions
 *    returns.
 * 2. Where `request.signal` keeps its controller, so the timeout feature can supply its own:
 *    Fastify 5.12's aborts when the request's `close` event fires, which Node also emits
 *    once a request body has been read (fastify/fastify#6725).
 * 3. The instance's request id generator (`app.genReqId`, a getter Fastify defines but does
 *    not type or document: the function `setGenReqId` installed), for the requests Node's
 *    server answers before Fastify sees them: their id is the one the request would have had.
 *    And, before spikard installs its own, whether that generator is yours (Fastify's
 *    `genReqId` option, or an earlier `setGenReqId()`) or Fastify's counter (`req-1`), which
 *    is told by its name: spikard's request ids call yours where they would make a UUID.
 * 4. Whether a not-found handler was set at an instance's prefix, and the flag that says so
 *    (`fastify.canSetNotFoundHandler` on the instance `fastify.404LogLevelInstance` points
 *    to): spikard's problem 404 is a default, as Fastify's own is, and Fastify refuses a
 *    second handler at one prefix (fastify/fastify#638), so `app.setNotFoundHandler()` of
 *    the user's would fail after spikard's. spikard's leaves the flag as it found it, and
 *    gives way to a handler set before it.
 * 5. The servers an instance listens on besides `app.server` (`fastify.serverBindings`):
 *    `listen()` on `localhost` (Fastify's default host) binds every address it resolves to,
 *    127.0.0.1 and ::1 on most systems, each on a server of its own that hands its requests
 *    to the same handler. No public API returns them (`app.addresses()` gives only their
 *    addresses), and the shutdown must follow their connections and requests too. Fastify
 *    forwards only their 'upgrade' event to `app.server`: what spikard (and Fastify's
 *    `clientErrorHandler`) set up on `app.server` is copied onto them once the app listens
 *    (`mirrorServerSetup`), or a request to ::1 would get Node's bare answers.
 * 6. Whether the instance answers requests during `app.close()` itself
 *    (`return503OnClosing`, kept in its options under `fastify.options`; not in
 *    `initialConfig`): then the shutdown's pre-close delay serves nothing, and spikard warns.
 * 7. The routes already in the router, with the config object each keeps in its context (the
 *    one `request.routeOptions.config` returns), for the routes registered before spikard:
 *    Fastify lists routes to no one (fastify/fastify#930 points to onRoute, which sees only
 *    the routes registered after the hook). `printRoutes({ includeMeta })` hands each route,
 *    its context as `store`, to the router's meta builder, which find-my-way takes from the
 *    options object it is given (it assigns its own there first): an accessor on that object
 *    sees every route. Without it, no route is seen, and those routes are decided on their
 *    first request, as before.
 * 7b. The error handler each of those routes keeps in its context (`context.errorHandler`,
 *    the one its instance had when the route was added: Fastify's default for a route added
 *    before spikard's `setErrorHandler`, in the app or in a plugin registered before spikard):
 *    adoptErrorHandler gives them spikard's, so their errors are problems too. Fastify's
 *    default is the root of the chain `setErrorHandler` builds (a plain object); a handler
 *    of the app's own, on the app or a route, is left as it is.
 * 8. And three of Node's: the listener that starts a server's check of its connections'
 *    timeouts (`setupConnectionsTracking`, run again so that a new checking interval applies
 *    to a server already listening), a socket's response under way (`socket._httpMessage`,
 *    set by Node's HTTP server from the moment a response is assigned to the connection until
 *    it is done with it), for the answers spikard writes on a raw socket (a parse error, CONNECT, an
 *    upgrade): behind a response still under way, they would land before it or inside its body;
 *    and whether a response's connection has reached `maxRequestsPerSocket`
 *    (`maxRequestsOnConnectionReached`), which with the public `shouldKeepAlive` says whether
 *    Node will keep the connection (keepsConnection): a `Connection` header set by hand (an
 *    upgrade's, @fastify/sse's keep-alive) overrides Node's choice, so it must agree with it.
 *
 * The symbols are Fastify's own (lib/symbols.js), found by their description on the first
 * request rather than imported from `fastify/lib/symbols.js`: a deep import would break if
 * Fastify added an `exports` map, and would be another copy's symbols if two Fastify
 * versions were installed.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { FastifyContextConfig, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

const ROUTE_CONTEXT = 'fastify.context'
const REQUEST_SIGNAL = 'fastify.request.signal'
const NOT_FOUND_LEVEL = 'fastify.404LogLevelInstance'
const CAN_SET_NOT_FOUND = 'fastify.canSetNotFoundHandler'
const SERVER_BINDINGS = 'fastify.serverBindings'
const OPTIONS = 'fastify.options'
const ERROR_HANDLER = 'fastify.errorHandler'

/** A route's config as spikard's features store their per-route decisions on it. */
export type RouteConfig = FastifyContextConfig & { url?: string, method?: string | string[] } & Record<symbol, unknown>

let contextSymbol: symbol | null | undefined

function findSymbol (request: FastifyRequest, description: string): symbol | null {
  return Object.getOwnPropertySymbols(request).find((s) => s.description === description) ?? null
}

/** The route's config object (`request.routeOptions.config`), read without building routeOptions. */
export function routeConfig (request: FastifyRequest): RouteConfig {
  if (contextSymbol === undefined) contextSymbol = findSymbol(request, ROUTE_CONTEXT)
  if (contextSymbol !== null) {
    const context = (request as unknown as Record<symbol, { config?: RouteConfig } | undefined>)[contextSymbol]
    if (context?.config !== undefined) return context.config
  }
  return request.routeOptions.config as unknown as RouteConfig
}

let signalSymbol: symbol | null | undefined

/**
 * Makes `source.signal` the request's `request.signal`. Fastify's getter returns
 * `this[kRequestSignal].signal` when set, and its cleanup only tests presence. Returns
 * false when the slot cannot be found (request.signal then stays Fastify's).
 */
export function provideRequestSignal (request: FastifyRequest, source: { readonly signal: AbortSignal }): boolean {
  if (signalSymbol === undefined) {
    // Fastify creates the slot on the first read of request.signal.
    void request.signal
    signalSymbol = findSymbol(request, REQUEST_SIGNAL)
  }
  if (signalSymbol === null) return false
  ;(request as unknown as Record<symbol, unknown>)[signalSymbol] = source
  return true
}

/** The id Fastify would give this raw request (a client's well-formed one, with spikard's requestId); a new UUID when it cannot say. */
export function requestIdFor (app: FastifyInstance, req: IncomingMessage): string {
  const generate: unknown = (app as { genReqId?: unknown }).genReqId
  if (typeof generate === 'function') {
    try {
      const id: unknown = generate(req)
      if (typeof id === 'string' && id !== '') return id
    } catch {
      // a generator of the user's that fails on a request Fastify never parsed
    }
  }
  return randomUUID()
}

/** The name of Fastify's own generator (lib/req-id-gen-factory.js), the one in place unless you set one. */
const FASTIFY_GEN_REQ_ID = 'defaultGenReqId'

/** Ids of your own: the request id generator the app has, unless it is Fastify's default (see 3 above). */
export function ownRequestIdGenerator (app: FastifyInstance): ((this: unknown, req: IncomingMessage) => unknown) | undefined {
  const generate: unknown = (app as { genReqId?: unknown }).genReqId
  if (typeof generate !== 'function' || generate.name === FASTIFY_GEN_REQ_ID) return undefined
  return generate as (this: unknown, req: IncomingMessage) => unknown
}

/** A symbol-keyed slot of an instance, its own or inherited from its parents (Object.create). */
function instanceSymbol (app: object, description: string): symbol | undefined {
  for (let o: object | null = app; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    const found = Object.getOwnPropertySymbols(o).find((s) => s.description === description)
    if (found !== undefined) return found
  }
  return undefined
}

/**
 * Sets `handler` as the not-found handler at the app's prefix, as a default: a later
 * `app.setNotFoundHandler()` may still replace it (once), as it replaces Fastify's own.
 * Returns false, setting nothing, when a handler was set there already (the user's stays).
 * Without the private flag, it is set as any handler is (a later one is refused).
 */
export function setDefaultNotFoundHandler (app: FastifyInstance, handler: (request: FastifyRequest, reply: FastifyReply) => unknown): boolean {
  const levelKey = instanceSymbol(app, NOT_FOUND_LEVEL)
  const level = levelKey === undefined ? undefined : (app as unknown as Record<symbol, object | undefined>)[levelKey]
  const canSet = level === undefined ? undefined : instanceSymbol(level, CAN_SET_NOT_FOUND)
  const slots = level as Record<symbol, unknown> | undefined
  if (canSet !== undefined && slots?.[canSet] === false) return false
  app.setNotFoundHandler(handler as never)
  if (canSet !== undefined && slots !== undefined) slots[canSet] = true
  return true
}

/**
 * The servers the app listens on besides `app.server` (Fastify's bindings of the other
 * addresses of `localhost`), once it listens; none when the slot cannot be found.
 */
export function secondaryServers (app: FastifyInstance): Server[] {
  const key = instanceSymbol(app, SERVER_BINDINGS)
  const servers = key === undefined ? undefined : (app as unknown as Record<symbol, unknown>)[key]
  return Array.isArray(servers) ? servers as Server[] : []
}

/**
 * The events Node emits on the server a connection came to, and that an application answers
 * from its listeners: a parse error (Fastify's `clientErrorHandler`), an `Expect` other than
 * 100-continue, `Expect: 100-continue`, CONNECT. ('upgrade' is forwarded by Fastify itself.)
 */
const MIRRORED_EVENTS = ['clientError', 'checkExpectation', 'checkContinue', 'connect'] as const
/**
 * The server settings Node reads for each connection or request (the timeout feature sets
 * the timeouts on `app.server` after Fastify created it, for an instance of the user's), and
 * how often it checks headersTimeout and requestTimeout.
 */
const MIRRORED_SETTINGS = ['requireHostHeader', 'headersTimeout', 'requestTimeout', 'keepAliveTimeout', 'timeout', 'maxHeadersCount', 'maxRequestsPerSocket', 'connectionsCheckingInterval'] as const

/**
 * Makes each server the app listens on besides `app.server` answer as `app.server` does:
 * its settings, and its listeners of the events above, for an event the other server has no
 * listener of its own for. Run once the app listens (onListen), when Fastify has created
 * them and every plugin has set `app.server` up; the listeners are the same functions (they
 * get the server they run for as `this`).
 */
export function mirrorServerSetup (app: FastifyInstance): void {
  const main = app.server
  for (const secondary of secondaryServers(app)) {
    if (secondary === main) continue
    for (const event of MIRRORED_EVENTS) {
      if (secondary.listenerCount(event) > 0) continue
      for (const listener of main.listeners(event)) secondary.on(event, listener as (...args: unknown[]) => void)
    }
    const from = main as unknown as Record<string, unknown>
    const to = secondary as unknown as Record<string, unknown>
    const interval = to.connectionsCheckingInterval
    for (const setting of MIRRORED_SETTINGS) {
      if (setting in from) to[setting] = from[setting]
    }
    if (to.connectionsCheckingInterval !== interval) restartConnectionsCheck(secondary)
  }
}

/**
 * Node reads a server's `connectionsCheckingInterval` once, when it starts listening (its
 * `setupConnectionsTracking` 'listening' listener): on a server already listening, a new
 * interval applies only once that listener runs again, which restarts the check.
 */
export function restartConnectionsCheck (server: Server): void {
  if (!server.listening) return
  const restart = server.listeners('listening').find((listener) => listener.name === 'setupConnectionsTracking')
  restart?.call(server)
}

/**
 * Whether Fastify answers every request itself, with a plain JSON 503, from the moment
 * `app.close()` begins (its `return503OnClosing`, true unless set to false); undefined when
 * the options cannot be found.
 */
export function answers503OnClosing (app: FastifyInstance): boolean | undefined {
  const key = instanceSymbol(app, OPTIONS)
  const options = key === undefined ? undefined : (app as unknown as Record<symbol, { return503OnClosing?: unknown } | undefined>)[key]
  if (options === undefined || options === null || typeof options !== 'object') return undefined
  return options.return503OnClosing !== false
}

/** Whether Node will keep the connection open after this response (see 8 above). */
export function keepsConnection (response: ServerResponse): boolean {
  return response.shouldKeepAlive && (response as { maxRequestsOnConnectionReached?: boolean }).maxRequestsOnConnectionReached !== true
}

/** The response under way on a connection (Node's `socket._httpMessage`), if any. */
export function responseUnderWay (socket: object): ServerResponse | undefined {
  return (socket as { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined
}

/** A route in the router: its context's config, the instance it was registered on, and its limits as Fastify holds them. */
export interface RouteInRouter {
  config: RouteConfig
  /** The instance the route was registered on (an encapsulated child's prototype chain leads to its parents). */
  server: object | undefined
  /** As `request.routeOptions` gives them: the route's own body limit or the server's, and its handler timeout (0: none). */
  bodyLimit: number | undefined
  handlerTimeout: number | undefined
}

/**
 * Every route in the router now, each once (a route whose path has an optional parameter is
 * two paths with one context); none when the router cannot be read this way (see 7 above).
 */
export function routesInRouter (app: FastifyInstance): RouteInRouter[] {
  return contextsInRouter(app).map((context) => {
    const limit = context._parserOptions?.limit
    return {
      config: context.config as RouteConfig,
      server: typeof context.server === 'object' && context.server !== null ? context.server : undefined,
      bodyLimit: typeof limit === 'number' && limit > 0 ? limit : app.initialConfig.bodyLimit,
      handlerTimeout: typeof context.handlerTimeout === 'number' ? context.handlerTimeout : undefined
    }
  })
}

interface RouteContext { config: object, server?: unknown, handlerTimeout?: unknown, _parserOptions?: { limit?: unknown }, errorHandler?: unknown }

/** The context of every route in the router now, each once (see 7 above). */
function contextsInRouter (app: FastifyInstance): RouteContext[] {
  const found = new Set<RouteContext>()
  const collect = (route: { store?: unknown } | undefined): Record<string, never> => {
    const context = route?.store as Partial<RouteContext> | undefined
    if (context !== null && typeof context === 'object' && context.config !== null && typeof context.config === 'object') found.add(context as RouteContext)
    // Nothing to print.
    return {}
  }
  const options = { includeMeta: true }
  Object.defineProperty(options, 'buildPrettyMeta', { get: () => collect, set: () => {}, enumerable: true })
  try {
    app.printRoutes(options as Parameters<FastifyInstance['printRoutes']>[0])
  } catch {
    return []
  }
  return [...found]
}

/**
 * Gives the routes already in the router that have Fastify's default error handler the
 * app's (spikard's, set just before); see 7b above. The number of routes changed.
 */
export function adoptErrorHandler (app: FastifyInstance): number {
  const key = instanceSymbol(app, ERROR_HANDLER)
  const handler = key === undefined ? undefined : (app as unknown as Record<symbol, unknown>)[key]
  if (handler === null || typeof handler !== 'object') return 0
  let changed = 0
  for (const context of contextsInRouter(app)) {
    const own = context.errorHandler
    if (own !== handler && own !== null && typeof own === 'object' && Object.getPrototypeOf(own) === Object.prototype) {
      context.errorHandler = handler
      changed++
    }
  }
  return changed
}

/** For the test that pins what this module relies on. */
export const internals = { ROUTE_CONTEXT, REQUEST_SIGNAL, NOT_FOUND_LEVEL, CAN_SET_NOT_FOUND, SERVER_BINDINGS, OPTIONS, FASTIFY_GEN_REQ_ID }
