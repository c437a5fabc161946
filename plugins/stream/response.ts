/**
 * One streamed response in flight: what it has written (bytes, first byte, last write),
 * its idle timer, and how it ends when spikard ends it. Fastify (5.12) pipes the source
 * with backpressure, destroys it when the client goes away, answers an error before the
 * first byte through the error handler, and destroys the response on an error after it;
 * this class watches what Fastify pipes into the response (the 'pipe' event gives the
 * final payload: the source, or compression's stream of it) rather than wrapping the
 * source, so the pipe stays Fastify's and costs nothing per chunk beyond a counter. A
 * payload that compression turned into a buffer (a small file, compressed once) is never
 * piped: the response is then not a stream any more, and its length is its Content-Length.
 *
 * Not by replacing `res.write` on each response: that own property on every streamed
 * ServerResponse made garbage collection four times as long when serving a small static
 * file (bench/RESULTS.md, eleventh session).
 */
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { errors } from '../../src/errors.js'
import type { LinkedList, ListNode } from '../../src/linked-list.js'
import { kKeepsNoChunk } from './file.js'
import { kStreamed, rememberAddress, responseStarted, type CutReason, type StreamProgress } from './state.js'

/** What the streams of one app share: the open ones, the idle timeout, the access line. */
export interface Streams {
  readonly open: LinkedList<StreamedResponse>
  /** ms; 0: no idle timeout. */
  readonly idleTimeout: number
  /** Called when the last open stream closes. */
  readonly onEmpty: () => void
  /** The logging feature's access line, when it is on. */
  readonly accessLog: ((request: FastifyRequest, reply: FastifyReply) => void) | undefined
}

export class StreamedResponse implements StreamProgress, ListNode<StreamedResponse> {
  prev: StreamedResponse | undefined
  next: StreamedResponse | undefined
  linked = false
  bytes = 0
  started = false
  cut: CutReason | undefined
  logged = false
  /** Fastify piped a stream into the response (compression may have sent a buffer instead). */
  piped = false
  #closed = false
  #released = false
  #lastWrite = 0
  #timer: NodeJS.Timeout | undefined

  constructor (readonly request: FastifyRequest, readonly reply: FastifyReply, readonly source: Readable, readonly streams: Streams) {
    const res = reply.raw
    // The client's address, read while its socket is open, which keeps it: the line of a
    // response the client leaves is written once the socket has closed, too late to read it.
    rememberAddress(request)
    res.once('pipe', this.#onPipe)
    res.once('close', () => this.#onClose())
    source.on('error', (error) => this.#onSourceError(error))
    streams.open.push(this)
  }

  get aborted (): boolean { return this.#closed && !this.reply.raw.writableFinished }

  fail (error: Error): void {
    if (this.started) return this.cutOff('error')
    if (!this.source.destroyed) this.source.destroy(error)
  }

  /**
   * Ends the response now. After its first byte: the response is destroyed, so no
   * terminating chunk is sent and the client can tell the body is truncated. Before it
   * (a shutdown): a 503 problem instead.
   */
  cutOff (reason: CutReason): void {
    const res = this.reply.raw
    if (this.cut !== undefined || this.#released || res.destroyed || res.writableFinished) return
    const log = { cut: reason, bytes: this.bytes, durationMs: Math.round(this.reply.elapsedTime) }
    if (reason === 'idle-timeout') {
      this.request.log.warn({ ...log, idleTimeoutMs: this.streams.idleTimeout }, `stream cut: nothing sent for ${this.streams.idleTimeout} ms`)
    } else if (reason === 'shutdown') {
      this.request.log.warn(log, this.started ? 'stream cut: the server is shutting down' : 'stream cut before its first byte: the server is shutting down (503)')
    }
    if (!this.started && reason === 'shutdown') return this.fail(new errors.SPK_ERR_SHUTTING_DOWN())
    this.cut = reason
    res.destroy()
  }

  /** The reply sends something else (the error handler's problem after a failure before the first byte): stop watching. */
  release (): void {
    this.#released = true
    clearTimeout(this.#timer)
    this.reply.raw.removeListener('pipe', this.#onPipe)
    this.#forget()
  }

  /** Every body byte passes here, after compression: each chunk, once the pipe (whose listener came first) has written it. */
  readonly #onPipe = (piped: Readable): void => {
    this.piped = true
    piped.on('data', Object.assign((chunk: unknown) => { this.#wrote(chunk) }, { [kKeepsNoChunk]: true }))
  }

  #wrote (chunk: unknown): void {
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : (chunk as Uint8Array | null)?.byteLength ?? 0
    const idle = this.streams.idleTimeout
    if (idle > 0) this.#lastWrite = performance.now()
    if (this.started) return
    this.started = true
    responseStarted(this.request)
    if (idle > 0) this.#timer = setTimeout(this.#checkIdle, idle).unref()
  }

  readonly #checkIdle = (): void => {
    const idle = this.streams.idleTimeout
    const quiet = performance.now() - this.#lastWrite
    // A timer may fire a fraction of a millisecond early.
    if (quiet >= idle - 1) return this.cutOff('idle-timeout')
    this.#timer = setTimeout(this.#checkIdle, Math.ceil(idle - quiet)).unref()
  }

  #onSourceError (error: Error): void {
    const res = this.reply.raw
    // Cut by spikard, the client is gone (the pipe's premature close), or no byte sent yet:
    // then the error handler answers with a problem and logs it.
    if (this.#released || this.cut !== undefined || res.destroyed || !this.started) return
    this.cut = 'error'
    this.request.log.error({ err: error, cut: 'error', bytes: this.bytes, durationMs: Math.round(this.reply.elapsedTime) }, 'stream failed after its first byte; response cut')
    // Fastify destroys it too; here it is certain, whatever sits between source and response.
    res.destroy()
  }

  #onClose (): void {
    if (this.#released) return
    this.#closed = true
    clearTimeout(this.#timer)
    if (!this.started) responseStarted(this.request)
    this.#forget()
    // Neither onResponse (no 'finish') nor, for every request, onRequestAbort runs: the access line is written here.
    if (!this.logged && !this.reply.raw.writableFinished) this.streams.accessLog?.(this.request, this.reply)
  }

  #forget (): void {
    const { open } = this.streams
    if (open.remove(this) && open.size === 0) this.streams.onEmpty()
  }
}

/** The request's tracked stream (decorated null by the stream feature). */
export function trackedOf (request: FastifyRequest): StreamedResponse | null {
  return (request as FastifyRequest & { [kStreamed]?: StreamedResponse | null })[kStreamed] ?? null
}
