/**
 * Rooms: an in-process publish/subscribe over the open WebSocket connections.
 *
 *     app.spikard.rooms.join('lobby', socket)
 *     app.spikard.rooms.publish('lobby', { type: 'said', text })   // every socket in the room
 *     app.spikard.rooms.broadcast({ type: 'notice', text })        // every open socket
 *
 * Membership is local (a socket lives in one process); delivery goes through a
 * RoomAdapter, whose in-process one delivers at once. A Redis fan-out across instances is
 * another adapter (publish to a channel; each instance's subscriber calls `deliver`), so
 * handlers do not change when it comes. Written here because neither ws nor
 * @fastify/websocket has rooms. A socket leaves every room when it closes.
 */
/**
 * A socket as rooms see it: any `ws` WebSocket (described by shape, since the handler's socket
 * type comes from @fastify/websocket's CommonJS view of ws, which TypeScript sees as another type).
 */
export interface RoomSocket { readonly readyState: number, readonly OPEN: number }

/** What a room message is: an object (sent as JSON, validated against each route's `send` schema outside production), a string or bytes (sent as they are). */
export type RoomMessage = unknown

/** Where published messages go. `deliver` is how messages reach this process's sockets. */
export interface RoomAdapter {
  /** Sends `message` to the room's members everywhere (`room` null: to every socket). */
  publish: (room: string | null, message: RoomMessage) => void | Promise<void>
  close?: () => void | Promise<void>
}

/**
 * Sends one message to one socket, counting it and checking the route's send schema and
 * slow consumers: `message` as published, `frame` what goes on the wire (serialized once
 * for the whole room).
 */
export type Deliver = (socket: RoomSocket, message: RoomMessage, frame: string | Buffer) => void

export class Rooms {
  readonly #members = new Map<string, Set<RoomSocket>>()
  readonly #roomsOf = new WeakMap<RoomSocket, Set<string>>()
  readonly #all: ReadonlySet<RoomSocket>
  readonly #deliver: Deliver
  #adapter: RoomAdapter

  /** `all`: every open socket (for broadcast); `deliver`: how a message is sent to one of them. */
  constructor (all: ReadonlySet<RoomSocket>, deliver: Deliver) {
    this.#all = all
    this.#deliver = deliver
    this.#adapter = { publish: (room, message) => { this.deliver(room, message) } }
  }

  /** Replaces the in-process delivery (e.g. with a Redis fan-out that calls `deliver` on each instance). */
  useAdapter (adapter: RoomAdapter): void {
    this.#adapter = adapter
  }

  /** Adds the socket to the room (no-op if it is in it, or closed). */
  join (room: string, socket: RoomSocket): void {
    if (socket.readyState !== socket.OPEN) return
    let members = this.#members.get(room)
    if (members === undefined) this.#members.set(room, members = new Set())
    members.add(socket)
    let rooms = this.#roomsOf.get(socket)
    if (rooms === undefined) this.#roomsOf.set(socket, rooms = new Set())
    rooms.add(room)
  }

  /** Removes the socket from the room. */
  leave (room: string, socket: RoomSocket): void {
    const members = this.#members.get(room)
    if (members !== undefined && members.delete(socket) && members.size === 0) this.#members.delete(room)
    this.#roomsOf.get(socket)?.delete(room)
  }

  /** Removes the socket from every room it is in (done when it closes). */
  leaveAll (socket: RoomSocket): void {
    const rooms = this.#roomsOf.get(socket)
    if (rooms === undefined) return
    for (const room of [...rooms]) this.leave(room, socket)
    this.#roomsOf.delete(socket)
  }

  /** Closes the adapter (its connections): done when the app closes, once its sockets are closed. */
  async close (): Promise<void> {
    await this.#adapter.close?.()
  }

  /** The rooms the socket is in. */
  roomsOf (socket: RoomSocket): string[] {
    return [...(this.#roomsOf.get(socket) ?? [])]
  }

  /** How many sockets are in the room in this process. */
  size (room: string): number {
    return this.#members.get(room)?.size ?? 0
  }

  /** Sends the message to every socket in the room. */
  async publish (room: string, message: RoomMessage): Promise<void> {
    await this.#adapter.publish(room, message)
  }

  /** Sends the message to every open RoomSocket of this app. */
  async broadcast (message: RoomMessage): Promise<void> {
    await this.#adapter.publish(null, message)
  }

  /** Delivers to this process's sockets: the room's members, or all (`room` null). For adapters. */
  deliver (room: string | null, message: RoomMessage): void {
    const sockets = room === null ? this.#all : this.#members.get(room)
    if (sockets === undefined || sockets.size === 0) return
    const frame = typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message)
    // A socket whose route may not send the message (its `send` schema, outside production)
    // is closed by #deliver (1011, logged): the others still get it.
    for (const socket of [...sockets]) this.#deliver(socket, message, frame)
  }
}
