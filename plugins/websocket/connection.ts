/**
 * One open WebSocket: what spikard adds around the `ws` socket a route's handler gets.
 *
 * - Incoming messages pass through `receive`: binary frames refused unless the route allows
 *   them, text parsed and validated when the route declares `receive`; a refused message gets
 *   an error frame (a problem object) or, with `closeOnInvalid`, closes the socket (1003,
 *   1007, 1008). The handler's `message` listeners only see accepted messages.
 * - The handler's `message` listeners are called here, so a listener that throws (or an
 *   async one that rejects) closes that socket with 1011 instead of crashing the process:
 *   ws calls them from its parser, where a throw would be an uncaught exception.
 * - `socket.sendJson(value)` validates against `send` outside production and sends JSON;
 *   `socket.send` keeps working. Both are counted, and a client that does not read past
 *   `maxBuffered` is closed with 1013.
 *
 * Done on the socket instance (its `emit` and `send`), because ws offers no hook between its
 * parser and the listeners, nor around sends.
 */
import { AsyncResource } from 'node:async_hooks'
import { performance } from 'node:perf_hooks'
import type { FastifyRequest } from 'fastify'
import type { WebSocket, RawData } from 'ws'
import { errorDefinitions, errors, PROBLEM_TYPE_BASE, type SpikardErrorCode } from '../../src/errors.js'
import type { Check, Refusal } from './validate.js'

/** Where a WebSocket route keeps its policy (src/route-decision.ts). */
export const kWebSocket = Symbol('spikard.websocket')
/** Set on every `websocket: true` route, the HEAD twin of a GET one included: a request that is not an upgrade is refused (426). */
export const kUpgradeOnly = Symbol('spikard.websocket.upgradeOnly')

/** What a route decided about its sockets (worked out once, in onRoute). */
export interface SocketPolicy {
  route: string
  receive: Check | undefined
  /** Outside production only. */
  send: Check | undefined
  binary: boolean
  closeOnInvalid: boolean
}

/** Thrown by `socket.sendJson` outside production for a message that does not match the route's `send` schema. */
export class WebSocketMessageError extends Error {
  constructor (message: string, readonly route: string) {
    super(message)
    this.name = 'WebSocketMessageError'
  }
}

/** The close codes spikard uses (RFC 6455 §7.4.1). */
export const CLOSE = { normal: 1000, goingAway: 1001, unsupported: 1003, invalidData: 1007, policy: 1008, tooBig: 1009, internal: 1011, tryAgain: 1013 } as const

/** The bytes of a message, as ws sends it: a number as its text, nothing (`send()`, null) as an empty message. */
function sizeOf (data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data)
  if (typeof data === 'number') return String(data).length
  if (Array.isArray(data)) return data.reduce((n: number, b: Buffer) => n + b.length, 0)
  return (data as { byteLength?: number } | null | undefined)?.byteLength ?? 0
}

/** An error frame: the problem object of `code`, as the HTTP problems are, without `instance`. */
export function errorFrame (code: SpikardErrorCode, refusal?: Refusal): string {
  const d = errorDefinitions[code]
  const detail = refusal?.detail ?? new errors[code]().message
  return JSON.stringify({ type: PROBLEM_TYPE_BASE + d.type, title: d.title, status: d.status, detail, ...(refusal?.errors === undefined ? {} : { errors: refusal.errors }) })
}

export interface Limits { maxBuffered: number }

export class Connection {
  readonly started = performance.now()
  messagesIn = 0
  messagesOut = 0
  bytesIn = 0
  bytesOut = 0
  /** Answered the last ping (the heartbeat). */
  alive = true
  /** The code of the close frame the server sent first (ws's own included: 1009, 1007...). */
  closeSent: number | undefined
  /** Read now: once the socket is gone, Node no longer knows it. */
  readonly remoteAddress: string | undefined
  readonly #send: WebSocket['send']

  constructor (readonly socket: WebSocket, readonly request: FastifyRequest, readonly policy: SocketPolicy, readonly limits: Limits) {
    this.remoteAddress = request.ip
    const emit = socket.emit
    this.#send = socket.send
    const connection = this
    // The handler's listeners run in the request's async context, as the handler itself does
    // (`requestContext.get()`, and the context of a task a listener adds): ws calls them from
    // its socket's 'data' events, whose context is the TCP connection's.
    const context = new AsyncResource('SpikardWebSocket')
    const dispatch = function (this: WebSocket, event: string | symbol, args: unknown[]): boolean {
      return event === 'message' ? connection.#incoming(args[0] as RawData, args[1] === true) : emit.call(this, event, ...args)
    }
    socket.emit = function (event: string | symbol, ...args: unknown[]): boolean {
      return context.runInAsyncScope(dispatch, this, event, args)
    }
    const close = socket.close
    socket.close = function (code?: number, reason?: string | Buffer) {
      const first = connection.closeSent === undefined && this.readyState === this.OPEN
      // Recorded once ws has taken it: an invalid code or a reason over 123 bytes throws
      // (a handler error, closed with 1011), and no such frame is sent.
      close.call(this, code, reason)
      if (first) connection.closeSent = code ?? 1005
    }
    socket.send = function (data: unknown, options?: unknown, cb?: unknown) {
      connection.#sent(data, options, cb)
    } as WebSocket['send']
    socket.on('pong', () => { this.alive = true })
  }

