/**
 * createServer(config): a whole config (server settings, feature options, the user's
 * routes module) to a Fastify instance ready to listen. The CLI and the tests use it.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, Server } from 'node:http'
import type { Socket } from 'node:net'
import { resolve } from 'node:path'
import Fastify, { LogController, type FastifyInstance, type FastifyHttpOptions, type FastifyPluginAsync } from 'fastify'
import spikard from './spikard.js'
import { errors, SpikardConfigError } from './errors.js'
import { pathOf, rawProblemResponse, sendProblem } from './problem-details.js'
import { requestIdFor, responseUnderWay } from './fastify-internals.js'
import { resolveConfig, type SpikardConfig } from './config/schema.js'
import { features, type FeatureName } from './options.js'
import type { FeatureDefinition } from './feature.js'
import { logDestination } from './log-destination.js'
import { loggerOptions } from './logger.js'
import { guarded, loadAppModule } from './app-module.js'

/** A whole config; in code, `app` may also be the routes plugin itself. */
export type CreateServerConfig = Omit<SpikardConfig, 'app'> & { app?: string | FastifyPluginAsync }

export interface CreateServerOptions {
  /** Directory `config.app` is resolved against (the config file's directory). Default: the working directory. */
  baseDir?: string
  /** Where log lines go. Default: stdout. Ignored when `server.logger.pretty` is on. */
  logStream?: NodeJS.WritableStream
}

/**
 * The Fastify factory options spikard relies on. createServer uses them; pass them to
 * `Fastify()` yourself when you register the plugin on your own instance:
 * one access line instead of Fastify's two, secrets redacted from every log line,
 * request ids validated by spikard, per-field validation errors, and problem details
 * even for requests Fastify rejects before routing.
 */
export function spikardFastifyOptions (config: SpikardConfig = {}, logStream?: NodeJS.WritableStream, baseDir = process.cwd()): FastifyHttpOptions<Server> {
  const resolved = resolveConfig(config)
  const { server, requestId } = resolved
  const stream = logStream ?? (server.logger.pretty ? undefined : logDestination(server.logger, baseDir))
  const idHeader = requestId === false ? undefined : requestId.header.toLowerCase()
  // What the features need from the factory: the body limit, Node's server timeouts, a pluginTimeout above the drain's budget.
  const fromFeatures = Object.entries(features).map(([name, feature]: [string, FeatureDefinition]) => {
    const options = resolved[name as FeatureName]
    return options === false ? feature.factoryWhenOff?.() : feature.factory?.(options)
  })
  return {
    ...Object.assign({}, ...fromFeatures),
    logger: loggerOptions(server.logger, resolved, stream),
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    // Requests during app.close() reach spikard (shutdown answers them with a 503 problem,
    // readiness keeps answering); Fastify's own 503 is plain JSON and skips the pre-close delay.
    return503OnClosing: false,
    // Fastify 5.12 turns a numeric trustProxy into "trust nothing"; a hop count is
    // expressed as a function instead (safe only when clients cannot bypass the proxies).
    trustProxy: typeof server.trustProxy === 'number'
      ? ((hops: number) => (_address: string, hop: number) => hop < hops)(server.trustProxy)
      : server.trustProxy,
    ajv: { customOptions: { allErrors: true } },
    // Requests Fastify rejects before routing (a malformed URL, an over-long parameter):
    // no route hooks run for them, so the access line is written here (and the request id
    // and CORS headers by sendProblem, as for every refusal before their hooks).
    frameworkErrors (error, request, reply) {
      const accessLog = request.server.spikardAccessLog
      if (accessLog !== undefined) reply.raw.once('finish', () => accessLog(request, reply))
      // An upgrade's socket (a malformed URL in a WebSocket upgrade): no HTTP parser reads it
      // any more and no route hook runs to close it (plugins/websocket/upgrade.ts), so the
      // problem says `Connection: close` and the socket is ended once it is written.
      if ((request.raw as IncomingMessage & { upgrade?: boolean }).upgrade === true) {
        const socket = request.raw.socket
        reply.raw.shouldKeepAlive = false
        reply.raw.once('finish', () => { socket?.end() })
      }
      sendProblem(reply, error)
    },
    // Requests Node's HTTP parser rejects (a malformed request line or header, headers too large).
    clientErrorHandler (this: FastifyInstance, error: Error & { code?: string }, socket: Socket) {
      if (!socket.writable || error.code === 'ECONNRESET') return socket.destroy()
      // Node's in-flight response of the socket (src/fastify-internals.ts). Begun (a stream, and garbage
      // pipelined after its request): an answer now would land inside its body, and Node's
      // own handler closes the connection then too. Not begun: the answer is its request's
      // (a body too slow, or malformed chunks), with that request's id and path.
      const inFlight = responseUnderWay(socket)
      if (inFlight?.headersSent === true) return socket.destroy()
      const request = inFlight?.req
      const e = error.code === 'HPE_HEADER_OVERFLOW'
        ? new errors.SPK_ERR_HEADERS_TOO_LARGE()
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? new errors.SPK_ERR_REQUEST_TIMEOUT('The request took too long to arrive')
          : new errors.SPK_ERR_BAD_REQUEST('The request could not be parsed')
      const id = request === undefined ? randomUUID() : requestIdFor(this, request)
      // No `instance` when the request never parsed far enough to have a path.
      const path = request === undefined ? undefined : pathOf(request.url ?? '/')
      const { status, response } = rawProblemResponse(e, id, idHeader, path)
      // Only Node's error code is logged: the error also carries the raw bytes received.
      this.log.info({ reqId: id, status, parserError: error.code, ...(path === undefined ? {} : { method: request?.method, path }), remoteAddress: socket.remoteAddress }, 'request rejected')
      socket.end(response)
    }
  }
}

