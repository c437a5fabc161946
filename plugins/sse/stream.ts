/**
 * One open event stream: @fastify/sse's `reply.sse` with spikard's checks in front of it.
 *
 * - Every event, sent alone, from an async iterable or a Readable, or written to
 *   `reply.sse.stream()`, goes through `prepare`: checked and made safe (./events.ts), and
 *   validated against the route's `schema.sse` outside production.
 * - A single event finds more than `maxBuffered` unsent: the client does not read; its
 *   stream is closed and logged, and the event dropped.
 * - An async iterable is read only while the client is there: when the stream closes, the
 *   wait for the next event ends at once and the source's `return()` is called, so a
 *   generator's `finally` runs (at its next `await` or `yield`) and a Readable is destroyed.
 * - Once the response head is written the reply is hijacked: Fastify then never tries to
 *   answer it again (the handler timeout's problem, a late return value), and a handler that
 *   fails after the first event is logged, not answered; the handler timeout stops there.
 */
import { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { SSEReplyInterface } from '@fastify/sse'
import { keepsConnection, provideRequestSignal } from '../../src/fastify-internals.js'
import { safeEvent, toEvent, type SafeEvent, type SseEvent } from './events.js'
import { kLogsOwnAbort, rememberAddress, responseStarted } from '../stream/state.js'
import { responseSent } from '../tasks/state.js'

/** Throws when an event does not match the route's schema. */
export type Validate = (event: SseEvent) => void

const CLOSED = Symbol('closed')

/** What @fastify/sse's context has beyond its typed interface. */
type Context = SSEReplyInterface & { serializer: (data: unknown) => string }

export class OpenStream {
  /** Resolves when the stream closes: the client went away, or it was closed (handler, shutdown). */
  readonly closed: Promise<typeof CLOSED>
  /** Resolves when the response itself is gone (its `close` event). */
  readonly gone: Promise<void>
  #committed = false
  /** Whether `closed` has resolved; and who waits for it now (./#untilClosed). */
  #isClosed = false
  readonly #closeWaiters = new Set<() => void>()
  readonly #send: (source: unknown) => Promise<void>

  /**
   * `serializer`: the route's own (`sse: { serializer }`), applied to all data, strings
   * included, as @fastify/sse would; its output's line breaks are made safe all the same.
   */
  constructor (readonly request: FastifyRequest, readonly reply: FastifyReply, readonly sse: Context, readonly validate: Validate | undefined, readonly serializer?: (data: unknown) => unknown, readonly maxBuffered = Infinity) {
    let resolveClosed!: (value: typeof CLOSED) => void
    this.closed = new Promise((resolve) => { resolveClosed = resolve })
    const closed = (value: typeof CLOSED): void => {
      this.#isClosed = true
      resolveClosed(value)
      for (const wake of this.#closeWaiters) wake()
      this.#closeWaiters.clear()
    }
    const signal = streamSignal(request)
    sse.onClose(() => {
      closed(CLOSED)
      signal.abort()
    })
    const raw = reply.raw
    this.gone = raw.destroyed ? Promise.resolve() : new Promise((resolve) => raw.once('close', resolve))
    if (raw.destroyed) closed(CLOSED)

    // The data is text already (./events.ts): @fastify/sse only splits it into lines.
    sse.serializer = (data) => data as string
    const send = sse.send.bind(sse)
    const sendHeaders = sse.sendHeaders.bind(sse)
    const stream = sse.stream.bind(sse)
    this.#send = send as (source: unknown) => Promise<void>
    sse.sendHeaders = (statusCode?: number) => {
      // @fastify/sse sets `Connection: keep-alive` by hand, and a Connection header set by
      // hand makes Node keep the connection whatever it had decided (the client's
      // `Connection: close`, HTTP/1.0, a shutdown draining, maxRequestsPerSocket): the
      // socket stayed open after the stream ended. The reply's headers are applied after it.
      if (!this.#committed && !keepsConnection(raw)) reply.header('connection', 'close')
      sendHeaders(statusCode)
      if (this.#committed) return
      this.#committed = true
      reply.hijack()
      // Open: if the client leaves, the access line is written as the response closes, with
      // the status sent and the client's address (./index.ts), not by onRequestAbort, which
      // has no reply.
      ;(request as FastifyRequest & { [kLogsOwnAbort]?: true })[kLogsOwnAbort] = true
      rememberAddress(request)
      // Open: the handler timeout's clock stops, as for any stream at its first byte. Left
      // running, its list held the request and its response until the timeout, long after
      // the client had gone.
      responseStarted(request)
      // The response is sent, as a WebSocket's 101 is: the request's tasks run now rather
      // than when the stream ends, which is most often the client leaving, and which would
      // drop them (and hold each in maxQueued for as long as the stream stays open).
      responseSent(request)
    }
    sse.send = async (source) => {
      if (!isAsyncIterable(source)) {
        const event = this.prepare(source)
        if (this.#overflowing()) return
        // @fastify/sse waits for 'drain' (or 'error') on a write the client has not taken; a
        // client that stopped reading and then went away never drains and a destroyed
        // response emits no error, so the handler's `await send()` would never settle. The
        // stream's close settles it (a closed stream's send still throws, as @fastify/sse's).
        if (this.#isClosed) return await send(event as never)
        await this.#untilClosed(send(event as never))
        return
      }
      // Closed before the send (the client left while the handler prepared its source):
      // @fastify/sse refuses it unread, so a Readable (a file, a database cursor) would stay open.
      if (this.#isClosed && source instanceof Readable) source.destroy()
      const guarded = this.#guard(source)
      const sent = send(guarded as AsyncIterable<never>)
      // @fastify/sse waits for the client to take each event ('drain'); a client that stopped
      // reading and then went away never drains, so the send would never settle and the
      // source never end. The stream's close ends both.
      return await Promise.race([sent, this.closed.then(() => {
        sent.catch(() => {})
        guarded.return(undefined).catch(() => {})
      })])
    }
    sse.stream = () => {
      const transform = stream() as NodeJS.WritableStream & { _write: (chunk: unknown, encoding: string, callback: (error?: Error | null) => void) => void }
      const write = transform._write
      transform._write = (chunk, encoding, callback) => {
        let event: SafeEvent
        try {
          event = this.prepare(chunk)
        } catch (error) {
          callback(error as Error)
          return
        }
        write.call(transform, event, encoding, callback)
      }
      return transform
    }
  }

  /**
   * Whether the client has left more than `maxBuffered` unread: events sent without waiting
   * (`void reply.sse.send(...)` for each event of a bus) would pile up in memory for as long
   * as it does not read. Its stream is closed then (its onClose callbacks run), and the
   * event dropped.
   */
  #overflowing (): boolean {
    // Closed already: @fastify/sse refuses the send, as for any closed stream.
    if (!this.sse.isConnected) return false
    const unsent = this.reply.raw.writableLength
    if (unsent <= this.maxBuffered) return false
    this.request.log.warn({ unsent, maxBuffered: this.maxBuffered }, 'sse: stream closed: the client does not read its events')
    this.sse.close()
    this.reply.raw.destroy()
    return true
  }

  /** Whether the response head has been written. */
  get committed (): boolean { return this.#committed }

  /** A chunk as @fastify/sse will write it; throws a TypeError, or the validation error, for one that is not a valid event. */
  prepare (chunk: unknown): SafeEvent {
    const event = toEvent(chunk)
    this.validate?.(event)
    return safeEvent(event, this.serializer)
  }

  /** Sends `event` (trusted: spikard's own) and closes the stream; commits an empty stream if nothing was sent yet. */
  async finish (event: SseEvent | false): Promise<void> {
    if (!this.sse.isConnected) return
    try {
      if (event === false) this.sse.sendHeaders()
      else await this.#send(safeEvent(event))
    } finally {
      this.sse.close()
    }
  }

  /**
   * `promise`'s outcome, or CLOSED once the stream closes first. Not a Promise.race with
   * `closed`: each race leaves a reaction on that promise until the stream closes, one per
   * event of a long-lived stream (hundreds of bytes each, never collected while it is open).
   */
  async #untilClosed<T> (promise: Promise<T>): Promise<T | typeof CLOSED> {
    if (this.#isClosed) {
      // Not awaited, but handled (as the race did): a source that closed the stream while
      // making this step and then failed must not be an unhandled rejection, which
      // close-with-grace (the shutdown feature) answers by shutting the server down.
      promise.catch(() => {})
      return CLOSED
    }
    return await new Promise<T | typeof CLOSED>((resolve, reject) => {
      const wake = (): void => { resolve(CLOSED) }
      this.#closeWaiters.add(wake)
      promise.then((value) => {
        this.#closeWaiters.delete(wake)
        resolve(value)
      }, (error: unknown) => {
        this.#closeWaiters.delete(wake)
        reject(error)
      })
    })
  }

  /** The source's events while the stream is open; ends the source when it closes first. */
  async * #guard (source: AsyncIterable<unknown>): AsyncGenerator<SafeEvent> {
    const iterator = source[Symbol.asyncIterator]()
    let finished = false
    try {
      while (true) {
        const next = await this.#untilClosed(iterator.next())
        if (next === CLOSED) return
        if (next.done === true) {
          finished = true
          return
        }
        yield this.prepare(next.value)
      }
    } finally {
      // A Readable's iterator waits for its next chunk before it can return: destroyed here.
      if (!finished && source instanceof Readable) source.destroy()
      // A generator's return() waits for the step it is in to settle: not awaited.
      if (!finished && typeof iterator.return === 'function') {
        Promise.resolve().then(async () => await iterator.return?.()).catch((error: unknown) => {
          this.request.log.warn({ err: error }, 'sse: the event source failed while being closed')
        })
      }
    }
  }
}

/**
 * The request's `request.signal` for a stream: aborted when the stream closes (the client
 * went away, the handler or the shutdown closed it), and at the handler timeout while the
 * stream is not open yet. Fastify's own is not aborted once the reply is hijacked (and,
 * with the timeout feature off, not when the client goes away); the timeout feature's is
 * aborted only at a timeout or a disconnect. Where the slot cannot be found,
 * request.signal stays as it was.
 */
function streamSignal (request: FastifyRequest): AbortController {
  const previous = request.signal
  const controller = new AbortController()
  previous.addEventListener('abort', () => {
    if ((previous.reason as { code?: unknown } | undefined)?.code === 'SPK_ERR_HANDLER_TIMEOUT') controller.abort(previous.reason)
  }, { once: true })
  provideRequestSignal(request, controller)
  return controller
}

function isAsyncIterable (value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' && !Buffer.isBuffer(value)
}
