import { openSync } from 'node:fs'
import { resolve } from 'node:path'
import { register } from 'on-exit-leak-free'
import type pino from 'pino'
import sonicBoom, { type SonicBoom, type SonicBoomOpts } from 'sonic-boom'
import { SpikardConfigError } from './errors.js'
import type { ServerOptions } from './config/schema.js'

// sonic-boom is CommonJS (`module.exports = SonicBoom`); its types describe ES exports, so
// TypeScript sees the default import as the module object, which it is not at run time.
const SonicBoomClass = sonicBoom as unknown as new (options: SonicBoomOpts) => SonicBoom

/** The longest a line waits in `server.logger.buffer` for the buffer to fill. */
export const LOG_BUFFER_MAX_DELAY_MS = 1000

/** Without `server.logger.buffer`: lines gather for at most this long, in at most this many bytes. */
export const GATHER_MS = 10
const GATHER_BYTES = 64 * 1024

/** What a destination holds at most while its writes fail or lag; past it, new lines are dropped. */
export const LOG_MAX_PENDING = 16 * 1024 * 1024

/** A destination as pino uses it, and as the exit hook flushes it. */
interface Destination extends pino.DestinationStream {
  flush: (callback: (error?: Error) => void) => void
  flushSync: () => void
}

/** sonic-boom in buffer mode (its types only know strings). */
type BufferSink = Omit<SonicBoom, 'write'> & { write: (chunk: Buffer) => boolean }

/**
 * Lines encoded into a buffer of `size` bytes as they come, handed to sonic-boom as one
 * chunk when the next line does not fit or after LOG_BUFFER_MAX_DELAY_MS; a line longer
 * than the buffer goes on its own.
 *
 * Why not sonic-boom's own `minLength`: its write() measures the byte length of
 * everything it holds on every call (Buffer.byteLength of a string that grows by one line
 * at a time, which V8 copies flat each time), so a 16 KiB buffer costs ~8 KiB of copying
 * per line: 3.4 µs of the ~66 µs per request in the bench profile of spikard-all
 * (bench/RESULTS.md). Why bytes rather than the strings: pino's lines are ropes of many
 * small strings, and held until the buffer fills they outlive the young generation's
 * collections, which copy them each time (see bench/RESULTS.md); encoded at once, they die
 * young.
 */
class LineBuffer implements Destination {
  readonly #size: number
  readonly #sink: BufferSink
  /** The longest a line waits for the buffer to fill. */
  readonly #maxDelay: number
  #bytes: Buffer
  #used = 0
  #timer: NodeJS.Timeout | undefined

  constructor (size: number, sink: SonicBoom, maxDelay = LOG_BUFFER_MAX_DELAY_MS) {
    this.#size = size
    this.#sink = sink as unknown as BufferSink
    this.#maxDelay = maxDelay
    this.#bytes = Buffer.allocUnsafe(size)
  }

