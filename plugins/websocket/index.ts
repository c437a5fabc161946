/**
 * WebSocket routes on @fastify/websocket (ws): a route opts in with `websocket: true` and
 * its handler gets `(socket, request)`. What spikard adds:
 *
 * - the upgrade request runs through the HTTP features like any request (request id, auth,
 *   rate limit, shutdown), plus an `Origin` check and `websocket.maxConnections` open
 *   sockets per process (./upgrade.ts): a refused upgrade gets a real HTTP problem
 *   (401/403/429/503), never a 101 followed by a close. @fastify/websocket runs Fastify's
 *   lifecycle before it upgrades, and an error's reply is written to the socket as an HTTP
 *   response;
 * - validated JSON messages, error frames, binary frames refused, `socket.sendJson`, slow
 *   consumers closed with 1013, handler errors closed with 1011 (./connection.ts);
 * - a ping every `websocket.heartbeat`, and a socket that missed the previous pong terminated;
 * - rooms (`app.spikard.rooms`, ./rooms.ts);
 * - one access line per connection when it ends (instead of the upgrade's HTTP line);
 * - at shutdown (a drain hook) every open socket closed with 1001, and those still open when
 *   the budget runs out terminated.
 *
 * A WebSocket route's handler is wrapped when Fastify registers it, so it must be
 * registered once spikard has loaded (as with @fastify/websocket itself).
 */
import fp from 'fastify-plugin'
import fastifyWebsocketModule, { type WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest, RouteOptions } from 'fastify'
import type { WebSocket } from 'ws'
import { SpikardConfigError } from '../../src/errors.js'
import { decide, routeName } from '../../src/route-decision.js'
import type { DrainContext } from '../../src/lifecycle.js'
import { resolveWebSocketOptions, type WebSocketOptions } from './options.js'
import { isWebSocketRoute, websocketRoute, type WebSocketRouteOptions } from './messages.js'
import { compileMessages } from './validate.js'
import { loadSchemaCompiler } from '../../src/ajv.js'
import { CLOSE, Connection, kUpgradeOnly, kWebSocket, type SocketPolicy } from './connection.js'
import { Rooms } from './rooms.js'
import { connectionLogger, guardUpgrades } from './upgrade.js'
import { responseSent } from '../tasks/state.js'
export type {} from './ws-types.cjs'

export { WebSocketMessageError } from './connection.js'
export type { WebSocketRouteConfig } from './messages.js'
export type { Rooms, RoomAdapter } from './rooms.js'

/** The package's module.exports: @fastify/websocket wrapped with fastify-plugin, so its hooks reach every route. */
const fastifyWebsocket = fastifyWebsocketModule as unknown as FastifyPluginAsync<WebsocketPluginOptions>

// `socket.sendJson` is declared for ws's CommonJS types, the ones @fastify/websocket's
// handler socket has, in ./ws-types.cts; and here for the ES module view (`import type { WebSocket } from 'ws'`).
declare module 'ws' {
  interface WebSocket {
    /** See ./ws-types.cts. */
    sendJson: (value: unknown) => void
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A WebSocket route's messages and options (plugins/websocket/messages.ts). */
    websocket?: import('./messages.js').WebSocketRouteConfig & object // `& object`: see RouteAuth (plugins/auth/route.ts)
  }
}

