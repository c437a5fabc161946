/**
 * `request.log` without a pino child per request. Fastify gives every request its own child
 * logger, whose lines carry the request id; building one (pino's `child()`: an object, its
 * formatters, the id serialized into its bindings) costs about 0.5 µs, on every request,
 * although most requests write one line only: spikard's access line, which can carry the id
 * itself. The factory here gives each request an object whose prototype is the server
 * logger, so it is a pino logger with everything pino and Fastify read on it; only its
 * bindings (pino's `chindings`, the serialized id) are worked out when something logs
 * through it. Routes with their own log level or serializers get pino's child, as before.
 *
 * No library does this: pino's children are eager by design, and Fastify's hook for it is
 * this factory (`childLoggerFactory`, a public option). The one pino internal read is the
 * bindings' symbol, which pino exports (`pino.symbols.chindingsSym`); test/request-logger.test.ts
 * checks the lines against pino's own children, so a pino release that changes how bindings
 * are kept fails there.
 */
import pino from 'pino'
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'

const { chindingsSym } = pino.symbols
/** The id a request logger binds. */
const kRequestId = Symbol('spikard.requestLogger.id')
/** On the prototype of a server logger's request loggers: that server logger. */
const kServerLogger = Symbol('spikard.requestLogger.server')

type Logger = FastifyBaseLogger & Record<symbol, unknown>
type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>

/** The label Fastify binds the request id under (its default `requestIdLogLabel`, which spikard keeps). */
const LABEL = 'reqId'

/** Per server logger, the prototype of its request loggers. */
const prototypes = new WeakMap<object, object>()

function prototypeFor (server: Logger): object {
  let proto = prototypes.get(server)
  if (proto === undefined) {
    proto = Object.create(server, {
      [kServerLogger]: { value: server },
      // pino reads a logger's bindings from here when it writes a line or makes a child,
      // and assigns them in `setBindings()` and in each child it makes.
      [chindingsSym]: {
        get (this: Logger): string {
          return `${server[chindingsSym] as string},"${LABEL}":${JSON.stringify(this[kRequestId])}`
        },
        set (this: Logger, value: string) {
          Object.defineProperty(this, chindingsSym, { value, writable: true, enumerable: true, configurable: true })
        }
      }
    }) as object
    prototypes.set(server, proto)
  }
  return proto
}

/** Fastify's `childLoggerFactory`: the request's logger, pino's child where a route changes how it logs. */
export const requestLoggerFactory: ChildLoggerFactory = function requestLogger (logger, bindings, options) {
  const id: unknown = bindings[LABEL]
  if (typeof id !== 'string' || options.level !== undefined || options.serializers !== undefined) {
    return logger.child(bindings, options)
  }
  const log = Object.create(prototypeFor(logger as Logger)) as Logger
  log[kRequestId] = id
  return log
}

/**
 * The server logger when `log` is a request logger from the factory above that nothing has
 * changed (no `setBindings`, no level of its own): a line written through it with the
 * request id among its fields is the same line, without working out the logger's bindings.
 * Otherwise undefined: write through `log` itself.
 */
export function serverLoggerOf (log: FastifyBaseLogger, level: string): FastifyBaseLogger | undefined {
  const proto = Object.getPrototypeOf(log) as Logger | null
  if (proto === null || !Object.hasOwn(proto, kServerLogger)) return undefined
  const server = proto[kServerLogger] as Logger
  return !Object.hasOwn(log, chindingsSym) && (log as Logger)[level as 'info'] === server[level as 'info'] ? server : undefined
}
