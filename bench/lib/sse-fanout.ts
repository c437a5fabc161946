/**
 * The SSE fan-out (issue 17): `clients` event streams open on one spikard process
 * (bench/servers/spikard-sse.ts, which broadcasts an event to every open stream each
 * second), held by one client process (bench/lib/sse-clients.ts) over 127.0.0.1. Records:
 *
 * - memory per connection: the server's RSS once every stream is open and two broadcasts
 *   have gone out, minus its RSS before the first connection, over the connections;
 * - CPU per delivered event: the server's CPU time over a window of `broadcasts` broadcasts
 *   (read between two broadcasts: once one has reached every client, and again once the
 *   window's last one has), over the events the clients received in it;
 * - delivered against expected (every client should get every event of the window), and
 *   how long a broadcast took to reach its last client.
 *
 * Both processes get their open-files limit from `prlimit --nofile=<clients + 1024>`, soft
 * and hard (node raises its soft limit to the hard one at start-up, so the hard one is what
 * bounds it; it must be within the hard limit this process has; the machine's limits are
 * not touched). Bounded: the connections must open within 60 s and the window end within
 * `broadcasts` + 5 s; both processes are stopped (by pid) at the end, whatever happened.
 */
import { execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuMicros, machineBusyMicros, memory, pinProcess, resetPeak, startServer, stopServer, type ServerProcess } from './proc.js'
import { median } from './stats.js'
import type { ConnectedReply, ConnectMessage, SettledReply, StatsReply } from './sse-clients.js'

const CLIENT_FILE = fileURLToPath(new URL('./sse-clients.ts', import.meta.url))
/** Descriptors beyond the connections (node's own, the log file, the listening socket). */
const SPARE_FILES = 1024
/** Connections opened a second, and at most in their TCP handshake at a time (the listen backlog is 511). */
const RATE = 2000
const CONCURRENCY = 200

export interface SseFanoutOptions {
  clients: number
  /** Broadcasts in the measured window (one a second). */
  broadcasts: number
  /** The run's temporary directory (the server's access log goes there). */
  logDir: string
  log: (line: string) => void
  /** Aborted when the run is interrupted: the processes are stopped. */
  signal?: AbortSignal
}

export interface SseWindow {
  /** Event ids of the window (inclusive). */
  from: number
  to: number
  seconds: number
  serverCpuMs: number
  clientCpuMs: number
  delivered: number
  expected: number
  /** Connections that missed an event of the window, and the copies missed. */
  incomplete: number
  missed: number
  malformed: number
  /** Connections that ended (closed by the server or an error) before the end. */
  ended: number
  cpuUsPerEvent: number
  clientCpuUsPerEvent: number
  /** ms from a broadcast's send to its first and its last arrival: median over the window, and the worst. */
  firstMsMedian: number
  lastMsMedian: number
  lastMsMax: number
  /** Keep-alive comments the clients received (spikard's sse.keepAlive, 15 s by default). */
  comments: number
  /** Other processes' CPU during the window, in cores. */
  otherCpu: number
}

export interface SseFanoutResult {
  clients: number
  broadcasts: number
  /** The open-files limit the two processes ran with (their /proc/<pid>/limits). */
  nofile?: string
  connected?: number
  failed?: number
  errors?: Record<string, number>
  /** Until every stream's head came (spikard sends it with the first event), and until every TCP handshake. */
  rampSeconds?: number
  tcpSeconds?: number
  rssBefore?: number
  rssAfter?: number
  rssPeak?: number
  bytesPerConnection?: number
  window?: SseWindow
  error?: string
}

/** The open-files limit in a /proc/<pid>/limits text: soft and hard, Infinity for unlimited. */
export function openFilesLimit (limits: string): { soft: number, hard: number } {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits)
  if (match === null) throw new Error('no "Max open files" line in the limits')
  const value = (v: string): number => v === 'unlimited' ? Infinity : Number(v)
  return { soft: value(match[1]), hard: value(match[2]) }
}

/**
 * The window's figures from the clients' stats: delivered copies against `connected`
 * copies of each event, CPU per delivered event, and the fan-out times.
 */
export function windowFigures (stats: StatsReply, connected: number, cpu: { serverUs: number, clientUs: number, seconds: number, otherCpu: number }): SseWindow {
  const delivered = stats.events.reduce((sum, e) => sum + e.count, 0)
  const expected = connected * stats.events.length
  const arrived = stats.events.filter((e) => e.count > 0)
  return {
    from: stats.events[0]?.id ?? NaN,
    to: stats.events.at(-1)?.id ?? NaN,
    seconds: cpu.seconds,
    serverCpuMs: cpu.serverUs / 1000,
    clientCpuMs: cpu.clientUs / 1000,
    delivered,
    expected,
    incomplete: stats.incomplete,
    missed: stats.missed,
    malformed: stats.malformed,
    ended: stats.ended,
    cpuUsPerEvent: cpu.serverUs / delivered,
    clientCpuUsPerEvent: cpu.clientUs / delivered,
    firstMsMedian: median(arrived.map((e) => e.firstMs)),
    lastMsMedian: median(arrived.map((e) => e.lastMs)),
    lastMsMax: arrived.length === 0 ? NaN : Math.max(...arrived.map((e) => e.lastMs)),
    comments: stats.comments,
    otherCpu: cpu.otherCpu
  }
}

