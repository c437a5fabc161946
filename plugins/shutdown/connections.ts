/**
 * The HTTP server's connections and the requests in flight on each, as the shutdown needs
 * them.
 *
 * A request counts from the server's 'request' event (every request Node parsed, whatever
 * route or hook answers it) until its response closes or its connection does. Both are
 * needed: on Node 20 the response of a pipelined request, queued behind another, never
 * emits 'close' when the client goes away (Node 24 destroys it), so counting responses
 * alone never came back down to zero.
 * Upgraded connections (WebSocket) carry no request: drain hooks finish those.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** An HTTP/1 server has these; an HTTP/2 one does not (its sessions close with the server). */
type Closable = Partial<Pick<Server, 'closeIdleConnections' | 'closeAllConnections'>>

const kConnection = Symbol('spikard.shutdown.connection')

/**
 * A connection's responses not closed yet: one at a time, but for pipelined requests. The
 * one is kept in a field and a Set made only for a second: a Set add and delete per
 * request (hashing each new response) was most of this file's cost in `npm run bench`.
 */
class Responses {
  #one: ServerResponse | undefined
  #more: Set<ServerResponse> | undefined

  get size (): number { return (this.#one === undefined ? 0 : 1) + (this.#more?.size ?? 0) }

  /** In the order the requests came: the field holds one only while the Set is empty, so it is always the oldest. */
  add (response: ServerResponse): void {
    if (this.#one === undefined && (this.#more === undefined || this.#more.size === 0)) this.#one = response
    else (this.#more ??= new Set()).add(response)
  }

  /** The latest: its response is the last written on the connection. */
  get last (): ServerResponse | undefined {
    let last = this.#one
    if (this.#more !== undefined) for (const response of this.#more) last = response
    return last
  }

  /** Whether it was there. */
  delete (response: ServerResponse): boolean {
    if (this.#one === response) {
      this.#one = undefined
      return true
    }
    return this.#more?.delete(response) ?? false
  }

  clear (): void {
    this.#one = undefined
    this.#more = undefined
  }

  * [Symbol.iterator] (): Generator<ServerResponse> {
    if (this.#one !== undefined) yield this.#one
    if (this.#more !== undefined) yield * this.#more
  }
}

interface Connection {
  /** Its responses not closed yet (more than one when requests are pipelined). */
  responses: Responses
  /** When it last had nothing in flight (performance.now()), stamped once the shutdown began. */
  idleSince: number
}

type Tracked = Socket & { [kConnection]?: Connection }

export class Connections {
  #count = 0
  #settled: Array<() => void> = []
  #draining = false
  #closing = false
  /** The responses drain() made close their connection (they promised keep-alive). */
  readonly #closedHere = new WeakSet<ServerResponse>()
  readonly #open = new Set<Tracked>()
  /** `app.server`, then the servers of Fastify's other `localhost` addresses (::1), once it listens. */
  readonly #servers: Server[] = []
  readonly #connectionEvent: 'connection' | 'secureConnection'
  /** One listener for every response's 'close' (`this` is the response): no closure per request. */
  readonly #onResponseClose: (this: ServerResponse) => void

  constructor (server: Server) {
    // TLS: requests come on the TLS socket, which 'secureConnection' gives.
    this.#connectionEvent = server instanceof HttpsServer ? 'secureConnection' : 'connection'
    const settle = this.#settle
    this.#onResponseClose = function () { settle(this) }
    this.track(server)
  }

  /**
   * Follows one more server of the app: Fastify listening on `localhost` binds its other
   * addresses (::1 beside 127.0.0.1) on servers of their own, whose requests would
   * otherwise neither keep the shutdown waiting nor close their connections.
   */
  track (server: Server): void {
    if (this.#servers.includes(server)) return
    this.#servers.push(server)
    // First: Fastify's own listener may answer synchronously, before a later one could
    // still change the response's keep-alive.
    server.prependListener('request', this.#onRequest)
    server.on(this.#connectionEvent, this.#onConnection)
  }

  /** Every server followed. */
  get servers (): readonly Server[] { return this.#servers }

  /** Requests in flight. */
  get count (): number { return this.#count }

  /** Open connections (upgraded ones included). */
  get open (): number { return this.#open.size }

  /**
   * From now on every response not yet started closes its connection (`Connection: close`),
   * whoever writes its headers: Fastify, a hook, an error handler or a handler on `reply.raw`;
   * of pipelined requests, the last one's.
   */
  drain (): void {
    this.#draining = true
    for (const socket of this.#open) {
      const last = socket[kConnection]!.responses.last
      if (last !== undefined && !last.headersSent) this.#closeWith(last, undefined)
    }
  }

  /**
   * `response` closes its connection; a response queued before it on that connection (the
   * client pipelined its request) no longer does: Node ends the connection after a response
   * that says `Connection: close`, throwing away the answers queued behind it, whose
   * handlers have run.
   */
  #closeWith (response: ServerResponse, previous: ServerResponse | undefined): void {
    if (previous !== undefined && this.#closedHere.delete(previous) && !previous.headersSent) previous.shouldKeepAlive = true
    if (!response.shouldKeepAlive) return
    response.shouldKeepAlive = false
    this.#closedHere.add(response)
  }

  /** The server has stopped serving: from now on each connection's quiet time is measured. */
  close (): void {
    this.drain()
    this.#closing = true
    const now = performance.now()
    for (const socket of this.#open) socket[kConnection]!.idleSince = now
  }

  /**
   * Milliseconds until every open connection has gone `graceMs` without a request in flight,
   * 0 when all have (or none is open). A connection with nothing in flight may be carrying
   * the client's next request: it is closed only after this grace.
   */
  quietIn (graceMs: number): number {
    let wait = 0
    const now = performance.now()
    for (const socket of this.#open) {
      // Ending: its last response closed it (`Connection: close`), no request can follow.
      if (!socket.writable) continue
      const connection = socket[kConnection]!
      const left = connection.responses.size > 0 ? graceMs : connection.idleSince + graceMs - now
      if (left > wait) wait = left
    }
    return Math.ceil(wait)
  }

  /** Requests in flight whose body is still arriving and whose response has not started. */
  receiving (): Array<IncomingMessage & { res?: ServerResponse }> {
    const found: Array<IncomingMessage & { res?: ServerResponse }> = []
    for (const socket of this.#open) {
      for (const response of socket[kConnection]!.responses) {
        if (!response.req.complete && !response.headersSent) found.push(response.req)
      }
    }
    return found
  }

  /** Closes the connections without a request in progress. */
  closeIdle (): void {
    for (const server of this.#servers) (server as Closable).closeIdleConnections?.()
  }

  /** Closes every HTTP connection, in the middle of a request or not (not upgraded ones). */
  closeAll (): void {
    for (const server of this.#servers) (server as Closable).closeAllConnections?.()
  }

  /** Resolves when no request is in flight. */
  async settled (): Promise<void> {
    if (this.#count === 0) return
    await new Promise<void>((resolve) => this.#settled.push(resolve))
  }

  stop (): void {
    for (const server of this.#servers) {
      server.off('request', this.#onRequest)
      server.off(this.#connectionEvent, this.#onConnection)
    }
  }

  readonly #onConnection = (socket: Tracked): void => {
    socket[kConnection] = { responses: new Responses(), idleSince: this.#closing ? performance.now() : 0 }
    this.#open.add(socket)
    socket.once('close', () => {
      this.#open.delete(socket)
      // Requests whose response will never close (see the top of this file).
      const { responses } = socket[kConnection]!
      const lost = responses.size
      responses.clear()
      for (let i = 0; i < lost; i++) this.#done()
    })
  }

  readonly #onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    this.#count++
    // HTTP/2 has no keep-alive to refuse, and its request.socket is a proxy: left alone.
    if (request.httpVersionMajor < 2) {
      const responses = (request.socket as Tracked)[kConnection]?.responses
      if (this.#draining) this.#closeWith(response, responses?.last)
      responses?.add(response)
    }
    // 'close' comes at most once per response: `on` spares the wrapper `once` allocates.
    response.on('close', this.#onResponseClose)
  }

  readonly #settle = (response: ServerResponse): void => {
    const request = response.req as IncomingMessage | undefined
    const connection = request !== undefined && request.httpVersionMajor < 2 ? (request.socket as Tracked)[kConnection] : undefined
    if (connection !== undefined) {
      // Already settled when its connection closed.
      if (!connection.responses.delete(response)) return
      if (this.#closing && connection.responses.size === 0) connection.idleSince = performance.now()
    }
    this.#done()
  }

  #done (): void {
    this.#count--
    if (this.#count === 0) for (const resolve of this.#settled.splice(0)) resolve()
  }
}
