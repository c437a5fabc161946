/**
 * Streamed responses. What Fastify 5.12 already does, and is left to it:
 *
 * - a Node Readable is piped to the response with backpressure and destroyed when the
 *   client goes away; a web ReadableStream is read chunk by chunk, waiting for `drain`,
 *   and cancelled when the client goes away; a fetch Response sends its body so;
 * - an error before the first chunk goes to the error handler (a problem response); an
 *   error after it destroys the response, so no terminating chunk is sent.
 *
 * What it does not, and this feature adds:
 *
 * - an async iterable (a generator) is not a stream to Fastify: without a Content-Type it
 *   is serialized as JSON (`{}`), with one (`text/csv`) it fails with
 *   FST_ERR_REP_INVALID_PAYLOAD_TYPE. It becomes a byte Readable (iterable.ts), which asks
 *   for the next item only when the previous ones are taken, and calls the iterator's
 *   `return()` when destroyed, so a generator's `finally` runs when the client goes away;
 * - a web ReadableStream (or a Response's body) becomes a Node Readable (`Readable.fromWeb`),
 *   so every stream can be failed the same way before its first byte (the timeout, a
 *   shutdown): Fastify holds the web stream's reader, nothing else can make it fail;
 * - the error after the first chunk is logged, once, with the request id (spikard's server
 *   turns Fastify's request logging, which held that line, off);
 * - the bytes sent and the abort reach the access line; the handler timeout runs to the
 *   first byte; `idleTimeout`; the cut at shutdown, logged (response.ts);
 * - HEAD: nothing is read (Fastify reads a stream to its end and fails on an iterable);
 * - `ndjson()` (ndjson.ts) sets its content type, `fileStream()` (file.ts) its length.
 */
import { performance } from 'node:perf_hooks'
import { Readable } from 'node:stream'
import type { ReadableStream as WebReadableStream } from 'node:stream/web'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errors } from '../../src/errors.js'
import { LinkedList } from '../../src/linked-list.js'
import { resolveStreamOptions, type StreamOptions } from './options.js'
import { copyResponseHead, isStreamPayload, kStreamed, responseStarted } from './state.js'
import { StreamedResponse, type Streams } from './response.js'
import { kContentType } from './ndjson.js'
import { fileLengthOf } from './file.js'
import { IterableReadable } from './iterable.js'

/** Where in the time left at shutdown the open streams are cut: the rest is for the close. */
const SHUTDOWN_CUT_AT = 0.9

/** Marks a stream made in preSerialization, whose reply has the pass-through serializer. */
const kSerialized = Symbol('spikard.stream.serialized')

type Tracked = FastifyRequest & { [kStreamed]?: StreamedResponse | null }