/** The next message of `child` for which `pick` returns something; rejects after `timeoutMs` or on abort. */
export function waitFor<T> (child: ChildProcess, pick: (message: any) => T | undefined, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      signal?.removeEventListener('abort', onAbort)
    }
    const onMessage = (message: unknown): void => {
      const value = pick(message)
      if (value === undefined) return
      done()
      resolve(value)
    }
    const onExit = (): void => { done(); reject(new Error(`the client process exited while waiting for ${what}`)) }
    const onAbort = (): void => { done(); reject(new Error('interrupted')) }
    const timer = setTimeout(() => { done(); reject(new Error(`${what}: not within ${timeoutMs} ms`)) }, timeoutMs)
    child.on('message', onMessage)
    child.once('exit', onExit)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

export async function runSseFanout ({ clients, broadcasts, logDir, log, signal }: SseFanoutOptions): Promise<SseFanoutResult> {
  const result: SseFanoutResult = { clients, broadcasts }
  const need = clients + SPARE_FILES
  const own = openFilesLimit(readFileSync('/proc/self/limits', 'utf8'))
  if (own.hard < need) return { ...result, error: `the hard limit on open files is ${own.hard}, below the ${need} needed (raise it for the shell that runs the bench: ulimit -Hn)` }
  try {
    execFileSync('prlimit', ['--version'], { stdio: 'ignore', timeout: 5000 })
  } catch {
    return { ...result, error: 'prlimit (util-linux) is not available: the bench sets the open-files limit of its processes with it' }
  }
  const wrap = ['prlimit', `--nofile=${need}`]
  const env = { BENCH_LOG_DIR: logDir, NODE_ENV: 'production', BENCH_SSE_CLIENTS: String(clients) }
  let server: ServerProcess | undefined
  let client: ServerProcess | undefined
  try {
    server = await startServer({ name: 'spikard-sse', file: 'spikard-sse.ts', wrap, env })
    client = await startServer({ name: 'sse-clients', file: CLIENT_FILE, wrap, env })
    const limits = [server, client].map((p) => openFilesLimit(readFileSync(`/proc/${p.pid}/limits`, 'utf8')))
    result.nofile = `soft ${limits[0].soft}, hard ${limits[0].hard} (server); soft ${limits[1].soft}, hard ${limits[1].hard} (clients)`
    // The server on the last CPU, the clients on the others.
    const cpus = os.cpus().length
    if (cpus > 1) {
      pinProcess(server.pid, String(cpus - 1))
      pinProcess(client.pid, `0-${cpus - 2}`)
    }
    const child = client.child
    await sleep(1000)
    result.rssBefore = memory(server.pid).rss
    resetPeak(server.pid)

    const connected = waitFor(child, (m: ConnectedReply) => m.type === 'connected' ? m : undefined, 70_000, `${clients} connections`, signal)
    child.send({ type: 'connect', port: server.port, path: '/events', count: clients, concurrency: CONCURRENCY, rate: RATE, timeoutMs: 60_000 } satisfies ConnectMessage)
    const c = await connected
    Object.assign(result, { connected: c.connected, failed: c.failed, rampSeconds: c.seconds, tcpSeconds: c.tcpSeconds, ...(Object.keys(c.errors).length > 0 ? { errors: c.errors } : {}) })
    log(`${c.connected} of ${clients} streams open in ${c.seconds.toFixed(1)} s (TCP ${c.tcpSeconds.toFixed(1)} s)${c.failed > 0 ? `, ${c.failed} failed: ${JSON.stringify(c.errors)}` : ''}`)
    if (c.connected === 0) return { ...result, error: `no stream opened: ${JSON.stringify(c.errors)}` }

    // Two broadcasts to every stream, then the memory.
    let complete = 0
    await waitFor(child, (m: SettledReply) => m.type === 'settled' && m.complete && ++complete === 2 ? m : undefined, 10_000, 'two broadcasts reaching every client', signal)
    await sleep(200)
    const mem = memory(server.pid)
    Object.assign(result, { rssAfter: mem.rss, rssPeak: mem.peak, bytesPerConnection: (mem.rss - result.rssBefore) / c.connected })

    // The window: from one broadcast settled to the `broadcasts`-th after it.
    const first = await waitFor(child, (m: SettledReply) => m.type === 'settled' ? m : undefined, 5000, 'a broadcast', signal)
    const cpu0 = cpuMicros(server.pid)
    const client0 = cpuMicros(client.pid)
    const busy0 = machineBusyMicros()
    const self0 = process.cpuUsage()
    const t0 = performance.now()
    const last = first.id + broadcasts
    await waitFor(child, (m: SettledReply) => m.type === 'settled' && m.id >= last ? m : undefined, (broadcasts + 5) * 1000, `broadcast ${last}`, signal)
    const serverUs = cpuMicros(server.pid) - cpu0
    const clientUs = cpuMicros(client.pid) - client0
    const self = process.cpuUsage(self0)
    const seconds = (performance.now() - t0) / 1000
    const otherCpu = Math.max(0, machineBusyMicros() - busy0 - serverUs - clientUs - self.user - self.system) / (seconds * 1e6)
    const stats = waitFor(child, (m: StatsReply) => m.type === 'stats' ? m : undefined, 10_000, 'the stats', signal)
    child.send({ type: 'stats', from: first.id + 1, to: last })
    result.window = windowFigures(await stats, c.connected, { serverUs, clientUs, seconds, otherCpu })
    const w = result.window
    log(`events ${w.from}-${w.to}: ${w.delivered} of ${w.expected} delivered, ${w.cpuUsPerEvent.toFixed(1)} µs of server CPU per event, ${((result.bytesPerConnection ?? NaN) / 1024).toFixed(1)} KiB per connection, last client reached ${w.lastMsMedian.toFixed(0)} ms after the send (median)`)
    return result
  } catch (error) {
    return { ...result, error: (error as Error).message }
  } finally {
    // The clients first (so the server does not log 10,000 aborted streams while closing), then the server.
    for (const p of [client, server]) {
      if (p === undefined) continue
      const { code, forced } = await stopServer(p)
      if (code !== 0 || forced) log(`${p.name} did not exit cleanly (code ${code}${forced ? ', killed' : ''}): ${p.stderr().trim().split('\n').slice(-3).join(' | ')}`)
    }
  }
}

