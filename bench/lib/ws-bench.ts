/**
 * The WebSocket bench (issue 18): for each server of WS_SERVERS, in turn and rotated each
 * repetition (A B, B A, ...), a fresh server process and a fresh client process
 * (bench/lib/ws-clients.ts, the `ws` package), both through `prlimit --nofile`:
 *
 * - echo with validation: `echoSockets` sockets, each sending an `echo` message and the
 *   next as soon as its answer comes, 1 s of warm-up then `echoSeconds`: messages/s, the
 *   round trip's p50/p99, and the server's CPU per message. Budget: spikard at least 80%
 *   of bare @fastify/websocket's messages/s (median of the per-repetition ratios);
 * - then up to `clients` open sockets: memory per connection (the server's RSS with them
 *   open minus its RSS before the first, over the sockets);
 * - a broadcast to all of them (three times): from the server's send to the last socket's
 *   receipt.
 *
 * The spikard server (bench/servers/spikard-ws.ts) is measured once it exists: the same
 * route `GET /ws`, its messages (bench/servers/ws-messages.ts) declared as the route's
 * `config.websocket.receive`, `echo` sent back with `socket.sendJson`, `broadcast` through
 * `app.spikard.rooms.broadcast`, spikard's defaults otherwise.
 */
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuMicros, machineBusyMicros, memory, pinProcess, SERVERS_DIR, startServer, stopServer, type ServerProcess } from './proc.js'
import { median } from './stats.js'
import { openFilesLimit, waitFor } from './sse-fanout.js'
import type { WsBroadcastReply, WsConnectedReply, WsConnectMessage, WsEchoMessage, WsEchoReply } from './ws-clients.js'

const CLIENT_FILE = fileURLToPath(new URL('./ws-clients.ts', import.meta.url))
const SPARE_FILES = 1024
const RATE = 2000
const CONCURRENCY = 200

export const WS_SERVERS = [
  { name: 'ws-bare', file: 'ws-bare.ts', label: 'Fastify + @fastify/websocket alone, the same handler validating with Ajv' },
  { name: 'spikard-ws', file: 'spikard-ws.ts', label: 'spikard\'s defaults, a `websocket: true` route with `config.websocket.receive`' }
] as const
export const WS_BASE = 'ws-bare'
/** Issue 18: spikard's echo at least this share of bare @fastify/websocket's messages/s. */
export const WS_MIN_RATIO = 0.8

export interface WsSample {
  rep: number
  messagesPerS: number
  p50Ms: number
  p99Ms: number
  cpuUsPerMessage: number
  errorFrames: number
  otherCpu: number
  /** Measured in the first repetition only. */
  connected?: number
  bytesPerConnection?: number
  broadcastLastMs?: number[]
  broadcastReceived?: string
  invalid?: string
}

export interface WsBenchResult {
  clients: number
  echoSockets: number
  echoSeconds: number
  samples: Record<string, WsSample[]>
  /** server -> why it was not measured */
  skipped: Record<string, string>
  nofile?: string
}

export interface WsBenchOptions {
  clients: number
  reps: number
  echoSockets: number
  echoSeconds: number
  logDir: string
  log: (line: string) => void
  signal?: AbortSignal
}

export async function runWsBench (options: WsBenchOptions): Promise<WsBenchResult> {
  const { clients, reps, echoSockets, echoSeconds, log } = options
  const result: WsBenchResult = { clients, echoSockets, echoSeconds, samples: {}, skipped: {} }
  const need = clients + SPARE_FILES
  const own = openFilesLimit(readFileSync('/proc/self/limits', 'utf8'))
  const names: string[] = []
  for (const server of WS_SERVERS) {
    if (!existsSync(SERVERS_DIR + server.file)) result.skipped[server.name] = `bench/servers/${server.file} is not written yet (the WebSocket feature had not landed)`
    else if (own.hard < need) result.skipped[server.name] = `the hard limit on open files is ${own.hard}, below the ${need} needed`
    else names.push(server.name)
  }
  result.nofile = `prlimit --nofile=${need} (soft and hard) on the server and client processes`
  for (let rep = 1; rep <= reps; rep++) {
    const shift = names.length === 0 ? 0 : (rep - 1) % names.length
    for (const name of [...names.slice(shift), ...names.slice(0, shift)]) {
      if (options.signal?.aborted === true) return result
      const sample = await measure(name, rep, rep === 1, need, options)
      ;(result.samples[name] ??= []).push(sample)
      log(`rep ${rep}/${reps} ${name}: ${sample.invalid ?? `${Math.round(sample.messagesPerS)} echo/s, p99 ${sample.p99Ms.toFixed(2)} ms, ${sample.cpuUsPerMessage.toFixed(1)} µs/message${sample.bytesPerConnection === undefined ? '' : `; ${sample.connected} sockets, ${(sample.bytesPerConnection / 1024).toFixed(1)} KiB each, broadcast to the last in ${median(sample.broadcastLastMs ?? []).toFixed(0)} ms`}`}`)
    }
  }
  return result
}

