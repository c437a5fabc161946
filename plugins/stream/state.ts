/**
 * What the stream feature shares with the features that meet a streamed response on its
 * way (timeout, logging): which payloads are streams, and the state of a streamed
 * response in flight, kept on its request. No Fastify runtime import.
 */
import * as zlib from 'node:zlib'
import type { FastifyReply, FastifyRequest } from 'fastify'

/** Why spikard ended a streamed response without its terminating chunk. */
export type CutReason = 'error' | 'idle-timeout' | 'shutdown'

/** A streamed response in flight (or ended), as the other features read it. */
export interface StreamProgress {
  readonly reply: FastifyReply
  /** Body bytes written to the response so far (after compression). */
  readonly bytes: number
  /** A stream was piped into the response; false when compression sent the small file as a buffer (its Content-Length counts). */
  readonly piped: boolean
  /** Its first byte has been written: the status and headers are on their way. */
  readonly started: boolean
  /** It ended without its terminating chunk: the client went away, or spikard cut it. */
  readonly aborted: boolean
  /** Why spikard cut it, when it did. */
  readonly cut: CutReason | undefined
  /** Its access line has been written (by onResponse or by the stream feature). */
  logged: boolean
  /**
   * Fails the stream before its first byte with `error`: the source is destroyed with it,
   * and the one error handler answers with its problem. After the first byte, cuts it.
   */
  fail: (error: Error) => void
}

/** Where a request keeps its streamed response (null: none). */
export const kStreamed = Symbol('spikard.stream.response')

/**
 * A request method the stream feature calls once when a streamed response writes its first
 * byte, or closes without one: the timeout feature decorates requests with it, and stops
 * the handler timeout's clock there rather than at the hand-over.
 */
export const kResponseStarted = Symbol('spikard.stream.started')

/**
 * Set on a request whose response goes on outside Fastify's lifecycle once it has started (an
 * event stream, whose reply is hijacked): when the client leaves, that feature writes the
 * access line as the response closes, with the status sent and the duration, in place of
 * onRequestAbort's, which has no reply and so neither.
 */
export const kLogsOwnAbort = Symbol('spikard.stream.logsOwnAbort')

type Streamed = FastifyRequest & { [kStreamed]?: StreamProgress | null, [kResponseStarted]?: () => void, [kLogsOwnAbort]?: true }

/** The request's streamed response, or null. */
export function streamedOf (request: FastifyRequest): StreamProgress | null {
  return (request as Streamed)[kStreamed] ?? null
}

/** Whether the request's own feature writes its access line when its client leaves (kLogsOwnAbort). */
export function logsOwnAbort (request: FastifyRequest): boolean {
  return (request as Streamed)[kLogsOwnAbort] === true
}

/**
 * Reads the client's address now, while the socket is open: Node keeps it once read, and a
 * socket that has closed no longer has one. For the access line of a long response the
 * client may leave (written after the close); not for every request (a system call each).
 */
export function rememberAddress (request: FastifyRequest): void {
  void request.raw.socket?.remoteAddress
}

/** Tells the timeout feature (when on) that the response has started. */
export function responseStarted (request: FastifyRequest): void {
  (request as Streamed)[kResponseStarted]?.()
}

/**
 * Whether a payload is sent as a stream: a Node Readable, a web ReadableStream, a fetch
 * Response with a body, or an async iterable (a generator). Strings and Buffers are not.
 */
export function isStreamPayload (payload: unknown): boolean {
  if (payload === null || typeof payload !== 'object' || Buffer.isBuffer(payload)) return false
  const p = payload as Record<string | symbol, unknown>
  if (typeof p.pipe === 'function' || typeof p.getReader === 'function') return true
  if (payload instanceof Response) return payload.body !== null
  return typeof p[Symbol.asyncIterator] === 'function'
}

/**
 * The codings fetch() (undici) decodes: every one of a response's codings must be among them
 * (else undici leaves the body as it came). zstd where node:zlib has it (Node 22.15, 23.8).
 */
const DECODED_BY_FETCH = new Set(['gzip', 'x-gzip', 'deflate', 'br', ...(typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function' ? ['zstd'] : [])])

/**
 * A fetch Response's status and headers on the reply, as Fastify sends one. But a Response
 * fetch() received (its `type` is not `default`) has a body fetch has decoded, under the
 * Content-Encoding and Content-Length of the bytes that came: passed on, a client takes the
 * plain body for gzip, and reads the bytes past that length as the next response on the
 * connection. Those two are left out then (the body is sent chunked).
 */
export function copyResponseHead (reply: FastifyReply, response: Response): void {
  reply.code(response.status)
  const coding = response.type === 'default' ? null : response.headers.get('content-encoding')
  const decoded = coding !== null && coding.split(',').every((c) => DECODED_BY_FETCH.has(c.trim().toLowerCase()))
  for (const [name, value] of response.headers) {
    if (decoded && (name === 'content-encoding' || name === 'content-length')) continue
    reply.header(name, value)
  }
}
