/**
 * Server-Sent Events on @fastify/sse: a route opts in with its `sse` option (`sse: true`,
 * `'only'`, `'dual'`, `'manual'` or an object, as @fastify/sse defines it) and sends with
 * `reply.sse.send(event | string | asyncIterable | Readable)`. What spikard adds:
 *
 * - every event checked and made safe (./events.ts): data strings as the text, objects as
 *   JSON, CR and LF unable to inject a field or an event;
 * - a comment line every `sse.keepAlive` (@fastify/sse's heartbeat): proxies keep the stream
 *   open, and a client that went away is noticed at the latest by that write;
 * - `sse.maxConnections` open streams per process, then a 503 problem
 *   (SPK_ERR_SSE_TOO_MANY_STREAMS) before anything is written;
 * - `sse.maxBuffered`: a client that does not read has its stream closed once that much
 *   waits unsent, rather than the server holding every event sent to it (./stream.ts);
 * - at shutdown (a drain hook) each open stream gets `sse.shutdownEvent` and is closed,
 *   within the drain budget; what is left when it runs out is cut;
 * - `schema.sse`, the schema of a route's events (./events.ts), validated outside production;
 * - `request.signal` aborted when the stream closes, and the reply hijacked once it opens,
 *   so the handler timeout and Fastify leave an open stream alone (./stream.ts);
 * - `sse: 'only'` negotiated here, so a client refusing text/event-stream gets a 406
 *   problem rather than @fastify/sse's own JSON body.
 *
 * Never compressed: @fastify/sse writes to the response itself, so no onSend hook (the
 * compression feature's) sees an event stream. Auth and rate limits run in onRequest, before
 * the handler opens the stream: their 401 and 429 problems come before any event.
 * The route's handler is wrapped when Fastify registers it, so an SSE route must be
 * registered once spikard has loaded (as @fastify/sse itself requires). The drain hook is
 * registered with the first SSE route: an app without one has nothing to drain.
 */
import fp from 'fastify-plugin'
import fastifySseModule, { type SSEPluginOptions } from '@fastify/sse'
import type { FastifyInstance, FastifyPluginAsync, RouteHandlerMethod, RouteOptions } from 'fastify'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { decide, routeName } from '../../src/route-decision.js'
import { resolveSseOptions, type SseOptions } from './options.js'
import { acceptsEventStream, eventSchemas, kDeclaredKind, sseRoute, type SseEvent } from './events.js'
import { OpenStream, type Validate } from './stream.js'
import { loadSchemaCompiler } from '../../src/ajv.js'
import type { DrainContext } from '../../src/lifecycle.js'
import { varyWith } from '../../src/vary.js'

export type { SseEvent, SseChunk } from './events.js'

/**
 * The package's module.exports: @fastify/sse wrapped with fastify-plugin, so its onRoute
 * hook reaches every route. (Its `.default` and `.fastifySSE` are the bare function, whose
 * hook would stay inside its own context; its types call the namespace the default.)
 */
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync<SSEPluginOptions>

declare module 'fastify' {
  interface FastifySchema {
    /**
     * The route's events (a route with `sse`): a JSON Schema the `data` of every event
     * matches, or `{ events: { <name>: <schema> } }` by event name (`message` for events
     * sent without one). Validated outside production; shown in the API documents.
     */
    sse?: unknown
  }
}

/** Thrown by `reply.sse.send` outside production for an event that does not match the route's `schema.sse`. */
export class SseEventError extends Error {
  constructor (message: string, readonly route: string, readonly event: string) {
    super(message)
    this.name = 'SseEventError'
  }
}

/** The error of a handler reading reply.sse's methods while reply.sse is undefined. */
const USES_REPLY_SSE = /of undefined \(reading '(?:send|stream|keepAlive|close|sendHeaders|replay|onClose|lastEventId|isConnected|shouldKeepAlive)'\)/

