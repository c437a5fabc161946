/**
 * `fileStream(path)`: a file as a Readable for a response, read into a few buffers that
 * are used again once the response has written them. No Fastify runtime import: it is
 * part of spikard's public surface.
 *
 * Why not `fs.createReadStream`: it reads every 64 KiB into a new buffer. Each one is dead
 * as soon as the socket has written it, but its memory goes back only when V8 next
 * collects, and V8 collects for that memory late: on Node 24 a 1 GiB download piped by
 * bare node:http grew the server's RSS by up to 54 MB in the bench, and the collections
 * that memory set off slowed the transfer. Reusing the buffers, spikard grew by 0.5 MB and
 * sent the file 1.6 times as fast (bench/RESULTS.md). Node has no API that reads a file
 * into buffers the caller recycles, so it is done here.
 *
 * A buffer is reused only when nothing can still hold any chunk read before: the stream
 * is piped into one `http.ServerResponse` (as Fastify pipes a stream a handler returns)
 * and read by nothing else that may keep a chunk, none of its chunks waits in its own
 * buffer, and the response has written all it was given (`writableLength` 0: its socket's
 * write callbacks have run, so the kernel has the bytes). Otherwise (compressed, so piped
 * into zlib; piped into a PassThrough; read with `on('data')`) each chunk is a new buffer,
 * as with createReadStream.
 *
 * Once open, a regular file's length is known: the stream feature sends it as
 * `Content-Length` (index.ts), answers a HEAD without reading the file, and a file that
 * shrinks while it is sent fails the stream, so the response is cut rather than ended
 * short of what it announced.
 */
import { close, fstat, open, read } from 'node:fs'
import { OutgoingMessage } from 'node:http'
import { Readable, type Writable } from 'node:stream'

/**
 * Marks a 'data' listener that keeps no chunk (the stream feature's byte count), so a file
 * stream still reuses its buffers. A registered symbol, as kContentType is (ndjson.ts).
 */
export const kKeepsNoChunk = Symbol.for('spikard.stream.keepsNoChunk')

/**
 * On a file stream: a promise of the bytes it will send, known once the file is open and
 * is a regular file (undefined for a pipe or a device); it rejects as the stream fails
 * when the file cannot be opened. The stream feature sets `Content-Length` from it.
 */
export const kFileLength = Symbol.for('spikard.stream.fileLength')

/** The length promise of a fileStream() (kFileLength), or undefined for any other payload. */
export function fileLengthOf (payload: unknown): Promise<number | undefined> | undefined {
  return (payload as { [kFileLength]?: Promise<number | undefined> })[kFileLength]
}

/** Bytes per read, as fs.createReadStream reads. */
const CHUNK = 64 * 1024
/** Buffers a stream reuses: the one being read, and those the socket and the stream's own buffer may hold. */
const POOL = 4

export interface FileStreamOptions {
  /** The first byte to send (default 0). */
  start?: number
  /** The last byte to send, included, as in `fs.createReadStream` (default: the end of the file). */
  end?: number
}

class FileStream extends Readable {
  readonly path: string
  /** The bytes asked for, as fs.ReadStream has them: the compression feature keys the compressed file by them. */
  readonly start: number
  readonly end: number
  readonly [kFileLength]: Promise<number | undefined>
  #fd: number | undefined
  #position: number
  /** One past the last byte to read: `end` + 1, or the file's size when smaller. */
  #stop: number
  /** Whether the file had #stop bytes when opened, so that ending before is a truncation. */
  #sized = false
  #opened!: { resolve: (length: number | undefined) => void, reject: (error: Error) => void }
  readonly #pool: Buffer[] = []
  /** Pool buffers handed out since everything read was last known written. */
  #used = 0
  /** The response it is piped into; null once piped anywhere else or twice. */
  #response: OutgoingMessage | null | undefined
  #reading = false
  /** A destroy waiting for the read under way, so the descriptor is not closed (and reused) under it. */
  #closeAfterRead: (() => void) | undefined

