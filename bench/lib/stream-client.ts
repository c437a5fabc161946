/**
 * The client of the 1 GB stream: one GET on a fresh socket, the response read into one
 * reused 1 MiB buffer and its HTTP/1.1 framing decoded here, the body counted and dropped.
 *
 * Written by hand because Node's HTTP client was the bottleneck it was meant to measure:
 * it spent about 1.2 s of CPU per GiB received on the bench machine (a Buffer per read,
 * llhttp, a Readable per response), more than the server spent sending it (0.4-0.7 s),
 * so the transfers measured the client, and swung between 0.5 and 1.9 GB/s for every
 * server alike. Reading the socket with `onread` into one buffer costs about 0.2 s per
 * GiB, and the server is what sets the pace (see bench/README.md).
 */
import net from 'node:net'

export interface StreamResult {
  /** Body bytes received (after the chunked framing is taken off; compressed bytes when the response is). */
  bytes: number
  status: number
  /** The response's header fields, names in lower case. */
  headers: Record<string, string>
  /** The response ended as its framing says (a terminating chunk, its Content-Length). */
  complete: boolean
  seconds: number
  /** Highest VmRSS seen by sampling during the transfer (bytes). */
  sampledPeak: number
}

const CR = 13
const LF = 10
/** Bound on the status line and headers. */
const MAX_HEAD = 64 * 1024

type State = 'head' | 'size' | 'data' | 'crlf' | 'trailer' | 'until-close' | 'done'

/**
 * Counts the body of one HTTP/1.1 response fed to it in pieces: a Content-Length body, a
 * chunked one, or one that ends with the connection. Throws on framing it cannot read.
 * `onBody`, when given, sees each piece of the body (without the framing) as it is counted:
 * the SSE clients parse the events out of it.
 */
export class ResponseCounter {
  status = 0
  /** Header fields, names in lower case (the last of repeated ones). */
  headers: Record<string, string> = {}
  /** Body bytes so far. */
  body = 0
  readonly #onBody: ((buf: Buffer, start: number, end: number) => void) | undefined

  constructor (onBody?: (buf: Buffer, start: number, end: number) => void) {
    this.#onBody = onBody
  }

  #state: State = 'head'
  #head = ''
  /** The current chunk-size or trailer line. */
  #line = ''
  /** Bytes left in the current chunk (or Content-Length body, or CRLF after a chunk). */
  #left = 0
  #chunked = false

  /** The response is complete (a body that ends with the connection is complete at its end). */
  get complete (): boolean {
    return this.#state === 'done'
  }