async function spikardWebsocket (app: FastifyInstance, options: WebSocketOptions): Promise<void> {
  const resolved = resolveWebSocketOptions(options)
  const { heartbeat, maxPayload, maxBuffered } = resolved
  const validating = process.env.NODE_ENV !== 'production'
  const compiler = await loadSchemaCompiler()
  // Messages are checked up to their first error first, with schemas compiled at startup;
  // `compiler`, which lists every error, compiles a type's schema when an invalid message of
  // that type first needs it (./validate.ts).
  const firstErrors = await loadSchemaCompiler({ allErrors: false })
  const sockets = new Set<WebSocket>()
  const connections = new WeakMap<WebSocket, Connection>()

  const rooms = new Rooms(sockets, (member, message, frame) => {
    const socket = member as WebSocket
    const connection = connections.get(socket)
    if (connection === undefined || socket.readyState !== socket.OPEN) return
    if (typeof message === 'string' || Buffer.isBuffer(message)) {
      socket.send(message)
      return
    }
    // A message this socket's route may not send (outside production) is that socket's
    // handler error (1011); the room's other members still get it, and publish resolves.
    try {
      connection.sendJson(message, frame)
    } catch (error) {
      connection.fail(error)
    }
  })
  Object.defineProperty(app.spikard, 'rooms', { value: rooms, enumerable: true, configurable: true })

  /** The route's policy, from its declaration; a SpikardConfigError naming the route for anything wrong. */
  function policyOf (instance: FastifyInstance, route: RouteOptions): SocketPolicy {
    const name = routeName(route)
    let declared: ReturnType<typeof websocketRoute>
    try {
      declared = websocketRoute(route as WebSocketRouteOptions)
    } catch (error) {
      throw new SpikardConfigError([(error as Error).message], `route ${name}`)
    }
    const config = (route.config as { websocket?: { closeOnInvalid?: unknown } } | undefined)?.websocket ?? {}
    if (declared === undefined) throw new Error('unreachable: not a WebSocket route')
    const compile = (schemas: Record<string, unknown> | undefined, where: string) => {
      if (schemas === undefined) return undefined
      if (compiler === undefined || firstErrors === undefined) throw new SpikardConfigError([`${where}: messages cannot be validated: the ajv package cannot be loaded`], `route ${name}`)
      return compileMessages({ all: compiler, first: firstErrors }, instance, schemas, where, name)
    }
    return {
      route: name,
      receive: compile(declared.receive, 'config.websocket.receive'),
      send: validating ? compile(declared.send, 'config.websocket.send') : undefined,
      binary: declared.binary,
      closeOnInvalid: config.closeOnInvalid === true
    }
  }

  let drainHook: (() => void) | undefined
  app.addHook('onRoute', function spikardWebSocketRoute (this: FastifyInstance, route) {
    const config = (route.config as { websocket?: unknown } | undefined)?.websocket
    if (!isWebSocketRoute(route as WebSocketRouteOptions)) {
      if (config !== undefined) throw new SpikardConfigError(['config.websocket is set but the route has no `websocket: true`; add it or remove config.websocket'], `route ${routeName(route)}`)
      return
    }
    // @fastify/websocket's other form: `handler` answers plain requests, `wsHandler` upgrades.
    const both = typeof (route as WebSocketRouteOptions).wsHandler === 'function'
    // With `websocket: true`, @fastify/websocket answers a plain request (and the HEAD twin
    // of a GET route) with an empty 404: ./upgrade.ts refuses it with a 426 problem first.
    if (!both) decide(route, kUpgradeOnly, true)
    if ([route.method].flat().every((m) => m === 'HEAD')) return
    drainHook ??= app.spikard.onDrain('websocket', drain)
    const policy = policyOf(this, route)
    decide(route, kWebSocket, policy)
    const key = both ? 'wsHandler' : 'handler'
    const handler = (route as unknown as Record<typeof key, (this: FastifyInstance, socket: WebSocket, request: FastifyRequest) => unknown>)[key]
    // Runs as @fastify/websocket's wsHandler once the socket is open.
    ;(route as unknown as Record<typeof key, unknown>)[key] = function spikardWebSocketHandler (this: FastifyInstance, socket: WebSocket, request: FastifyRequest) {
      const connection = open(socket, request, policy)
      // The 101 is written: the request's background tasks run now (no onResponse will come).
      responseSent(request)
      try {
        const result = handler.call(this, socket, request)
        // A thenable, not always a Promise: the timeout feature wraps every route's handler.
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, (error: unknown) => { connection.fail(error) })
        }
      } catch (error) {
        connection.fail(error)
      }
    } as unknown as RouteOptions['handler']
  })

  const accessLine = connectionLogger(app)
  function open (socket: WebSocket, request: FastifyRequest, policy: SocketPolicy): Connection {
    const connection = new Connection(socket, request, policy, { maxBuffered })
    socket.sendJson = (value) => { connection.sendJson(value) }
    sockets.add(socket)
    connections.set(socket, connection)
    socket.once('close', (code: number) => {
      sockets.delete(socket)
      rooms.leaveAll(socket)
      accessLine?.(request, connection.summary(code))
    })
    return connection
  }

  await app.register(fastifyWebsocket, {
    options: { maxPayload },
    // Errors on an open socket. The handler's own are caught above (1011); ws's protocol
    // errors (too big, invalid UTF-8, bad frame) close the socket with their code themselves.
    errorHandler (error, socket, request) {
      const code = (error as { code?: unknown }).code
      if (typeof code === 'string' && code.startsWith('WS_ERR_')) {
        request.log.info({ err: { code, message: error.message } }, 'websocket: the client broke the protocol; closed')
        return
      }
      const connection = connections.get(socket as unknown as WebSocket)
      if (connection !== undefined) connection.fail(error)
      else socket.terminate()
    }
  })

  guardUpgrades(app, resolved)

  const timer = setInterval(function spikardWebSocketHeartbeat () {
    for (const socket of sockets) {
      const connection = connections.get(socket)
      if (connection === undefined) continue
      if (!connection.alive) {
        connection.request.log.info('websocket: no pong to the last ping; terminating the socket')
        socket.terminate()
        continue
      }
      connection.alive = false
      socket.ping()
    }
  }, heartbeat).unref()
  app.addHook('onClose', async () => {
    clearInterval(timer)
    try {
      await rooms.close()
    } catch (error) {
      app.log.error({ err: error }, 'websocket: the room adapter failed to close')
    }
  })

  /** At shutdown: every open socket closed with 1001; those still open when the budget runs out are terminated. */
  async function drain ({ signal }: DrainContext): Promise<void> {
    if (sockets.size === 0) return
    const all = [...sockets]
    app.log.info({ sockets: all.length }, 'websocket: closing open sockets (1001)')
    const closed = Promise.all(all.map(async (socket) => {
      if (socket.readyState === socket.CLOSED) return
      await new Promise((resolve) => socket.once('close', resolve))
    }))
    for (const socket of all) socket.close(CLOSE.goingAway, 'server shutting down')
    const cut = (): void => { for (const socket of all) socket.terminate() }
    signal.addEventListener('abort', cut, { once: true })
    try {
      await closed
    } finally {
      signal.removeEventListener('abort', cut)
    }
  }
}

export default fp(spikardWebsocket, { name: 'spikard-websocket', fastify: '5.x', decorators: { fastify: ['spikard'] } })
