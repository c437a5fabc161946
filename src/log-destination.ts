import { openSync } from 'node:fs'
import { resolve } from 'node:path'
import { register } from 'on-exit-leak-free'
import pino from 'pino'
import { SpikardConfigError } from './errors.js'
import type { ServerOptions } from './config/schema.js'

/** The longest a line waits in `server.logger.buffer` for the buffer to fill. */
export const LOG_BUFFER_MAX_DELAY_MS = 1000

type SonicBoom = ReturnType<typeof pino.destination>

/**
 * Lines gathered until `size` characters (at least as many bytes) or
 * LOG_BUFFER_MAX_DELAY_MS, then handed to sonic-boom as one string. sonic-boom still does
 * the writing (in the background, partial writes, EAGAIN, EPIPE, the flush at exit).
 *
 * Why not sonic-boom's own `minLength`: its write() measures the byte length of
 * everything it holds on every call (Buffer.byteLength of a string that grows by one line
 * at a time, which V8 copies flat each time), so a 16 KiB buffer costs ~8 KiB of copying
 * per line: 3.4 µs of the ~66 µs per request in the bench profile of spikard-all
 * (bench/RESULTS.md). Here a line costs an array push.
 */
class LineBuffer {
  readonly #size: number
  readonly #sink: SonicBoom
  #lines: string[] = []
  #length = 0
  #timer: NodeJS.Timeout | undefined

  constructor (size: number, sink: () => SonicBoom) {
    this.#size = size
    // Registered before the sink is created, so at exit this runs before pino's own hook
    // ends the sink: the gathered lines go out first, in order.
    register(this, (buffer) => { buffer.flushSync() })
    this.#sink = sink()
  }

  write (line: string): boolean {
    this.#lines.push(line)
    this.#length += line.length
    if (this.#length >= this.#size) this.#handOver()
    else if (this.#timer === undefined) this.#timer = setTimeout(() => { this.#handOver() }, LOG_BUFFER_MAX_DELAY_MS).unref()
    return true
  }

  #handOver (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#lines.length === 0) return
    const text = this.#lines.join('')
    this.#lines = []
    this.#length = 0
    this.#sink.write(text)
  }

  /** pino's `logger.flush(cb)`: calls back once everything gathered so far is written. */
  flush (callback: (error?: Error) => void): void {
    this.#handOver()
    this.#sink.flush(callback)
  }

  flushSync (): void {
    this.#handOver()
    this.#sink.flushSync()
  }
}

/**
 * Where log lines go when `server.logger` names a file or a buffer (else undefined: pino's
 * own stdout destination). Written in the background as pino's own destinations are; the
 * buffer only sets how much gathers before a write. The file is opened here, so a path that
 * cannot be written fails the start; what is not written yet is flushed when the process
 * exits and by the spikard plugin when the server closes.
 */
export function logDestination ({ file, buffer }: ServerOptions['logger'], baseDir: string): pino.DestinationStream | undefined {
  if (file === undefined && buffer === 0) return undefined
  let fd = 1
  if (file !== undefined) {
    const path = resolve(baseDir, file)
    try {
      fd = openSync(path, 'a')
    } catch (error) {
      throw new SpikardConfigError([`server.logger.file: cannot open ${path} for writing (${(error as NodeJS.ErrnoException).code ?? 'error'})`], 'config')
    }
  }
  // minLength 1 rather than 0: sonic-boom's flush(cb) then waits for the write under way.
  if (buffer === 0) return pino.destination({ fd, sync: false, minLength: 1 })
  return new LineBuffer(buffer, () => pino.destination({ fd, sync: false, minLength: 1, maxWrite: Math.max(16 * 1024, 2 * buffer) }))
}
