/**
 * The test client's real-socket readers: a WebSocket (the `ws` package), an event stream
 * read as EventSource reads it, and a streamed body chunk by chunk. Each is closed by the
 * test, or by `client.close()`, which reports the ones left open.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import WebSocket from 'ws'

/** Something the client opened, which `client.close()` must find closed. */
export interface Opened {
  what: string
  isOpen: () => boolean
  destroy: () => void
}

/** Values read from a socket: `next()` resolves with the next one, or rejects on timeout or once the socket has ended. */
class Inbox<T> {
  readonly #items: T[] = []
  readonly #waiting = new Set<{ resolve: (item: T) => void, reject: (error: Error) => void }>()
  #ended: Error | undefined

  constructor (readonly what: string) {}

  push (item: T): void {
    const [waiter] = this.#waiting
    if (waiter === undefined) {
      this.#items.push(item)
      return
    }
    this.#waiting.delete(waiter)
    waiter.resolve(item)
  }

  end (error: Error): void {
    this.#ended ??= error
    for (const waiter of this.#waiting) waiter.reject(error)
    this.#waiting.clear()
  }

  async next (timeout: number): Promise<T> {
    if (this.#items.length > 0) return this.#items.shift() as T
    if (this.#ended !== undefined) throw this.#ended
    return await new Promise<T>((resolve, reject) => {
      const waiter = {
        resolve: (item: T) => { clearTimeout(timer); resolve(item) },
        reject: (error: Error) => { clearTimeout(timer); reject(error) }
      }
      const timer = setTimeout(() => {
        this.#waiting.delete(waiter)
        reject(new Error(`${this.what}: nothing arrived within ${timeout} ms`))
      }, timeout)
      this.#waiting.add(waiter)
    })
  }
}

export interface ReadOptions {
  /** How long `next()` waits, and opening waits for the answer (the 101, the head), in milliseconds. Default: 2000. */
  timeout?: number
}

const DEFAULT_TIMEOUT = 2000

/** The promise, or a rejection naming what did not happen within `ms` (after `abandon()`, which ends the attempt). */
export async function within<T> (promise: Promise<T>, ms: number, what: string, abandon?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      abandon?.()
      reject(new Error(`${what}: nothing within ${ms} ms`))
    }, ms)
  })
  try {
    return await Promise.race([promise, late])
  } finally {
    clearTimeout(timer)
  }
}

export interface WsOptions extends ReadOptions {
  headers?: Record<string, string>
  /** Subprotocols offered (`Sec-WebSocket-Protocol`). */
  protocols?: string[]
}

/** A WebSocket to the app. */
export interface TestWebSocket {
  /** The `ws` client itself. */
  socket: WebSocket
  /** The upgrade's response: 101. */
  status: number
  /** The upgrade's response headers (the request id, the subprotocol chosen...). */
  headers: IncomingHttpHeaders
  /** Sends a value as JSON text; a string or a Buffer goes as it is. */
  send: (message: unknown) => void
  /** The next message: parsed when it is JSON text, the text otherwise, a Buffer when binary. */
  next: <T = unknown>(options?: ReadOptions) => Promise<T>
  /** Sends a ping (with this payload) and resolves with the payload of the pong that answers it; rejects on timeout. */
  ping: (data?: string | Buffer, options?: ReadOptions) => Promise<Buffer>
  /** Resolves with the close code and reason once the socket has closed. */
  closed: Promise<{ code: number, reason: string }>
  /** Closes with this code (none unless told: the server answers 1005, no status) and resolves with the code and reason the server answered. */
  close: (code?: number, reason?: string) => Promise<{ code: number, reason: string }>
}

export async function openWebSocket (url: string, options: WsOptions = {}): Promise<TestWebSocket & Opened> {
  const what = `WebSocket ${new URL(url).pathname}`
  const socket = new WebSocket(url, options.protocols ?? [], { headers: options.headers })
  const inbox = new Inbox<unknown>(what)
  const pongs = new Inbox<Buffer>(`${what} (pong)`)
  socket.on('pong', (data) => pongs.push(data))
  let upgrade: IncomingMessage | undefined
  socket.once('upgrade', (response) => { upgrade = response })
  socket.on('message', (data, binary) => {
    if (binary) return inbox.push(Buffer.concat([data].flat() as Buffer[]))
    const text = data.toString()
    try {
      inbox.push(JSON.parse(text))
    } catch {
      inbox.push(text)
    }
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => {
    socket.on('close', (code, reason) => {
      inbox.end(new Error(`${what}: closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''}) before the next message`))
      pongs.end(new Error(`${what}: closed (${code}) before the pong`))
      resolve({ code, reason: reason.toString() })
    })
  })
  await within(new Promise<void>((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
    socket.once('unexpected-response', (_request, response) => {
      void readBody(response).then((body) => reject(new Error(`${what}: the upgrade was answered ${response.statusCode ?? '?'}: ${body}`)), reject)
    })
  }), options.timeout ?? DEFAULT_TIMEOUT, `${what}: the upgrade's answer`, () => { socket.terminate() })
  return {
    socket,
    what,
    status: upgrade?.statusCode ?? 0,
    headers: upgrade?.headers ?? {},
    ping: async (data?: string | Buffer, read: ReadOptions = {}) => {
      socket.ping(data)
      return await pongs.next(read.timeout ?? options.timeout ?? DEFAULT_TIMEOUT)
    },
    send: (message) => socket.send(typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message)),
    next: async <T>(read: ReadOptions = {}) => await inbox.next(read.timeout ?? options.timeout ?? DEFAULT_TIMEOUT) as T,
    closed,
    close: async (code?: number, reason?: string) => {
      if (socket.readyState !== WebSocket.CLOSED) socket.close(code, reason)
      return await closed
    },
    isOpen: () => socket.readyState !== WebSocket.CLOSED,
    destroy: () => socket.terminate()
  }
}

