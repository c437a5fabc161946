/**
 * The requests in flight on routes with one handler timeout, oldest first, and one timer
 * for all of them. No Fastify runtime import.
 *
 * All entries of a list share one duration, so they expire in the order they were added:
 * the timer only ever waits for the oldest, and finishing a request is unlinking it (a
 * doubly linked list, O(1): src/linked-list.ts). Per request that is one small object,
 * against Fastify's setTimeout, AbortController and `close` listener (see index.ts for why
 * spikard does not use Fastify's handler timeout).
 */
import { performance } from 'node:perf_hooks'
import { LinkedList, type ListNode } from '../../src/linked-list.js'

export interface Deadline<T> extends ListNode<Deadline<T>> {
  readonly item: T
  readonly at: number
  /** The list it is in, which removes it. */
  readonly list: Deadlines<T>
}

export class Deadlines<T> {
  readonly #entries = new LinkedList<Deadline<T>>()
  #timer: NodeJS.Timeout | undefined

  /** `expire` is called once for each entry still linked when its time is up. */
  constructor (readonly ms: number, private readonly expire: (item: T) => void) {}

  add (item: T): Deadline<T> {
    const entry: Deadline<T> = { item, at: performance.now() + this.ms, list: this, prev: undefined, next: undefined, linked: false }
    if (this.#entries.size === 0) this.#timer?.ref()
    this.#entries.push(entry)
    // Armed for the oldest entry only; while it is armed, newer ones wait their turn.
    if (this.#timer === undefined) this.#timer = this.#arm(entry.at)
    return entry
  }

  remove (entry: Deadline<T>): void {
    // The timer stays armed: when it fires early, it re-arms for the oldest entry then. With
    // nothing left to time, it no longer keeps the process alive.
    if (this.#entries.remove(entry) && this.#entries.size === 0) this.#timer?.unref()
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
    let head = this.#entries.head
    while (head !== undefined && head.at <= now) {
      this.remove(head)
      this.expire(head.item)
      head = this.#entries.head
    }
    if (head !== undefined) this.#timer = this.#arm(head.at)
  }
}
