/**
 * The HTTP server's requests in flight, counted where Node parses them (the server's
 * 'request' event) so every request the server accepted is seen, whatever route or hook
 * answers it, until its response has finished or its connection died ('close').
 * Upgraded connections (WebSocket) are not requests: drain hooks finish those.
 */
import type { Server } from 'node:http'

/** An HTTP/1 server has these; an HTTP/2 one does not (its sessions close with the server). */
type Closable = Partial<Pick<Server, 'closeIdleConnections' | 'closeAllConnections'>>

export class InFlight {
  #count = 0
  #idle: Array<() => void> = []
  #closing = false
  #reapScheduled = false
  readonly #server: Server

  constructor (server: Server) {
    this.#server = server
    server.on('request', this.#onRequest)
  }

  get count (): number { return this.#count }

  /**
   * From now on, each connection is closed as soon as it has nothing in flight: a response
   * that started before shutdown may have promised keep-alive, and Node keeps such a
   * connection open after `server.close()` until its keep-alive timeout.
   */
  closeWhenIdle (): void {
    this.#closing = true
    this.closeIdle()
  }

  /** Closes the connections without a request in progress. */
  closeIdle (): void {
    (this.#server as Closable).closeIdleConnections?.()
  }

  /** Closes every connection, in the middle of a request or not. */
  closeAll (): void {
    (this.#server as Closable).closeAllConnections?.()
  }

  /** Resolves when no request is in flight. */
  async settled (): Promise<void> {
    if (this.#count === 0) return
    await new Promise<void>((resolve) => this.#idle.push(resolve))
  }

  stop (): void {
    this.#server.off('request', this.#onRequest)
  }

  readonly #onRequest = (_request: unknown, response: NodeJS.EventEmitter): void => {
    this.#count++
    // 'close' comes once per response: `on` spares the wrapper `once` allocates per request.
    response.on('close', this.#onDone)
  }

  readonly #onDone = (): void => {
    this.#count--
    if (this.#closing && !this.#reapScheduled) {
      // After Node has detached the finished response from its socket.
      this.#reapScheduled = true
      setImmediate(() => {
        this.#reapScheduled = false
        this.closeIdle()
      })
    }
    if (this.#count === 0) for (const resolve of this.#idle.splice(0)) resolve()
  }
}
