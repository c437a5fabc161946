/**
 * An async iterable as a byte Readable. Written here rather than with `Readable.from`,
 * whose destroy waits for the iterator's `return()` (and, with an error, `throw()`): a
 * generator busy in an `await` (a query, a sleep) holds them until its next `yield`, so a
 * stream failed by the handler timeout answered only then, and the client's problem
 * waited on the generator. Here destroy asks the iterator to `return()` without waiting
 * (its `finally` blocks run as soon as it reaches its `yield`), and whatever the pending
 * `next()` brings afterwards is dropped. Backpressure is Readable's: the next item is
 * asked for only when the buffer is below its high-water mark (16 KiB).
 */
import { Readable } from 'node:stream'

type Chunk = string | Uint8Array

export class IterableReadable extends Readable {
  readonly #iterator: AsyncIterator<unknown>
  readonly #map: ((value: unknown, index: number) => Chunk) | undefined
  #pulling = false
  #finished = false
  #index = 0

  /** `map` turns each item into a chunk (ndjson); without it, items must be strings, Buffers or Uint8Arrays. */
  constructor (iterable: AsyncIterable<unknown>, map?: (value: unknown, index: number) => Chunk) {
    super()
    this.#iterator = iterable[Symbol.asyncIterator]()
    this.#map = map
  }

  override _read (): void {
    if (this.#pulling) return
    this.#pulling = true
    this.#pull().catch((error: Error) => this.destroy(error))
  }

  async #pull (): Promise<void> {
    try {
      for (;;) {
        let result: IteratorResult<unknown>
        try {
          result = await this.#iterator.next()
        } catch (error) {
          // The iterator threw: it is finished, there is nothing to return().
          this.#finished = true
          throw error
        }
        if (this.destroyed) return
        if (result.done === true) {
          this.#finished = true
          this.push(null)
          return
        }
        // A chunk of the wrong type throws here: destroy then returns the iterator.
        if (!this.push(this.#chunk(result.value))) return
      }
    } finally {
      this.#pulling = false
    }
  }

  #chunk (value: unknown): Chunk {
    const index = this.#index++
    if (this.#map !== undefined) return this.#map(value, index)
    if (typeof value === 'string' || value instanceof Uint8Array) return value
    throw new TypeError(`stream: item ${index} is ${value === null ? 'null' : typeof value}; expected a string, a Buffer or a Uint8Array (ndjson() sends objects)`)
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#finished) {
      this.#finished = true
      // Not awaited: a busy generator takes it at its next yield.
      Promise.resolve(this.#iterator.return?.()).catch(() => {})
    }
    callback(error)
  }
}
