/**
 * The WebSocket bench's client process (issue 18; started by bench/lib/ws-bench.ts through
 * prlimit, with a bench server's ready/stop protocol), with the `ws` package:
 *
 * - `connect`: opens `count` sockets to 127.0.0.1 (at most `rate` a second and
 *   `concurrency` handshakes at a time); answers `connected`;
 * - `echo`: on the first `sockets` open sockets, each sends an `echo` message and the next
 *   as soon as its answer comes (closed loop), for a warm-up and then `seconds`; answers
 *   with messages/s and the round trip's p50/p99 (µs precision), counting error frames;
 * - `broadcast`: asks the server, over the first socket, to send to every socket; answers
 *   with how many got it and when (from the server's send), once all have or after 10 s;
 * - `close`: closes every socket (1000) and answers `closed`; `stop`: exits.
 *
 * It exits when the harness goes away.
 */
import WebSocket from 'ws'
import { ECHO_TEXT } from '../servers/ws-messages.js'
import { pace } from './pace.js'

export interface WsConnectMessage { type: 'connect', port: number, path: string, count: number, rate: number, concurrency: number, timeoutMs: number }
export interface WsEchoMessage { type: 'echo', sockets: number, warmupSeconds: number, seconds: number }
/** `connected`: the sockets this `connect` opened (the process may hold others already). */
export interface WsConnectedReply { type: 'connected', connected: number, failed: number, errors: Record<string, number>, seconds: number }
export interface WsEchoReply { type: 'echo', messages: number, seconds: number, p50Ms: number, p99Ms: number, errorFrames: number }
export interface WsBroadcastReply { type: 'broadcast', received: number, expected: number, firstMs: number, medianMs: number, lastMs: number }

const sockets: WebSocket[] = []
const send = (message: object): void => { process.send?.(message) }
const now = (): number => performance.timeOrigin + performance.now()

/** Whatever a socket receives goes to the current listener (the echo loop, the broadcast count). */
let onMessage: (socket: WebSocket, data: { type?: string, seq?: number, at?: number }) => void = () => {}

function connect ({ port, path, count, rate, concurrency, timeoutMs }: WsConnectMessage): Promise<WsConnectedReply> {
  const t0 = performance.now()
  const errors: Record<string, number> = {}
  const note = (why: string): void => { errors[why] = (errors[why] ?? 0) + 1 }
  let handshaking = 0
  let answered = 0
  let opened = 0
  return new Promise((resolve) => {
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      clearInterval(ticker)
      resolve({ type: 'connected', connected: opened, failed: count - opened, errors, seconds: (performance.now() - t0) / 1000 })
    }
    const timer = setTimeout(() => {
      if (answered < count) note(`not open within ${timeoutMs} ms`)
      finish()
    }, timeoutMs)
    const answer = (): void => {
      handshaking--
      if (++answered === count) finish()
    }
    const open1 = (): void => {
      handshaking++
      const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false })
      let pending = true
      socket.on('open', () => {
        pending = false
        opened++
        sockets.push(socket)
        answer()
      })
      socket.on('message', (data) => {
        let value: { type?: string, seq?: number, at?: number }
        try {
          value = JSON.parse(data.toString())
        } catch {
          return
        }
        onMessage(socket, value)
      })
      socket.on('error', (error: NodeJS.ErrnoException) => note(error.code ?? error.message))
      socket.on('close', () => {
        if (pending) {
          pending = false
          answer()
        } else {
          const at = sockets.indexOf(socket)
          if (at !== -1) sockets.splice(at, 1)
        }
      })
    }
    const ticker = pace(count, rate, concurrency, () => handshaking, open1)
    if (count === 0) finish()
  })
}

async function echo ({ sockets: count, warmupSeconds, seconds }: WsEchoMessage): Promise<WsEchoReply> {
  const used = sockets.slice(0, count)
  let latencies = new Float64Array(1 << 16)
  let n = 0
  let errorFrames = 0
  let measuring = false
  let running = true
  const sentAt = new Map<WebSocket, number>()
  let seq = 0
  const fire = (socket: WebSocket): void => {
    sentAt.set(socket, performance.now())
    socket.send(JSON.stringify({ type: 'echo', seq: seq++, text: ECHO_TEXT }))
  }
  onMessage = (socket, data) => {
    const t = sentAt.get(socket)
    if (t === undefined) return
    if (data.type !== 'echo') errorFrames++
    else if (measuring) {
      if (n === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2)
        bigger.set(latencies)
        latencies = bigger
      }
      latencies[n++] = performance.now() - t
    }
    if (running) fire(socket)
    else sentAt.delete(socket)
  }
  for (const socket of used) fire(socket)
  await new Promise((resolve) => setTimeout(resolve, warmupSeconds * 1000))
  measuring = true
  const t0 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  measuring = false
  const elapsed = (performance.now() - t0) / 1000
  running = false
  // The last round trips in flight come back before the next measurement.
  const t1 = performance.now()
  while (sentAt.size > 0 && performance.now() - t1 < 2000) await new Promise((resolve) => setTimeout(resolve, 10))
  onMessage = () => {}
  const sorted = latencies.subarray(0, n).sort()
  const at = (p: number): number => n === 0 ? NaN : sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)]
  return { type: 'echo', messages: n, seconds: elapsed, p50Ms: at(50), p99Ms: at(99), errorFrames }
}

let broadcastSeq = 0
function broadcast (): Promise<WsBroadcastReply> {
  const seq = broadcastSeq++
  const expected = sockets.length
  const times: number[] = []
  let sentAtServer = NaN
  return new Promise((resolve) => {
    const finish = (): void => {
      clearTimeout(timer)
      onMessage = () => {}
      const sorted = times.map((t) => t - sentAtServer).sort((a, b) => a - b)
      resolve({ type: 'broadcast', received: times.length, expected, firstMs: sorted[0] ?? NaN, medianMs: sorted[sorted.length >> 1] ?? NaN, lastMs: sorted.at(-1) ?? NaN })
    }
    const timer = setTimeout(finish, 10_000)
    onMessage = (_socket, data) => {
      if (data.type !== 'broadcast' || data.seq !== seq) return
      sentAtServer = data.at ?? NaN
      times.push(now())
      if (times.length === expected) finish()
    }
    sockets[0]?.send(JSON.stringify({ type: 'broadcast', seq }))
    if (sockets.length === 0) finish()
  })
}

async function closeAll (): Promise<void> {
  const open = [...sockets]
  await Promise.all(open.map((socket) => new Promise<void>((resolve) => {
    const timer = setTimeout(() => { socket.terminate(); resolve() }, 5000)
    socket.once('close', () => { clearTimeout(timer); resolve() })
    socket.close(1000)
  })))
  sockets.length = 0
}

process.on('message', (message: WsConnectMessage | WsEchoMessage | { type: 'broadcast' | 'close' | 'stop' }) => {
  if (message.type === 'connect') void connect(message).then(send)
  else if (message.type === 'echo') void echo(message).then(send)
  else if (message.type === 'broadcast') void broadcast().then(send)
  else if (message.type === 'close') void closeAll().then(() => send({ type: 'closed' }))
  else if (message.type === 'stop') {
    for (const socket of sockets) socket.terminate()
    process.exit(0)
  }
})
process.on('disconnect', () => process.exit(0))
send({ type: 'ready', port: 0, info: { verifiesJwt: false, limitsRate: false } })