async function measure (name: string, rep: number, withFanOut: boolean, need: number, { clients, echoSockets, echoSeconds, logDir, signal }: WsBenchOptions): Promise<WsSample> {
  const file = WS_SERVERS.find((s) => s.name === name)?.file as string
  const wrap = ['prlimit', `--nofile=${need}`]
  const env = { BENCH_LOG_DIR: logDir, NODE_ENV: 'production', BENCH_SERVER_NAME: name }
  let server: ServerProcess | undefined
  let client: ServerProcess | undefined
  const sample: WsSample = { rep, messagesPerS: NaN, p50Ms: NaN, p99Ms: NaN, cpuUsPerMessage: NaN, errorFrames: 0, otherCpu: NaN }
  try {
    server = await startServer({ name, file, wrap, env })
    client = await startServer({ name: 'ws-clients', file: CLIENT_FILE, wrap, env })
    const cpus = os.cpus().length
    if (cpus > 1) {
      pinProcess(server.pid, String(cpus - 1))
      pinProcess(client.pid, `0-${cpus - 2}`)
    }
    const child = client.child
    const connect = async (count: number): Promise<WsConnectedReply> => {
      const reply = waitFor(child, (m: WsConnectedReply) => m.type === 'connected' ? m : undefined, 70_000, `${count} sockets`, signal)
      child.send({ type: 'connect', port: (server as ServerProcess).port, path: '/ws', count, rate: RATE, concurrency: CONCURRENCY, timeoutMs: 60_000 } satisfies WsConnectMessage)
      return await reply
    }
    await sleep(500)
    const rssBefore = memory(server.pid).rss
    const first = await connect(echoSockets)
    if (first.connected < echoSockets) throw new Error(`${first.connected} of ${echoSockets} sockets opened: ${JSON.stringify(first.errors)}`)

    // The echo: the server's CPU over the measured part only (read when the client starts measuring would need a message; the warm-up is 1 s, so read after it).
    const echoReply = waitFor(child, (m: WsEchoReply) => m.type === 'echo' ? m : undefined, (echoSeconds + 10) * 1000, 'the echo', signal)
    child.send({ type: 'echo', sockets: echoSockets, warmupSeconds: 1, seconds: echoSeconds } satisfies WsEchoMessage)
    await sleep(1000)
    const cpu0 = cpuMicros(server.pid)
    const client0 = cpuMicros(client.pid)
    const busy0 = machineBusyMicros()
    const self0 = process.cpuUsage()
    const t0 = performance.now()
    const echo = await echoReply
    const cpu = cpuMicros(server.pid) - cpu0
    const self = process.cpuUsage(self0)
    const elapsed = (performance.now() - t0) / 1e3
    Object.assign(sample, {
      messagesPerS: echo.messages / echo.seconds,
      p50Ms: echo.p50Ms,
      p99Ms: echo.p99Ms,
      // The CPU window ends a little after the client's (its reply, the last round trips): a slight overestimate alike for every server.
      cpuUsPerMessage: cpu / echo.messages,
      errorFrames: echo.errorFrames,
      otherCpu: Math.max(0, machineBusyMicros() - busy0 - cpu - (cpuMicros(client.pid) - client0) - self.user - self.system) / (elapsed * 1e6),
      ...(echo.errorFrames > 0 || echo.messages === 0 ? { invalid: `${echo.errorFrames} error frames, ${echo.messages} echoes` } : {})
    })

    if (withFanOut) {
      const rest = await connect(clients - echoSockets)
      const connected = first.connected + rest.connected
      await sleep(500)
      sample.connected = connected
      sample.bytesPerConnection = (memory(server.pid).rss - rssBefore) / connected
      const lasts: number[] = []
      const received: string[] = []
      for (let i = 0; i < 3; i++) {
        const reply = waitFor(child, (m: WsBroadcastReply) => m.type === 'broadcast' ? m : undefined, 15_000, 'a broadcast', signal)
        child.send({ type: 'broadcast' })
        const b = await reply
        lasts.push(b.lastMs)
        received.push(`${b.received}/${b.expected}`)
        await sleep(200)
      }
      sample.broadcastLastMs = lasts
      sample.broadcastReceived = received.join(', ')
    }
    return sample
  } catch (error) {
    return { ...sample, invalid: (error as Error).message }
  } finally {
    for (const p of [client, server]) if (p !== undefined) await stopServer(p)
  }
}

