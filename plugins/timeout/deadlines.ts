/**
 * The requests in flight on routes with one handler timeout, oldest first, and one timer
 * for all of them. No Fastify runtime import.
 *
 * All entries of a list share one duration, so they expire in the order they were added:
 * the timer only ever waits for the oldest, and finishing a request is unlinking it (a
 * doubly linked list, O(1)). Per request that is one small object, against Fastify's
 * setTimeout, AbortController and `close` listener (see index.ts for why spikard does not
 * use Fastify's handler timeout).
 */
import { performance } from 'node:perf_hooks'

export interface Deadline<T> {
  readonly item: T
  readonly at: number
  /** The list it is in, which removes it. */
  readonly list: Deadlines<T>
  prev: Deadline<T> | undefined
  next: Deadline<T> | undefined
  /** Still in the list (neither finished nor expired). */
  linked: boolean
}

export class Deadlines<T> {
  #head: Deadline<T> | undefined
  #tail: Deadline<T> | undefined
  #timer: NodeJS.Timeout | undefined

  /** `expire` is called once for each entry still linked when its time is up. */
  constructor (readonly ms: number, private readonly expire: (item: T) => void) {}

  add (item: T): Deadline<T> {
    const entry: Deadline<T> = { item, at: performance.now() + this.ms, list: this, prev: this.#tail, next: undefined, linked: true }
    if (this.#tail === undefined) {
      this.#head = entry
      this.#timer?.ref()
    } else {
      this.#tail.next = entry
    }
    this.#tail = entry
    // Armed for the oldest entry only; while it is armed, newer ones wait their turn.
    if (this.#timer === undefined) this.#timer = this.#arm(entry.at)
    return entry
  }

  remove (entry: Deadline<T>): void {
    if (!entry.linked) return
    entry.linked = false
    if (entry.prev === undefined) this.#head = entry.next
    else entry.prev.next = entry.next
    if (entry.next === undefined) this.#tail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = entry.next = undefined
    // The timer stays armed: when it fires early, it re-arms for the oldest entry then. With
    // nothing left to time, it no longer keeps the process alive.
    if (this.#head === undefined) this.#timer?.unref()
  }

  /** Stops the timer (the server is closing); the entries still linked never expire. */
  close (): void {
    clearTimeout(this.#timer)
  }

  #arm (at: number): NodeJS.Timeout {
    return setTimeout(() => this.#sweep(), Math.max(1, Math.ceil(at - performance.now())))
  }

  #sweep (): void {
    this.#timer = undefined
    const now = performance.now()
    while (this.#head !== undefined && this.#head.at <= now) {
      const entry = this.#head
      this.remove(entry)
      this.expire(entry.item)
    }
    if (this.#head !== undefined) this.#timer = this.#arm(this.#head.at)
  }
}
