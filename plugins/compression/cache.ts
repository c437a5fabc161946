/**
 * Small files compressed once per version: a static file is the same bytes on every
 * request until it changes, and compressing 6 KiB of HTML with brotli cost more CPU than
 * the rest of serving it (bench/RESULTS.md, the static scenario). Kept by the file's path,
 * its ETag (size and modification time, as @fastify/send writes it) and the coding; least
 * recently used first out, within a fixed number of bytes.
 *
 * By hand: a Map kept in use order is the whole of an LRU this size needs.
 */
import type { Readable } from 'node:stream'
import type { FastifyReply } from 'fastify'

/** What the cache holds at most, in compressed bytes. */
export const FILE_CACHE_BYTES = 4 * 1024 * 1024

export class CompressedFiles {
  readonly #entries = new Map<string, Buffer>()
  #bytes = 0

  constructor (readonly maxBytes = FILE_CACHE_BYTES) {}

  /**
   * The key of a file stream whose reply has an ETag, or undefined for any other body. The
   * bytes read (`start` and `end`, as fs.createReadStream and fileStream() keep them) are
   * part of it: an ETag is one URL's, and two routes may send two parts of one file under
   * the same one.
   */
  static key (body: Readable, reply: FastifyReply, encoding: string): string | undefined {
    const { path, start, end } = body as { path?: unknown, start?: unknown, end?: unknown }
    const etag = reply.getHeader('etag')
    return typeof path === 'string' && typeof etag === 'string' ? `${encoding}\0${etag}\0${String(start)}-${String(end)}\0${path}` : undefined
  }

  get (key: string): Buffer | undefined {
    const hit = this.#entries.get(key)
    if (hit === undefined) return undefined
    this.#entries.delete(key)
    this.#entries.set(key, hit)
    return hit
  }

  set (key: string, compressed: Buffer): void {
    if (compressed.length > this.maxBytes) return
    const old = this.#entries.get(key)
    if (old !== undefined) {
      this.#bytes -= old.length
      this.#entries.delete(key)
    }
    this.#entries.set(key, compressed)
    this.#bytes += compressed.length
    for (const [oldest, buffer] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= buffer.length
    }
  }

  get bytes (): number { return this.#bytes }
  get size (): number { return this.#entries.size }
}