export async function createServer (config: CreateServerConfig = {}, options: CreateServerOptions = {}): Promise<FastifyInstance> {
  const { app: routes, ...rest } = config
  const resolved = resolveConfig(typeof routes === 'function' ? rest : config)
  const app = fastify(spikardFastifyOptions(resolved, options.logStream, options.baseDir))
  try {
    const featureOptions = Object.fromEntries(Object.entries(features).map(([name, feature]: [string, FeatureDefinition]) => {
      const given = resolved[name as FeatureName]
      return [name, given === false || feature.besideConfig === undefined ? given : feature.besideConfig(given, options.baseDir ?? process.cwd())]
    }))
    await app.register(spikard, featureOptions)
    app.spikard.trustProxy = resolved.server.trustProxy
    if (typeof routes === 'function') await app.register(guarded(routes))
    else if (resolved.app !== undefined) await app.register(guarded(await loadAppModule(resolve(options.baseDir ?? process.cwd(), resolved.app))))
  } catch (error) {
    await app.close().catch(() => {})
    throw error
  }
  listenWhereConfigured(app, resolved.server.host, resolved.server.port)
  return app
}

/**
 * Fastify compiles the addresses of `server.trustProxy` as the instance is created: an
 * address it cannot read is the config's problem, named by its key, not a bare TypeError.
 */
function fastify (options: FastifyHttpOptions<Server>): FastifyInstance {
  try {
    return Fastify(options)
  } catch (error) {
    const { trustProxy } = options
    if ((typeof trustProxy !== 'string' && !Array.isArray(trustProxy)) || !(error instanceof TypeError) || !/^invalid (IP address|range)/.test(error.message)) throw error
    throw new SpikardConfigError([`server.trustProxy: expected IP addresses or CIDR ranges (or loopback, linklocal, uniquelocal), found ${error.message.replace(/^invalid/, 'an invalid')}`], 'config')
  }
}

/**
 * `app.listen()` listens at `server.host` and `server.port`, as the config says; what a call
 * passes still wins (`app.listen({ port: 0 })`). Fastify's own defaults (localhost:3000)
 * would otherwise ignore the config the server was built from. A call with a Unix socket
 * `path` is passed on as it is: Node takes a port over a path, so the configured one would
 * have won.
 */
function listenWhereConfigured (app: FastifyInstance, host: string, port: number): void {
  const listen = app.listen.bind(app) as (...args: unknown[]) => unknown
  app.listen = ((options?: unknown, ...rest: unknown[]) => typeof options === 'function'
    ? listen({ host, port }, options)
    : (options as { path?: unknown } | undefined)?.path !== undefined
        ? listen(options, ...rest)
        : listen({ host, port, ...(options as object | undefined) }, ...rest)) as FastifyInstance['listen']
}