async function spikardStream (app: FastifyInstance, options: StreamOptions): Promise<void> {
  const { idleTimeout } = resolveStreamOptions(options)
  const open = new LinkedList<StreamedResponse>()
  let waiting: Array<() => void> = []
  /** When a shutdown cuts the open streams (performance.now()); from then a stream handed over gets a 503 problem. */
  let cutAt: number | undefined
  const streams: Streams = {
    open,
    idleTimeout,
    onEmpty: () => { for (const resolve of waiting.splice(0)) resolve() },
    get accessLog () { return app.spikardAccessLog }
  }
  app.decorateRequest(kStreamed, null)

  // An async iterable without a Content-Type, or with a JSON one, would be serialized:
  // it is sent as a stream instead, with the type Fastify already chose for it.
  app.addHook('preSerialization', function spikardStreamIterable (request, reply, payload, done) {
    if (payload === null || typeof payload !== 'object' || typeof (payload as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') return done(null, payload)
    reply.serializer(passThrough)
    const stream = request.method === 'HEAD' ? unstarted(payload as AsyncIterable<unknown>) : new IterableReadable(payload as AsyncIterable<unknown>)
    done(null, Object.assign(stream, { [kSerialized]: true }))
  })

  app.addHook('onSend', function spikardStream (request, reply, payload, done) {
    const previous = (request as Tracked)[kStreamed]
    if (previous != null) { // undefined in a context created before this plugin decorated requests
      // A stream of this reply failed before its first byte; this is the error handler's answer.
      previous.release()
      ;(request as Tracked)[kStreamed] = null
    }
    if (!isStreamPayload(payload)) return done(null, payload)
    // The pass-through serializer of preSerialization has been used: an error answer that
    // follows must be serialized as usual.
    if ((payload as { [kSerialized]?: true })[kSerialized] === true) reply.serializer(null as unknown as typeof passThrough)
    // A fileStream(): its Content-Length once the file is open. A file that cannot be opened
    // is answered from here (the stream's own 'error' comes first, before the pipe listens).
    const length = fileLengthOf(payload)
    if (length === undefined) return handOver(request, reply, payload, done)
    const file = payload as Readable
    const reported = (): void => {}
    file.on('error', reported)
    length.then((bytes) => {
      file.off('error', reported)
      // Answered while the file was opening (the handler timeout): this send is over.
      if (reply.raw.headersSent) return file.destroy()
      if (bytes !== undefined && !reply.hasHeader('content-length')) reply.header('content-length', bytes)
      handOver(request, reply, file, done)
    }, (error: Error) => { if (!reply.raw.headersSent) done(error) })
  })

  function handOver (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: Error | null, payload?: unknown) => void): void {
    if (request.method === 'HEAD' || reply.statusCode === 204 || reply.statusCode === 304) {
      responseStarted(request)
      // Nothing is read for a HEAD. Fastify would read a stream to its end, as fast as its
      // source goes (a 1 GiB download produced in full for no body, an endless one holding
      // the connection until the client leaves), and cannot send an iterable at all. The
      // response gets the status and headers a GET would; the source is closed unread (a
      // generator without running). Nor for a 204 or 304, whose body Node drops: an endless
      // source was read for ever, long after the response had ended.
      if (isIterableOnly(payload)) return done(null, unstarted(payload as AsyncIterable<unknown>))
      const unread = withType(reply, toReadable(reply, payload))
      unread.on('error', (error) => { request.log.error({ err: error }, `a stream closed unread (${request.method === 'HEAD' ? 'HEAD' : reply.statusCode}) failed`) })
      unread.destroy()
      return done(null, Readable.from([]))
    }
    const source = withType(reply, toReadable(reply, payload))
    if (reply.raw.destroyed) {
      // The client went away while the handler worked.
      source.destroy()
      responseStarted(request)
      return done(null, source)
    }
    const left = cutAt === undefined ? Infinity : cutAt - performance.now()
    if (left <= 0) {
      source.destroy()
      return done(new errors.SPK_ERR_SHUTTING_DOWN())
    }
    if (!drainHook) onFirstStream()
    const streamed = new StreamedResponse(request, reply, source, streams)
    ;(request as Tracked)[kStreamed] = streamed
    // Handed over during a shutdown: it gets the same time as the others.
    if (left !== Infinity) setTimeout(() => streamed.cutOff('shutdown'), left).unref()
    done(null, source)
  }

  // At shutdown the open streams, and those handed over meanwhile, get what is left of the
  // budget (but a tenth, for the close), then each is cut and logged. Registered with the
  // first stream, so an app that never streams has no drain hook to run or log. A first
  // stream handed over once the server is closing (drain hooks already running) is cut with
  // the connections when the budget runs out.
  let drainHook = false
  function onFirstStream (): void {
    drainHook = true
    const lifecycle = app.spikard
    if (lifecycle === undefined || lifecycle.phase === 'closing' || lifecycle.phase === 'closed') return
    lifecycle.onDrain('stream', async ({ remainingMs, signal }) => {
      const ms = Math.round(remainingMs * SHUTDOWN_CUT_AT)
      cutAt = performance.now() + ms
      if (open.size === 0) return
      let cut = false
      await new Promise<void>((resolve) => {
        const finish = (): void => {
          clearTimeout(timer)
          signal.removeEventListener('abort', onAbort)
          resolve()
        }
        const onAbort = (): void => { cut = true; finish() }
        const timer = setTimeout(onAbort, ms).unref()
        signal.addEventListener('abort', onAbort, { once: true })
        waiting.push(finish)
      })
      if (cut) for (const stream of open.toArray()) stream.cutOff('shutdown')
    })
  }
  app.addHook('onClose', (_app, done) => {
    cutAt = 0
    for (const stream of open.toArray()) stream.cutOff('shutdown')
    waiting = []
    done()
  })
}

/** An async iterable that is not a stream Fastify knows (a generator). */
function isIterableOnly (payload: unknown): boolean {
  return typeof (payload as Readable).pipe !== 'function' && typeof (payload as ReadableStream).getReader !== 'function' && !(payload instanceof Response)
}

/** An empty body in place of an iterable that is never read (HEAD); a generator is closed without running. */
function unstarted (iterable: AsyncIterable<unknown>): Readable {
  iterable[Symbol.asyncIterator]().return?.().catch(() => {})
  return Readable.from([])
}

/** The stream, its content type (ndjson()) on the reply unless the route set one. */
function withType (reply: FastifyReply, source: Readable): Readable {
  const type = (source as { [kContentType]?: string })[kContentType]
  if (type !== undefined && !reply.hasHeader('content-type')) reply.header('content-type', type)
  return source
}

function passThrough (payload: unknown): string {
  return payload as string
}

/** The payload as a Node Readable (see the top of this file). */
function toReadable (reply: FastifyReply, payload: unknown): Readable {
  if (typeof (payload as Readable).pipe === 'function') return payload as Readable
  if (payload instanceof Response) {
    // As Fastify would send it: its status and headers on the reply (but those of a body
    // fetch() has decoded), its body as the payload.
    copyResponseHead(reply, payload)
    return Readable.fromWeb(payload.body as WebReadableStream)
  }
  if (typeof (payload as ReadableStream).getReader === 'function') return Readable.fromWeb(payload as WebReadableStream)
  return new IterableReadable(payload as AsyncIterable<unknown>)
}

export default fp(spikardStream, { name: 'spikard-stream', fastify: '5.x' })