const MB = 1024 * 1024
const n = (x: number | undefined, digits = 0): string => x === undefined || !Number.isFinite(x) ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** The section of the report: the figures, and whether every client got every event. */
export function renderSse (r: SseFanoutResult): string {
  const out = [`### ${n(r.clients)} SSE clients on one spikard process, an event broadcast to all every second (GET /events, \`sse: true\`)`, '']
  if (r.error !== undefined) out.push(`Not measured: ${r.error}`, '')
  const w = r.window
  out.push('| figure | value |', '|---|--:|')
  out.push(`| streams open / asked | ${n(r.connected)} / ${n(r.clients)}${r.failed ? ` (${n(r.failed)} failed: ${Object.entries(r.errors ?? {}).map(([k, v]) => `${k} ×${v}`).join(', ')})` : ''} |`)
  out.push(`| time to open them (${n(RATE)} a second): TCP / every stream's head | ${n(r.tcpSeconds, 1)} s / ${n(r.rampSeconds, 1)} s |`)
  out.push(`| server RSS before / with every stream open (MB) | ${n((r.rssBefore ?? NaN) / MB, 1)} / ${n((r.rssAfter ?? NaN) / MB, 1)} (peak ${n((r.rssPeak ?? NaN) / MB, 1)}) |`)
  out.push(`| **memory per connection** (RSS growth / streams) | **${n((r.bytesPerConnection ?? NaN) / 1024, 1)} KiB** |`)
  if (w !== undefined) {
    out.push(`| window | events ${w.from}-${w.to} (${w.to - w.from + 1} broadcasts), ${n(w.seconds, 1)} s |`)
    out.push(`| **events delivered / expected** | **${n(w.delivered)} / ${n(w.expected)}**${w.incomplete > 0 ? ` (${n(w.incomplete)} clients missed ${n(w.missed)})` : ' (every client got every event)'} |`)
    out.push(`| **server CPU per delivered event** | **${n(w.cpuUsPerEvent, 2)} µs** (${n(w.serverCpuMs)} ms over the window, ${n(w.serverCpuMs / (w.to - w.from + 1), 1)} ms per broadcast) |`)
    out.push(`| client CPU per event (the harness's client process) | ${n(w.clientCpuUsPerEvent, 2)} µs |`)
    out.push(`| send to first / last client (median; worst last) | ${n(w.firstMsMedian, 1)} / ${n(w.lastMsMedian, 1)} ms; ${n(w.lastMsMax, 1)} ms |`)
    out.push(`| keep-alive comments received (sse.keepAlive, 15 s) | ${n(w.comments)} |`)
    if (w.malformed > 0 || w.ended > 0) out.push(`| malformed events / streams ended early | ${n(w.malformed)} / ${n(w.ended)} |`)
    out.push(`| other processes' CPU during the window | ${Math.round(w.otherCpu * 100)}% of a CPU${w.otherCpu > 0.15 ? ' (disturbed)' : ''} |`)
  }
  out.push('', `One server process, its open-files limit set by prlimit: ${r.nofile ?? '–'}. Server on the last CPU, the client process on the others; spikard's defaults (access log to a file), \`sse.maxConnections\` raised above the clients.`)
  return out.join('\n')
}