  /** The connection ended: complete only if the body was one that ends with it. */
  end (): void {
    if (this.#state === 'until-close') this.#state = 'done'
  }

  push (buf: Buffer, end: number): void {
    let i = 0
    while (i < end && this.#state !== 'done') {
      switch (this.#state) {
        case 'head':
          i = this.#readHead(buf, i, end)
          break
        case 'data': {
          const take = Math.min(this.#left, end - i)
          this.#onBody?.(buf, i, i + take)
          this.body += take
          this.#left -= take
          i += take
          if (this.#left === 0) {
            this.#state = this.#chunked ? 'crlf' : 'done'
            this.#left = 2
          }
          break
        }
        case 'crlf':
          if (buf[i++] !== (this.#left === 2 ? CR : LF)) throw new Error('stream: a chunk is not followed by CRLF')
          if (--this.#left === 0) this.#state = 'size'
          break
        case 'until-close':
          this.#onBody?.(buf, i, end)
          this.body += end - i
          i = end
          break
        default: {
          // 'size' or 'trailer': a line, read a byte at a time (a few per 64 KiB chunk).
          const byte = buf[i++]
          if (byte !== LF) {
            if (byte !== CR) this.#line += String.fromCharCode(byte)
            if (this.#line.length > 1024) throw new Error('stream: a chunk line over 1 KiB')
            break
          }
          const line = this.#line
          this.#line = ''
          if (this.#state === 'trailer') {
            if (line === '') this.#state = 'done'
            break
          }
          const size = parseInt(line.split(';')[0], 16)
          if (!Number.isFinite(size) || size < 0) throw new Error(`stream: bad chunk size ${JSON.stringify(line)}`)
          if (size === 0) this.#state = 'trailer'
          else {
            this.#state = 'data'
            this.#left = size
          }
        }
      }
    }
  }

  /** Reads the status line and headers; returns where the body starts in `buf`. */
  #readHead (buf: Buffer, start: number, end: number): number {
    const seen = this.#head.length
    this.#head += buf.toString('latin1', start, Math.min(end, start + MAX_HEAD))
    const at = this.#head.indexOf('\r\n\r\n')
    if (at === -1) {
      if (this.#head.length >= MAX_HEAD) throw new Error('stream: response head over 64 KiB')
      return end
    }
    const [statusLine, ...fields] = this.#head.slice(0, at).split('\r\n')
    this.status = Number(statusLine.split(' ')[1])
    let length: number | undefined
    for (const field of fields) {
      const colon = field.indexOf(':')
      const name = field.slice(0, colon).trim().toLowerCase()
      this.headers[name] = field.slice(colon + 1).trim()
      const value = this.headers[name].toLowerCase()
      if (name === 'content-length') {
        length = Number(value)
        if (!Number.isSafeInteger(length) || length < 0) throw new Error(`stream: bad Content-Length ${JSON.stringify(value)}`)
      }
      if (name === 'transfer-encoding') this.#chunked = value.split(',').map((v) => v.trim()).includes('chunked')
    }
    if (this.#chunked) this.#state = 'size'
    else if (length === undefined) this.#state = 'until-close'
    else {
      this.#state = length === 0 ? 'done' : 'data'
      this.#left = length
    }
    return start + at + 4 - seen
  }
}

/**
 * GETs the stream on one fresh connection, counting and dropping the body, sampling the
 * server's RSS every 20 ms. Bounded: the connection is closed after `timeoutMs`, or once
 * `stopAfter` body bytes have arrived (a warm-up reads part of the stream and hangs up).
 * `headers` go with the request (e.g. `accept-encoding`; none by default, as curl sends).
 */
export function runStream (port: number, path: string, sampleRss: () => number, timeoutMs = 60_000, stopAfter = Infinity, headers: Record<string, string> = {}): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const response = new ResponseCounter()
    let sampledPeak = sampleRss()
    const sampler = setInterval(() => { sampledPeak = Math.max(sampledPeak, sampleRss()) }, 20)
    const t0 = performance.now()
    let finished = false
    const finish = (error?: Error): void => {
      if (finished) return
      finished = true
      clearInterval(sampler)
      clearTimeout(timer)
      socket.destroy()
      if (error !== undefined) return reject(error)
      sampledPeak = Math.max(sampledPeak, sampleRss())
      resolve({ bytes: response.body, status: response.status, headers: response.headers, complete: response.complete, seconds: (performance.now() - t0) / 1000, sampledPeak })
    }
    const buffer = Buffer.allocUnsafe(1024 * 1024)
    const socket = net.connect({
      host: '127.0.0.1',
      port,
      onread: {
        buffer,
        callback: (n) => {
          try {
            response.push(buffer, n)
          } catch (error) {
            finish(error as Error)
            return false
          }
          if (response.complete || response.body >= stopAfter) finish()
          return true
        }
      }
    })
    const fields = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${fields}Connection: close\r\n\r\n`))
    // An early end leaves the body short: the harness checks the byte count.
    socket.on('end', () => { response.end(); finish() })
    socket.on('error', (error) => finish(error))
    const timer = setTimeout(() => finish(new Error(`stream not finished within ${timeoutMs} ms (${response.body} bytes received)`)), timeoutMs)
  })
}