/** An event as EventSource dispatches it. */
export interface TestSseEvent {
  /** The event's name: `message` when it had none. */
  event: string
  /** The data lines joined with LF. */
  data: string
  /** The last event id seen on the stream (EventSource's lastEventId). */
  id: string
  /** The `retry` field, when the event had one. */
  retry?: number
}

export interface TestEventStream {
  status: number
  headers: IncomingHttpHeaders
  /** The next event; rejects on timeout or once the stream has ended. */
  next: (options?: ReadOptions) => Promise<TestSseEvent>
  /** Resolves once the server has ended the stream. */
  ended: Promise<void>
  /** Disconnects, as a browser closing the page does. */
  close: () => void
}

/**
 * An event-stream parser following the WHATWG HTML "event stream interpretation": lines
 * end at CRLF, LF or a lone CR; a blank line dispatches; `:` starts a comment; one space
 * after the colon is dropped; an id holding NUL is ignored; retry only when all digits.
 * By hand: the npm EventSource clients do not expose a parser for a stream already open.
 */
export class EventStreamParser {
  #buffer = ''
  #event = ''
  #data: string[] = []
  #retry: number | undefined
  #lastId = ''

  constructor (readonly dispatch: (event: TestSseEvent) => void) {}

  /** Feeds text; a CR at its very end waits for the next chunk (it may be half of a CRLF). */
  write (text: string, end = false): void {
    this.#buffer += text
    const lines = this.#buffer.split(/\r\n|\r(?!$)|\n/)
    this.#buffer = lines.pop() ?? ''
    if (end && this.#buffer.endsWith('\r')) this.#buffer = this.#buffer.slice(0, -1)
    for (const line of lines) this.#line(line)
  }

  #line (line: string): void {
    if (line === '') return this.#dispatch()
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') this.#event = value
    else if (field === 'data') this.#data.push(value)
    else if (field === 'id' && !value.includes('\0')) this.#lastId = value
    else if (field === 'retry' && /^\d+$/.test(value)) this.#retry = Number(value)
  }

  #dispatch (): void {
    const retry = this.#retry
    const event = this.#event
    const data = this.#data
    this.#event = ''
    this.#data = []
    this.#retry = undefined
    if (data.length === 0) return
    this.dispatch({ event: event === '' ? 'message' : event, data: data.join('\n'), id: this.#lastId, ...(retry === undefined ? {} : { retry }) })
  }
}

async function readBody (response: IncomingMessage): Promise<string> {
  let body = ''
  for await (const chunk of response.setEncoding('utf8')) body += chunk as string
  return body
}

/** A GET on a real socket; resolves with the response once its headers arrive (within `ms`). */
async function get (url: string, headers: Record<string, string>, ms: number, what: string): Promise<{ request: http.ClientRequest, response: IncomingMessage }> {
  const request = http.get(url, { headers })
  const response = await within(new Promise<IncomingMessage>((resolve, reject) => {
    request.once('response', resolve).once('error', reject)
  }), ms, `${what}: the response's head`, () => { request.destroy() })
  return { request, response }
}

export async function openEventStream (url: string, options: ReadOptions & { headers?: Record<string, string> } = {}): Promise<TestEventStream & Opened> {
  const what = `event stream ${new URL(url).pathname}`
  const timeout = options.timeout ?? DEFAULT_TIMEOUT
  const { request, response } = await get(url, { accept: 'text/event-stream', ...options.headers }, timeout, what)
  const type = String(response.headers['content-type'] ?? '')
  if (response.statusCode !== 200 || !type.startsWith('text/event-stream')) {
    const got = `${what}: expected a 200 text/event-stream, got ${response.statusCode ?? '?'} ${type}`
    // Another kind of stream (an ndjson route) may never end: its body is awaited within the timeout too.
    throw new Error(`${got}: ${await within(readBody(response), timeout, `${got}, whose body`, () => { request.destroy() })}`)
  }
  const inbox = new Inbox<TestSseEvent>(what)
  const parser = new EventStreamParser((event) => inbox.push(event))
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => parser.write(chunk))
  const ended = new Promise<void>((resolve) => {
    const end = (): void => {
      parser.write('', true)
      inbox.end(new Error(`${what}: the stream ended before the next event`))
      resolve()
    }
    response.once('end', end).once('close', end).once('error', end)
  })
  return {
    what,
    status: response.statusCode,
    headers: response.headers,
    next: async (read: ReadOptions = {}) => await inbox.next(read.timeout ?? options.timeout ?? DEFAULT_TIMEOUT),
    ended,
    close: () => request.destroy(),
    isOpen: () => !response.complete && !request.destroyed,
    destroy: () => request.destroy()
  }
}

export interface TestStream extends AsyncIterable<Buffer> {
  status: number
  headers: IncomingHttpHeaders
  /** Disconnects before the end, as a client going away does. */
  close: () => void
}

export async function openStream (url: string, headers: Record<string, string> = {}, timeout = DEFAULT_TIMEOUT): Promise<TestStream & Opened> {
  const what = `stream ${new URL(url).pathname}`
  const { request, response } = await get(url, headers, timeout, what)
  return {
    what,
    status: response.statusCode ?? 0,
    headers: response.headers,
    async * [Symbol.asyncIterator] () {
      try {
        for await (const chunk of response) yield chunk as Buffer
      } finally {
        // Stopped reading early (a break): the request goes away.
        if (!response.complete) request.destroy()
      }
    },
    close: () => request.destroy(),
    isOpen: () => !response.complete && !request.destroyed,
    destroy: () => request.destroy()
  }
}