  constructor (path: string, start: number, stop: number) {
    super({ highWaterMark: CHUNK })
    this.path = path
    this.start = start
    this.end = stop - 1
    this.#position = start
    this.#stop = stop
    this[kFileLength] = new Promise((resolve, reject) => { this.#opened = { resolve, reject } })
    // Whoever awaits it reports the error; the stream reports it too, as its 'error'.
    this[kFileLength].catch(() => {})
  }

  override pipe<T extends NodeJS.WritableStream> (destination: T, options?: { end?: boolean }): T {
    this.#response = this.#response === undefined && destination instanceof OutgoingMessage ? destination : null
    return super.pipe(destination, options)
  }

  override _construct (callback: (error?: Error | null) => void): void {
    const failed = (error: Error): void => {
      this.#opened.reject(error)
      callback(error)
    }
    open(this.path, 'r', (error, fd) => {
      if (error !== null) return failed(error)
      this.#fd = fd
      fstat(fd, (error, stats) => {
        if (error !== null) return failed(error)
        // A pipe or a device has no length: it is read to its end.
        if (stats.isFile()) {
          this.#stop = Math.min(this.#stop, stats.size)
          this.#sized = true
        }
        this.#opened.resolve(this.#sized ? Math.max(0, this.#stop - this.#position) : undefined)
        callback()
      })
    })
  }

  override _read (): void {
    const length = Math.min(CHUNK, this.#stop - this.#position)
    if (length <= 0) {
      this.push(null)
      return
    }
    const buffer = this.#buffer()
    this.#reading = true
    read(this.#fd!, buffer, 0, length, this.#position, (error, bytes) => {
      this.#reading = false
      if (this.#closeAfterRead !== undefined) return this.#closeAfterRead()
      if (error !== null) return this.destroy(error)
      if (bytes === 0) {
        // Ending early would pass a truncated body for a whole one (and break the
        // connection's framing after a Content-Length): it fails, so the response is cut.
        if (this.#sized) return this.destroy(new Error(`fileStream: ${this.path} was truncated while being sent (at byte ${this.#position} of ${this.#stop})`))
        this.push(null)
        return
      }
      this.#position += bytes
      this.push(bytes === buffer.length ? buffer : buffer.subarray(0, bytes))
    })
  }

  /** A buffer nothing else holds: one of the pool when it can be known, else a new one. */
  #buffer (): Buffer {
    const response = this.#response
    if (response === undefined || response === null) return Buffer.allocUnsafeSlow(CHUNK)
    // None of its chunks waits here, the response has written them all, only the pipe keeps chunks.
    if (this.readableLength === 0 && (response as unknown as Writable).writableLength === 0 && this.#onlyPipeReads()) this.#used = 0
    if (this.#used === POOL) return Buffer.allocUnsafeSlow(CHUNK)
    if (this.#pool.length === this.#used) this.#pool.push(Buffer.allocUnsafeSlow(CHUNK))
    return this.#pool[this.#used++]!
  }

  #onlyPipeReads (): boolean {
    if (this.listenerCount('readable') !== 0) return false
    let keeping = 0
    for (const listener of this.rawListeners('data')) if (!(kKeepsNoChunk in listener)) keeping++
    return keeping === 1
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.#fd
    if (fd === undefined) return callback(error)
    this.#fd = undefined
    const done = (): void => close(fd, (closeError) => callback(error ?? closeError))
    if (this.#reading) this.#closeAfterRead = done
    else done()
  }
}

/**
 * A file to send as a response body, with backpressure, in constant memory. Return it
 * from a handler, with the content type the route wants:
 *
 *     app.get('/report', async (request, reply) => {
 *       reply.type('text/csv')
 *       return fileStream('/data/report.csv')
 *     })
 *
 * A file that cannot be opened is an error before the first byte (a problem response,
 * 500 for a missing file: check for it first if a client chooses the name). When the
 * client goes away, the file is closed.
 */
export function fileStream (path: string, options: FileStreamOptions = {}): Readable {
  const { start = 0, end = Infinity } = options
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`fileStream: start must be a whole number of bytes, 0 or more; got ${String(start)}`)
  if (end !== Infinity && (!Number.isSafeInteger(end) || end < start)) throw new RangeError(`fileStream: end must be a whole number of bytes, at least start (${start}); got ${String(end)}`)
  return new FileStream(path, start, end + 1)
}