  /** Sends a value as JSON, validated against the route's `send` schema outside production. */
  sendJson (value: unknown, frame?: string | Buffer): void {
    const refusal = this.policy.send?.(value)
    if (refusal !== undefined) throw new WebSocketMessageError(`websocket: a message sent on ${this.policy.route} does not match config.websocket.send: ${refusal.detail}`, this.policy.route)
    this.socket.send(frame ?? JSON.stringify(value))
  }

  #sent (data: unknown, options: unknown, cb: unknown): void {
    const socket = this.socket
    if (socket.readyState === socket.OPEN) {
      this.messagesOut++
      this.bytesOut += sizeOf(data)
    }
    ;(this.#send as (...args: unknown[]) => void).call(socket, data, options, cb)
    if (socket.bufferedAmount > this.limits.maxBuffered && socket.readyState === socket.OPEN) {
      this.request.log.warn({ bufferedAmount: socket.bufferedAmount, maxBuffered: this.limits.maxBuffered }, 'websocket: the client does not read what is sent; closing with 1013')
      socket.close(CLOSE.tryAgain, 'slow consumer')
    }
  }

  #incoming (data: RawData, isBinary: boolean): boolean {
    this.messagesIn++
    this.bytesIn += sizeOf(data)
    const { policy } = this
    if (isBinary && !policy.binary) return this.#refuse('SPK_ERR_WEBSOCKET_BINARY', CLOSE.unsupported)
    if (!isBinary && policy.receive !== undefined) {
      let message: unknown
      try {
        message = JSON.parse(data.toString())
      } catch {
        return this.#refuse('SPK_ERR_WEBSOCKET_INVALID_JSON', CLOSE.invalidData)
      }
      let refusal: Refusal | undefined
      try {
        refusal = policy.receive(message, sizeOf(data))
      } catch (error) {
        // Ajv recurses with the message: one nested deeper than the stack (a recursive schema,
        // under maxPayload) overflows it, which thrown here, from ws's parser, would crash the process.
        if (!(error instanceof RangeError)) {
          this.fail(error)
          return true
        }
        refusal = { detail: 'The message is nested too deeply to be validated' }
      }
      if (refusal !== undefined) return this.#refuse('SPK_ERR_WEBSOCKET_INVALID_MESSAGE', CLOSE.policy, refusal)
    }
    const listeners = this.socket.rawListeners('message')
    for (const listener of listeners) {
      try {
        const result = (listener as (...args: unknown[]) => unknown).call(this.socket, data, isBinary)
        if (result instanceof Promise) result.catch((error: unknown) => { this.fail(error) })
      } catch (error) {
        this.fail(error)
        break
      }
    }
    return listeners.length > 0
  }

  #refuse (code: SpikardErrorCode, closeCode: number, refusal?: Refusal): boolean {
    if (this.policy.closeOnInvalid) {
      this.socket.close(closeCode, errorDefinitions[code].title)
    } else {
      this.socket.send(errorFrame(code, refusal))
    }
    return true
  }

  /** A handler (or its message listener) failed: logged with the request id, this socket closed with 1011. */
  fail (error: unknown): void {
    this.request.log.error({ err: error, route: this.policy.route }, 'websocket: handler failed; closing the socket with 1011')
    const socket = this.socket
    if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(CLOSE.internal, 'internal error')
  }

  /**
   * The connection's access line fields. `closeCode`: the code the server sent when it closed
   * first (the client may not echo it: a socket closed for a too-big message still has that
   * message's bytes unread, and its reset can beat the close frame), else the client's.
   */
  summary (received: number): Record<string, unknown> {
    const closeCode = this.closeSent ?? received
    return {
      durationMs: Math.round((performance.now() - this.started) * 1000) / 1000,
      messagesIn: this.messagesIn,
      messagesOut: this.messagesOut,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      closeCode,
      remoteAddress: this.remoteAddress
    }
  }
}