const n = (x: number | undefined, digits = 0): string => x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** spikard-ws's echo messages/s as a share of ws-bare's, median of the per-repetition ratios. */
export function wsRatio (r: WsBenchResult, server = 'spikard-ws'): number {
  const base = new Map((r.samples[WS_BASE] ?? []).filter((s) => s.invalid === undefined).map((s) => [s.rep, s.messagesPerS]))
  return median((r.samples[server] ?? []).filter((s) => s.invalid === undefined && base.has(s.rep)).map((s) => s.messagesPerS / (base.get(s.rep) as number)))
}

/** The budget line, in the report's form: pass undefined when it could not be measured. */
export function wsBudget (r: WsBenchResult): { pass: boolean | undefined, text: string } {
  const ratio = wsRatio(r)
  const what = `spikard-ws: WebSocket echo with validation, messages/s ≥ ${Math.round(WS_MIN_RATIO * 100)}% of ${WS_BASE}'s`
  if (!Number.isFinite(ratio)) return { pass: undefined, text: `${what}: not measured${r.skipped['spikard-ws'] === undefined ? '' : ` (${r.skipped['spikard-ws']})`}` }
  return { pass: ratio >= WS_MIN_RATIO, text: `${what}: ${Math.round(ratio * 100)}%` }
}

export function renderWs (r: WsBenchResult): string {
  const out = [`### WebSocket: echo with validation (${r.echoSockets} sockets, closed loop, ${r.echoSeconds} s), ${n(r.clients)} open sockets, a broadcast to all (GET /ws)`, '']
  out.push(`| server | echo msg/s | × ${WS_BASE} | p50 ms | p99 ms | server CPU µs/msg | open sockets | memory per socket (KiB) | broadcast: send to last socket (ms) | n | notes |`)
  out.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|')
  for (const server of WS_SERVERS) {
    const samples = r.samples[server.name] ?? []
    const ok = samples.filter((s) => s.invalid === undefined)
    if (samples.length === 0) {
      out.push(`| ${server.name} | | | | | | | | | 0 | not measured: ${r.skipped[server.name] ?? '–'} |`)
      continue
    }
    const fan = samples.find((s) => s.bytesPerConnection !== undefined)
    const other = Math.max(...samples.map((s) => s.otherCpu).filter(Number.isFinite), 0)
    const notes = [
      fan?.broadcastReceived === undefined ? '' : `broadcasts received ${fan.broadcastReceived}`,
      other > 0.15 ? `disturbed: other processes used up to ${Math.round(other * 100)}% of a CPU` : '',
      ...[...new Set(samples.map((s) => s.invalid).filter((x) => x !== undefined))].map((i) => `invalid: ${i}`)
    ].filter((x) => x !== '').join('; ')
    out.push(`| ${server.name} | ${n(median(ok.map((s) => s.messagesPerS)))} | ${server.name === WS_BASE ? '100%' : `${n(wsRatio(r, server.name) * 100)}%`} | ${n(median(ok.map((s) => s.p50Ms)), 2)} | ${n(median(ok.map((s) => s.p99Ms)), 2)} | ${n(median(ok.map((s) => s.cpuUsPerMessage)), 1)} | ${n(fan?.connected)} | ${n((fan?.bytesPerConnection ?? NaN) / 1024, 1)} | ${n(median(fan?.broadcastLastMs ?? []), 0)} | ${ok.length} | ${notes} |`)
  }
  out.push('', `Servers: ${WS_SERVERS.map((s) => `\`${s.name}\`: ${s.label}`).join('; ')}. ${r.nofile ?? ''}. Client: the \`ws\` package in its own process; server and client on separate CPUs. Memory and broadcast are measured in the first repetition.`)
  return out.join('\n')
}
