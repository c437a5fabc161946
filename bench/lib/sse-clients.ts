/**
 * The SSE fan-out's client process (started by bench/lib/sse-fanout.ts through prlimit,
 * with the same ready/stop protocol as a bench server): thousands of raw HTTP/1.1
 * connections to 127.0.0.1, each a `GET` of the event stream, the response's framing
 * decoded by ResponseCounter and its events by SseParser. Every event's `id` and `data`
 * (`{ n, at }`: its number and when the server sent it) are checked and counted per event
 * and per connection, so the harness can tell whether every client got every event, and
 * how long a broadcast took to reach the last client.
 *
 * Messages from the harness: `connect` (open `count` connections at a bounded rate;
 * answered with `connected` once every stream's head has come), `stats` (the figures for the events `from`..`to`;
 * answered with `stats`), `stop` (close everything and exit). It tells the harness, with
 * `settled`, when an event has reached every open connection, or 1.5 s after its first
 * copy arrived if some never got it. It exits when the harness goes away.
 */
import net from 'node:net'
import { ResponseCounter } from './stream-client.js'
import { SseParser } from './sse-parse.js'
import { pace } from './pace.js'

export interface ConnectMessage { type: 'connect', port: number, path: string, count: number, concurrency: number, rate: number, timeoutMs: number }
export interface StatsMessage { type: 'stats', from: number, to: number }
export interface ConnectedReply {
  type: 'connected'
  connected: number
  failed: number
  errors: Record<string, number>
  /** Until every stream's head (or failure), and until every TCP handshake. */
  seconds: number
  tcpSeconds: number
}
export interface SettledReply { type: 'settled', id: number, count: number, complete: boolean }
export interface StatsReply {
  type: 'stats'
  /** Connections open when asked, and the connections that ended before (the server closed them, an error). */
  open: number
  ended: number
  /** Per event from..to: the connections it reached, and ms from its send to its first and last arrival. */
  events: Array<{ id: number, count: number, firstMs: number, lastMs: number }>
  /** Connections that missed at least one event of the range, and the copies missed in all. */
  incomplete: number
  missed: number
  /** Events whose data was not `{ n, at }` with n equal to the id. */
  malformed: number
  /** Keep-alive comment lines received in all. */
  comments: number
}

/** When an event whose last copies never come is given up on (ms after its first copy). */
const SETTLE_MS = 1500

interface Connection {
  socket: net.Socket
  counter: ResponseCounter
  parser: SseParser
  /** The event ids received, in order. */
  ids: number[]
  open: boolean
}

interface EventRecord { count: number, sentAt: number, first: number, last: number, settled: boolean }

const now = (): number => performance.timeOrigin + performance.now()
const connections: Connection[] = []
const events = new Map<number, EventRecord>()
let open = 0
let ended = 0
let malformed = 0
const send = (message: ConnectedReply | SettledReply | StatsReply | object): void => { process.send?.(message) }

function received (conn: Connection, id: string | undefined, data: string): void {
  const n = Number(id)
  let at = NaN
  try {
    const value = JSON.parse(data) as { n?: unknown, at?: unknown }
    if (value.n === n && typeof value.at === 'number') at = value.at
  } catch {}
  if (!Number.isSafeInteger(n) || Number.isNaN(at)) {
    malformed++
    return
  }
  conn.ids.push(n)
  const t = now()
  let record = events.get(n)
  if (record === undefined) {
    record = { count: 0, sentAt: at, first: t, last: t, settled: false }
    events.set(n, record)
  }
  record.count++
  record.last = t
  if (!record.settled && record.count >= open) settle(n, record, true)
}

function settle (id: number, record: EventRecord, complete: boolean): void {
  record.settled = true
  send({ type: 'settled', id, count: record.count, complete } satisfies SettledReply)
}

// Events some connections never got: given up on SETTLE_MS after their first copy.
setInterval(() => {
  const limit = now() - SETTLE_MS
  for (const [id, record] of events) if (!record.settled && record.first < limit) settle(id, record, false)
}, 100).unref()

/**
 * Opens `count` connections, at most `rate` a second and `concurrency` waiting for their
 * TCP handshake at a time, then waits for every response head. Not for the heads before
 * opening more: spikard sends an event stream's head with its first write (an event or a
 * keep-alive), so a stream opened between two broadcasts hears nothing for up to a second.
 */