  write (line: string): boolean {
    // A UTF-16 unit is at most 3 bytes of UTF-8: measure only when the line may not fit.
    if (line.length * 3 > this.#size - this.#used) {
      const bytes = Buffer.byteLength(line)
      if (bytes > this.#size - this.#used) {
        this.#handOver()
        if (bytes > this.#size) {
          this.#sink.write(Buffer.from(line))
          return true
        }
      }
    }
    this.#used += this.#bytes.write(line, this.#used)
    if (this.#timer === undefined) this.#timer = setTimeout(() => { this.#handOver() }, this.#maxDelay).unref()
    return true
  }

  #handOver (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#used === 0) return
    const chunk = this.#bytes.subarray(0, this.#used)
    this.#bytes = Buffer.allocUnsafe(this.#size)
    this.#used = 0
    this.#sink.write(chunk)
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

/** At exit, how long the last lines wait for a reader that takes nothing (a stalled pipe) before they are given up. */
export const LOG_EXIT_STALL_MS = 2000

/** How long the destination must stay caught up, with nothing failing or dropped, before stderr says the trouble is over. */
export const LOG_RECOVERED_AFTER_MS = 1000

/**
 * sonic-boom writing to `fd` in the background (partial writes, EAGAIN), made safe to fail.
 * Left alone, a failed write (a full disk: ENOSPC, EIO) is an 'error' event nothing
 * handles, and the process dies of its logs. Here the server goes on: sonic-boom keeps the
 * lines and tries them again with the next ones, up to LOG_MAX_PENDING, and lines past that
 * are dropped. stderr says so once when the trouble starts (writes fail, or lines are
 * dropped) and once when it is over, with the number of lines dropped: over once
 * everything pending has been written ('drain') and LOG_RECOVERED_AFTER_MS have passed
 * with nothing failing or dropped. A reader that lags lets some writes through while lines
 * are dropped; a message each time would flood stderr. A reader that went away (EPIPE,
 * stdout piped into a process that exited) ends the logging quietly, as pino does.
 *
 * sonic-boom 5 rather than the 4 pino.destination() builds: 4's flushSync retries a failed
 * write forever, so a process exiting with its log disk full never exits.
 */
function backgroundWriter (fd: number, where: string, options: Pick<SonicBoomOpts, 'contentMode' | 'maxWrite'> = {}): SonicBoom {
  // At exit (flushSync, below) a reader that takes nothing (EAGAIN) is waited for at most
  // LOG_EXIT_STALL_MS; sonic-boom would retry every 100 ms forever, and the process would
  // never exit. Before that, a full pipe is retried: the reader may be slow, not gone.
  let exiting = false
  let left = -1
  let stalledSince = 0
  const retryEAGAIN = (_error: Error, writing: number, queued: number): boolean => {
    if (!exiting) return true
    const now = performance.now()
    if (writing + queued !== left) {
      left = writing + queued
      stalledSince = now
    }
    return now - stalledSince < LOG_EXIT_STALL_MS
  }
  // minLength 1 rather than 0: flush(cb) then waits for the write under way.
  const sink = new SonicBoomClass({ fd, sync: false, minLength: 1, maxLength: LOG_MAX_PENDING, retryEAGAIN, ...options })
  const mib = LOG_MAX_PENDING / 1024 / 1024
  const say = (text: string): void => { process.stderr.write(`spikard: ${text}\n`) }
  let failing = false
  let dropping = false
  let dropped = 0
  /** When a write last failed or a line was last dropped, and when everything pending was last written. */
  let lastTrouble = 0
  let lastDrained = 0
  let recovery: NodeJS.Timeout | undefined
  const recovered = (): void => {
    recovery = undefined
    // Trouble again since the drain: the next drain starts the wait again.
    if (lastTrouble >= lastDrained) return
    const quiet = performance.now() - lastTrouble
    if (quiet < LOG_RECOVERED_AFTER_MS) {
      recovery = setTimeout(recovered, LOG_RECOVERED_AFTER_MS - quiet).unref()
      return
    }
    say(`log lines are written to ${where} again${dropped > 0 ? `; ${dropped} were dropped` : ''}`)
    failing = dropping = false
    dropped = 0
  }
  sink.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') {
      sink.write = () => true
      sink.flush = (callback?: (error?: Error) => unknown) => { callback?.() }
      sink.flushSync = () => {}
      return
    }
    lastTrouble = performance.now()
    if (failing) return
    failing = true
    say(`log lines cannot be written to ${where} (${error.code ?? error.message}); the server goes on, and the lines are tried again with the next ones (at most ${mib} MiB are kept)`)
  })
  sink.on('drop', (chunk: Buffer) => {
    lastTrouble = performance.now()
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) dropped++
    if (dropping) return
    dropping = true
    say(`log lines for ${where} are being dropped: ${mib} MiB are waiting to be written`)
  })
  // Called only by the exit hook (logDestination).
  const flushSync = sink.flushSync.bind(sink)
  sink.flushSync = () => {
    exiting = true
    try {
      flushSync()
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') say(`log lines for ${where} were left unwritten at exit: nothing was read for ${LOG_EXIT_STALL_MS / 1000} s`)
      throw error
    }
  }
  sink.on('drain', () => {
    lastDrained = performance.now()
    if ((failing || dropping) && recovery === undefined) recovery = setTimeout(recovered, LOG_RECOVERED_AFTER_MS).unref()
  })
  return sink
}

/**
 * Where log lines go: `server.logger.file` (opened here, so a path that cannot be written
 * fails the start) or stdout, written in the background as pino's own destination does,
 * `server.logger.buffer` setting how much gathers before a write. What is not written yet
 * is flushed by the spikard plugin when the server closes and here when the process exits.
 */
export function logDestination ({ file, buffer }: ServerOptions['logger'], baseDir: string): Destination {
  let fd = 1
  let where = 'stdout'
  if (file !== undefined) {
    where = resolve(baseDir, file)
    try {
      fd = openSync(where, 'a')
    } catch (error) {
      throw new SpikardConfigError([`server.logger.file: cannot open ${where} for writing (${(error as NodeJS.ErrnoException).code ?? 'error'})`], 'config')
    }
  }
  // Without a buffer, the lines of a few milliseconds still leave in one write: a write per
  // line (a thread-pool round trip each) cost about 4-5 µs per request in `npm run bench`,
  // and gathering only the lines of one event-loop turn saved little (few requests finish
  // in one turn). No reader notices a line 10 ms late.
  const destination: Destination = buffer === 0
    ? new LineBuffer(GATHER_BYTES, backgroundWriter(fd, where, { contentMode: 'buffer', maxWrite: 2 * GATHER_BYTES }), GATHER_MS)
    : new LineBuffer(buffer, backgroundWriter(fd, where, { contentMode: 'buffer', maxWrite: Math.max(16 * 1024, 2 * buffer) }))
  register(destination, (d) => {
    try {
      d.flushSync()
    } catch (error) {
      // The failure was reported when it began; at exit there is nothing left to try.
    }
  })
  return destination
}