async function spikardSse (app: FastifyInstance, options: SseOptions): Promise<void> {
  const { keepAlive, maxConnections, maxBuffered, shutdownEvent } = resolveSseOptions(options)
  const streams = new Set<OpenStream>()
  const validating = process.env.NODE_ENV !== 'production'
  const compiler = validating ? await loadSchemaCompiler() : undefined

  /** The route's event validator, compiled at registration: an invalid schema fails at ready(). */
  function validatorOf (instance: FastifyInstance, route: RouteOptions): Validate | undefined {
    const name = routeName(route)
    let schemas: Record<string, unknown> | undefined
    try {
      schemas = eventSchemas((route.schema as { sse?: unknown } | undefined)?.sse)
    } catch (error) {
      throw new SpikardConfigError([(error as Error).message], `route ${name}`)
    }
    if (schemas === undefined || !validating) return undefined
    if (compiler === undefined) {
      app.log.warn({ route: name }, 'sse: schema.sse is not validated: the ajv package cannot be loaded')
      return undefined
    }
    const compiled = compiler.compile(instance, schemas, (event, error) =>
      new SpikardConfigError([`schema.sse${event === '*' ? '' : `.events.${event}`}: ${error.message}`], `route ${name}`))
    return (event: SseEvent) => {
      const type = event.event ?? 'message'
      const check = compiled.get(type) ?? compiled.get('*')
      if (check === undefined) {
        throw new SseEventError(`sse: event "${type}" on ${name} is not declared in schema.sse.events (declared: ${[...compiled.keys()].join(', ')})`, name, type)
      }
      if (!check(event.data)) {
        throw new SseEventError(`sse: event "${type}" on ${name} does not match schema.sse: ${compiler.ajv.errorsText(check.errors, { dataVar: 'data' })}`, name, type)
      }
    }
  }

  let drainHook: (() => void) | undefined
  app.addHook('onRoute', function spikardSseRoute (this: FastifyInstance, route) {
    if (route.sse === undefined || route.sse === false) return
    // An app without event-stream routes has nothing to drain.
    drainHook ??= app.spikard.onDrain('sse', drain)
    const validate = validatorOf(this, route)
    const handler = route.handler as RouteHandlerMethod
    const name = routeName(route)
    const own = typeof route.sse === 'object' && route.sse !== null ? route.sse.serializer : undefined
    const serializer = typeof own === 'function' ? own : undefined
    // @fastify/sse answers a client that refuses an `'only'` route's stream with a JSON body
    // of its own; spikard negotiates instead (the route runs as `'manual'`), so it is a
    // 406 problem like every other error.
    const only = route.sse === 'only' || (typeof route.sse === 'object' && route.sse !== null && route.sse.kind === 'only')
    if (only) {
      decide(route, kDeclaredKind, 'only')
      route.sse = typeof route.sse === 'object' && route.sse !== null ? { ...route.sse, kind: 'manual' } : 'manual'
    }
    // Runs inside @fastify/sse's handler (its onRoute hook comes after this one), with
    // `reply.sse` set when the request is served as an event stream.
    const kind = sseRoute(route)?.kind
    const legacy = kind === 'legacy'
    // What these kinds answer depends on Accept (a stream, JSON, a 406 problem): a cache must
    // keep them apart (RFC 9110 §12.5.5). A 'manual' handler chooses for itself.
    const byAccept = kind !== 'manual'
    let warned = false
    route.handler = async function spikardSseHandler (this: FastifyInstance, request, reply) {
      if (byAccept) reply.header('vary', varyWith(reply.getHeader('vary'), 'Accept'))
      const sse = reply.sse as ConstructorParameters<typeof OpenStream>[2] | undefined
      if (sse === undefined && !legacy) return await handler.call(this, request, reply)
      if (sse === undefined) {
        // `sse: true` streams only to a request that names text/event-stream in Accept
        // (@fastify/sse's rule): for curl's `*/*`, or no Accept, reply.sse is undefined, and a
        // handler that uses it would fail as a 500. A 406 problem says what to send instead.
        try {
          return await handler.call(this, request, reply)
        } catch (error) {
          if (!(error instanceof TypeError) || !USES_REPLY_SSE.test(error.message)) throw error
          if (!warned) {
            warned = true
            request.log.warn({ route: name }, "sse: a request without 'Accept: text/event-stream' reached a route with sse: true, which streams only to those that ask; register it with sse: 'only' to stream to any client that does not refuse it")
          }
          throw Object.assign(new Error(`${name} sends text/event-stream to requests that ask for it: send Accept: text/event-stream`), { statusCode: 406 })
        }
      }
      if (only && !acceptsEventStream(request.headers.accept)) {
        throw Object.assign(new Error(`${name} only sends text/event-stream, which the request's Accept header excludes`), { statusCode: 406 })
      }
      // HEAD (Fastify adds one for each GET route): Node writes no body for it and holds the
      // head until the response ends, so the client never got an answer while the handler
      // streamed to nobody, holding a place in maxConnections until the client gave up.
      if (request.method === 'HEAD') return await reply.type('text/event-stream').header('cache-control', 'no-cache').send()
      if (streams.size >= maxConnections) throw new errors.SPK_ERR_SSE_TOO_MANY_STREAMS(maxConnections)
      const stream = new OpenStream(request, reply, sse, validate, serializer, maxBuffered)
      streams.add(stream)
      void stream.gone.then(() => {
        streams.delete(stream)
        // Closed once open but never ended (the client left, or it was cut): no onResponse runs.
        if (stream.committed && !reply.raw.writableFinished) app.spikardAccessLog?.(request, reply, true)
      })
      const result: unknown = await handler.call(this, request, reply)
      // Kept open with nothing sent yet: commit the stream now, or Fastify would answer
      // the request with an empty body and end it. Node holds a head written by writeHead
      // until the first body write: flushed, so the client's EventSource opens now rather
      // than at the first event or keep-alive.
      if (sse.shouldKeepAlive && sse.isConnected && !stream.committed) {
        sse.sendHeaders()
        reply.raw.flushHeaders()
      }
      return result
    }
  })
  await app.register(fastifySse, { heartbeatInterval: keepAlive })

  /** At shutdown: each open stream gets the final event and is closed; what is left when the budget runs out is cut. */
  async function drain ({ signal }: DrainContext): Promise<void> {
    if (streams.size === 0) return
    const open = [...streams]
    app.log.info({ streams: open.length }, 'sse: closing open event streams')
    const event = shutdownEvent === false ? false : { event: shutdownEvent.event, data: shutdownEvent.data, retry: shutdownEvent.retry }
    const cut = (): void => { for (const stream of open) stream.reply.raw.destroy() }
    signal.addEventListener('abort', cut, { once: true })
    try {
      await Promise.all(open.map(async (stream) => {
        // A client that reads nothing holds the final event back: cut at the budget's end.
        await Promise.race([stream.finish(event).catch((error: unknown) => {
          stream.request.log.warn({ err: error }, 'sse: could not send the shutdown event')
        }), stream.gone])
        await stream.gone
      }))
    } finally {
      signal.removeEventListener('abort', cut)
    }
  }
}

export default fp(spikardSse, { name: 'spikard-sse', fastify: '5.x', decorators: { fastify: ['spikard'] } })