function connect ({ port, path, count, concurrency, rate, timeoutMs }: ConnectMessage): Promise<ConnectedReply> {
  const t0 = performance.now()
  const errors: Record<string, number> = {}
  const note = (why: string): void => { errors[why] = (errors[why] ?? 0) + 1 }
  let started = 0
  let connecting = 0
  let tcpSeconds = NaN
  /** Connections whose fate is known: a stream head, or a failure. */
  let answered = 0
  const buffer = Buffer.allocUnsafe(64 * 1024) // shared: every read is parsed before the next one
  return new Promise((resolve) => {
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      clearInterval(ticker)
      resolve({ type: 'connected', connected: open, failed: count - open, errors, seconds: (performance.now() - t0) / 1000, tcpSeconds })
    }
    const timer = setTimeout(() => {
      if (count - answered > 0) note(`no stream head within ${timeoutMs} ms`)
      finish()
    }, timeoutMs)
    const answer = (): void => {
      answered++
      if (answered === count) finish()
    }
    const open1 = (): void => {
      started++
      connecting++
      let handshake = true
      let waiting = true
      const connected = (): void => {
        if (!handshake) return
        handshake = false
        connecting--
        if (started === count && connecting === 0) tcpSeconds = (performance.now() - t0) / 1000
      }
      const conn: Connection = {
        socket: undefined as unknown as net.Socket,
        counter: undefined as unknown as ResponseCounter,
        parser: new SseParser((event) => received(conn, event.id, event.data)),
        ids: [],
        open: false
      }
      conn.counter = new ResponseCounter((buf, start, end) => conn.parser.push(buf, start, end))
      conn.socket = net.connect({
        host: '127.0.0.1',
        port,
        onread: {
          buffer,
          callback: (n) => {
            try {
              conn.counter.push(buffer, n)
            } catch (error) {
              if (waiting) {
                waiting = false
                answer()
              }
              note((error as Error).message)
              conn.socket.destroy()
              return false
            }
            if (waiting && conn.counter.status !== 0) {
              waiting = false
              const type = conn.counter.headers['content-type'] ?? ''
              if (conn.counter.status === 200 && type.startsWith('text/event-stream')) {
                conn.open = true
                open++
                connections.push(conn)
              } else {
                note(`status ${conn.counter.status}, content-type ${type}`)
                conn.socket.destroy()
              }
              answer()
            }
            return true
          }
        }
      })
      conn.socket.on('connect', () => {
        connected()
        conn.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`)
      })
      conn.socket.on('error', (error: NodeJS.ErrnoException) => note(error.code ?? error.message))
      conn.socket.on('close', () => {
        connected()
        if (waiting) {
          waiting = false
          answer()
        } else if (conn.open) {
          conn.open = false
          open--
          ended++
        }
      })
    }
    const ticker = pace(count, rate, concurrency, () => connecting, open1)
    if (count === 0) finish()
  })
}

function stats ({ from, to }: StatsMessage): StatsReply {
  const list: StatsReply['events'] = []
  for (let id = from; id <= to; id++) {
    const r = events.get(id)
    list.push(r === undefined ? { id, count: 0, firstMs: NaN, lastMs: NaN } : { id, count: r.count, firstMs: r.first - r.sentAt, lastMs: r.last - r.sentAt })
  }
  let incomplete = 0
  let missed = 0
  let comments = 0
  for (const conn of connections) {
    comments += conn.parser.comments
    let got = 0
    for (const id of conn.ids) if (id >= from && id <= to) got++
    if (got < to - from + 1) {
      incomplete++
      missed += to - from + 1 - got
    }
  }
  return { type: 'stats', open, ended, events: list, incomplete, missed, malformed, comments }
}

function stop (): void {
  for (const conn of connections) conn.socket.destroy()
  process.exit(0)
}

process.on('message', (message: ConnectMessage | StatsMessage | { type: 'stop' }) => {
  if (message.type === 'connect') void connect(message).then(send)
  else if (message.type === 'stats') send(stats(message))
  else if (message.type === 'stop') stop()
})
process.on('disconnect', stop)
// The harness starts this process as it starts a server (bench/lib/proc.ts): ready, no port.
send({ type: 'ready', port: 0, info: { verifiesJwt: false, limitsRate: false } })
