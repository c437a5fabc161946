/**
 * The benchmark: `npm run bench` (= `tsx bench/run.ts`), `npm run bench -- --quick`.
 *
 * Starts every server of bench/servers/ in its own process, checks that each answers the
 * same payloads (and that the ones claiming JWT verification refuse a missing token),
 * then loads them with autocannon from this process: for each repetition, every server
 * in turn (rotated), each running all its scenarios back to back, the first visit of each
 * server and scenario preceded by a warm-up. For each run it records requests/s, p50/p99
 * latency, the server's CPU time per response (from /proc, not from the server's own
 * report) and its peak RSS; the 1 GiB stream records throughput and RSS growth.
 * Medians over the repetitions, ratios against bare Fastify taken within each repetition,
 * the budget lines (bench/lib/plan.ts), and the whole report into bench/RESULTS.md.
 *
 * Options: --quick, --check (exit 1 when a budget line fails), --reps N, --duration S,
 * --warmup-requests N, --warmup S (its time limit), --connections N, --rate R (fixed
 * offered load), --servers a,b, --scenarios json,post,jwt,limited,stream,stream-gen,sse,...,
 * --server name=file.ts (add a server of your own), --stream-mb N, --sse-clients N,
 * --sse-window S, --ws-clients N, --tsx-check, --ablate, --pin, --restart / --no-restart (a fresh process
 * per repetition; the default), --write / --no-write, --section NAME (the section
 * of RESULTS.md a run writes; default: its mode), --json FILE.
 * See bench/README.md.
 */
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { SignJWT } from 'jose'
import { ITEM, JWT, PAYLOAD } from './servers/common.js'
import { cpuMicros, cpuSource, machineBusyMicros, memory, pageFaults, pinProcess, resetPeak, startServer, stopServer, type ServerProcess } from './lib/proc.js'
import { runLoad, SPIN } from './lib/load.js'
import { runStream } from './lib/stream-client.js'
import { ABLATION_SERVERS, BUDGETS, SCENARIOS, SECTIONS, SERVERS, TSX_CHECK_SERVERS, serverFromSpec, type ScenarioDef, type ScenarioId, type SectionDef, type ServerDef } from './lib/plan.js'
import { runSseFanout } from './lib/sse-fanout.js'
import { runWsBench, wsBudget } from './lib/ws-bench.js'
import { NOISY_CPU, evaluateBudgets, renderBudgets, renderReport, renderServers, renderTables, writeResults, type LoadSample, type Results, type ServerRun, type StreamSample } from './lib/report.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const RESULTS_FILE = fileURLToPath(new URL('RESULTS.md', import.meta.url))

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    reps: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    'warmup-requests': { type: 'string' },
    connections: { type: 'string' },
    rate: { type: 'string' },
    servers: { type: 'string' },
    server: { type: 'string', multiple: true },
    scenarios: { type: 'string' },
    'stream-mb': { type: 'string' },
    'sse-clients': { type: 'string' },
    'sse-window': { type: 'string' },
    'ws-clients': { type: 'string' },
    section: { type: 'string' },
    pin: { type: 'boolean', default: false },
    restart: { type: 'boolean' },
    'no-restart': { type: 'boolean', default: false },
    'tsx-check': { type: 'boolean', default: false },
    ablate: { type: 'boolean', default: false },
    write: { type: 'boolean' },
    'no-write': { type: 'boolean', default: false },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false }
  },
  strict: true
})

if (args.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0].replace(/^\/\*\*|^ \* ?/gm, ''))
  process.exit(0)
}

const quick = args.quick
const tsxCheck = args['tsx-check']
const ablate = args.ablate
if (tsxCheck && ablate) throw new Error('--tsx-check and --ablate are separate runs')
const num = (value: string | undefined, fallback: number, name: string): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, found ${JSON.stringify(value)}`)
  return n
}
const settings = {
  reps: Math.max(1, Math.round(num(args.reps, quick ? 3 : 4, 'reps'))),
  duration: num(args.duration, quick ? 1 : 2, 'duration'),
  /** Warm-up: this many requests, at most `warmup` seconds. */
  warmupRequests: Math.round(num(args['warmup-requests'], quick ? 10_000 : 15_000, 'warmup-requests')),
  warmup: num(args.warmup, quick ? 1.5 : 2.5, 'warmup'),
  /** How many times longer a server process's first warm-up is (the quick run's processes live through every repetition). */
  firstWarmupFactor: quick ? 2 : 4,
  connections: Math.round(num(args.connections, 10, 'connections')),
  rate: args.rate === undefined ? undefined : num(args.rate, 0, 'rate'),
  streamBytes: Math.round(num(args['stream-mb'], 1024, 'stream-mb') * 1024 * 1024),
  /** The SSE fan-out: open event streams, and the broadcasts its window spans (one a second). */
  sseClients: Math.round(num(args['sse-clients'], 10_000, 'sse-clients')),
  sseWindow: Math.round(num(args['sse-window'], 15, 'sse-window')),
  /** The WebSocket bench: open sockets, and the echo's repetitions (a fresh process pair each). */
  wsClients: Math.round(num(args['ws-clients'], 10_000, 'ws-clients')),
  wsReps: 3,
  /** Re-measurements of a run during which other processes were busy: per run, and in all (so a busy machine cannot stretch the run much). */
  retries: quick ? 1 : 2,
  retryBudget: quick ? 3 : 20
}
const custom = [args.restart, args.server, args.reps, args.duration, args.warmup, args['warmup-requests'], args.connections, args.rate, args.servers, args.scenarios, args['stream-mb'], args['sse-clients'], args['sse-window'], args['ws-clients']].some((v) => v !== undefined)
const mode = tsxCheck ? 'tsx-check' : ablate ? 'ablate' : custom ? 'custom' : quick ? 'quick' : 'full'
const write = args['no-write'] ? false : args.write ?? mode !== 'custom'
/** The section of RESULTS.md the run replaces: its mode's, unless named (so a custom run of a few scenarios can keep the last general custom run). */
const section = args.section ?? mode
if (!/^[\w.-]+$/.test(section)) throw new Error(`--section: letters, digits, '.', '-' and '_' only, found ${JSON.stringify(section)}`)
/**
 * A fresh process per server and repetition: one process can stay 20-30% slower (or
 * faster) than an identical one for its whole life (see RESULTS.md), which repetitions in
 * the same process cannot average out; and a process kept through the repetitions waits
 * while the others run theirs, so its later repetitions carry V8's memory reducer (see
 * the visiting order below). Always, unless --no-restart (--restart is the default).
 */
const restart = !args['no-restart']

// --server name=path/to/server.ts (repeatable): a server of your own next to the others, e.g. a variant being tried.
const extraServers: ServerDef[] = (args.server ?? []).map((spec) => {
  try {
    return serverFromSpec(spec)
  } catch (error) {
    throw new Error(`--server: ${(error as Error).message}`)
  }
})
const allServers = [...(tsxCheck ? TSX_CHECK_SERVERS : ablate ? ABLATION_SERVERS : SERVERS), ...extraServers]
const pickedServers = args.servers?.split(',').map((s) => s.trim()).filter((s) => s !== '')
for (const name of pickedServers ?? []) {
  if (!allServers.some((s) => s.name === name)) throw new Error(`--servers: unknown server ${JSON.stringify(name)} (known: ${allServers.map((s) => s.name).join(', ')})`)
}
// In the order given by --servers (the order each repetition visits them), else the plan's.
const serverDefs: ServerDef[] = pickedServers === undefined
  ? allServers.filter((s) => !(quick && s.fullOnly === true))
  : [...pickedServers.map((name) => allServers.find((s) => s.name === name) as ServerDef), ...extraServers.filter((s) => !pickedServers.includes(s.name))]
// Without --scenarios: every scenario and section, but those marked fullOnly in --quick.
const pickedScenarios = (args.scenarios?.split(',').map((s) => s.trim()) ??
  (tsxCheck || ablate ? ['json'] : [...SCENARIOS, ...SECTIONS].filter((s) => !(quick && s.fullOnly === true)).map((s) => s.id)))
for (const id of pickedScenarios) {
  if (![...SCENARIOS, ...SECTIONS].some((s) => s.id === id)) throw new Error(`--scenarios: unknown scenario ${JSON.stringify(id)} (known: ${[...SCENARIOS, ...SECTIONS].map((s) => s.id).join(', ')})`)
}
const scenarios: ScenarioDef[] = SCENARIOS.filter((s) => pickedScenarios.includes(s.id))
const sections: SectionDef[] = SECTIONS.filter((s) => pickedScenarios.includes(s.id))
// The reference of the ratios: bare Fastify (the first server when it is not in the run).
const base = serverDefs.some((s) => s.name === (tsxCheck ? TSX_CHECK_SERVERS[0].name : 'fastify')) ? (tsxCheck ? TSX_CHECK_SERVERS[0].name : 'fastify') : serverDefs[0]?.name ?? 'fastify'
const streamBase = 'raw'
const QUICK_STREAM = new Set([streamBase, base, ...BUDGETS.filter((b) => b.kind === 'stream' && b.scenario === 'stream').map((b) => b.server)])

/** Whether a server is measured on a scenario (its own list and the scenario's). */
function serves (def: ServerDef, scenario: ScenarioDef): boolean {
  return (def.scenarios === undefined || def.scenarios.includes(scenario.id)) && (scenario.only === undefined || scenario.only.includes(def.name))
}

/** The stream-file scenario's file: `bytes` of the stream's 64 KB pattern, written in 1 MiB blocks. */
function writeStreamFile (file: string, bytes: number): void {
  const block = Buffer.alloc(1024 * 1024, 'spikard streams ')
  const fd = openSync(file, 'w')
  try {
    for (let written = 0; written < bytes; written += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - written))
  } finally {
    closeSync(fd)
  }
}

/**
 * Reads the stream-file scenario's file through once, into nothing. This machine keeps
 * about 2 GB of page cache however much memory is free, and the access logs the servers
 * write between two transfers push part of the file out: a server would read some of it
 * from the disk by chance of its place in the order (bench/RESULTS.md, thirteenth
 * session). So each transfer starts with the whole file cached, for every server alike.
 */
function cacheFile (file: string): void {
  const block = Buffer.allocUnsafe(1024 * 1024)
  const fd = openSync(file, 'r')
  try {
    while (readSync(fd, block) > 0);
  } finally {
    closeSync(fd)
  }
}

function commandLine (): string {
  const rest = process.argv.slice(2).join(' ')
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${rest === '' ? '' : ` -- ${rest}`}`
  return `npx tsx bench/run.ts${rest === '' ? '' : ` ${rest}`}`
}

function version (pkg: string): string {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return '?'
  }
}

function gitRevision (): string {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, timeout: 5000, encoding: 'utf8' }).trim()
  } catch {
    return 'unknown'
  }
}

const log = (line: string): void => { console.log(line) }

async function main (): Promise<number> {
  const t0 = performance.now()
  const cpus = os.cpus()
  const results: Results = {
    meta: {
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      command: commandLine(),
      mode,
      machine: `${cpus.length} cores, ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB RAM, Linux ${os.release()}`,
      versions: `Node ${process.version}, spikard ${gitRevision()}, fastify ${version('fastify')}, express ${version('express')}, hono ${version('hono')}, autocannon ${version('autocannon')}`,
      settings: `${settings.reps} repetitions, ${settings.duration} s per run after a warm-up of ${settings.warmupRequests} requests (at most ${settings.warmup} s) per server and scenario (${settings.firstWarmupFactor} times that for a process's first), ${settings.connections} connections, pipelining 1, ${settings.rate === undefined ? 'closed loop (as fast as each server answers)' : `a fixed ${settings.rate} requests/s`}${SPIN ? ' with the harness polling rather than sleeping' : ''}, each server's scenarios back to back, the servers' order rotated each repetition, ${restart ? 'a fresh process per server and repetition, alone while it is measured' : 'one process per server for the whole run'}, stream ${settings.streamBytes / 1024 ** 2} MiB (server and harness on separate CPUs during transfers)${sections.some((s) => s.id === 'sse') ? `, SSE fan-out ${settings.sseClients} clients over ${settings.sseWindow} broadcasts` : ''}`,
      cpuSource: ''
    },
    base,
    streamBase,
    servers: [],
    scenarios: scenarios.map((s) => s.id),
    load: {},
    stream: {},
    skipped: {}
  }
  const skip = (scenario: ScenarioId, server: string, why: string): void => {
    (results.skipped[scenario] ??= {})[server] = why
  }

  // The token every request carries (servers without auth ignore it): same request bytes everywhere.
  const token = await new SignJWT({ scope: 'read' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(JWT.issuer).setAudience(JWT.audience).setSubject(JWT.subject)
    .setIssuedAt().setExpirationTime('2h')
    .sign(new TextEncoder().encode(JWT.secret))
  const headers = { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip, deflate, br' }
  const postBody = JSON.stringify(ITEM)

  // The temporary directory of the run (log files, the stream-file scenario's file), removed at the end.
  const logDir = mkdtempSync(join(os.tmpdir(), 'spikard-bench-'))
  const streamFile = join(logDir, 'stream-source.bin')
  const running = new Map<string, ServerProcess>()
  let interrupted = false
  // Stops the SSE fan-out's processes (bench/lib/sse-fanout.ts) on an interruption.
  const abort = new AbortController()
  const onSignal = (): void => {
    if (interrupted) return
    interrupted = true
    log('\ninterrupted: stopping the servers')
    abort.abort()
    void Promise.allSettled([...running.values()].map(stopServer)).then(() => {
      rmSync(logDir, { recursive: true, force: true })
      process.exit(130)
    })
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  if (args.pin) {
    // The harness (and autocannon in it) on every CPU but the last; the servers on the last.
    pinProcess(process.pid, `0-${Math.max(0, cpus.length - 2)}`)
    results.meta.settings += `, servers pinned to CPU ${cpus.length - 1} and the harness to the others (taskset)`
  }
  if (tsxCheck) await compileRaw()
  if (scenarios.some((s) => s.id === 'stream-file')) {
    const t = performance.now()
    writeStreamFile(streamFile, settings.streamBytes)
    log(`wrote the ${settings.streamBytes / 1024 ** 2} MiB file of the stream-file scenario in ${Math.round(performance.now() - t)} ms (removed at the end)`)
  }
  log(`spikard bench (${mode}): ${results.meta.settings}`)
  log(`servers: ${serverDefs.filter((d) => scenarios.some((s) => serves(d, s))).map((s) => s.name).join(', ') || 'none'}; scenarios: ${[...scenarios, ...sections].map((s) => s.id).join(', ')}`)

  let failures = 0
  let retried = 0
  async function stopOne (name: string): Promise<void> {
    const server = running.get(name)
    if (server === undefined) return
    running.delete(name)
    const { code, signal, forced } = await stopServer(server)
    const run = results.servers.find((r) => r.name === name)
    if (run !== undefined && (code !== 0 || forced)) run.exit = `exit: code ${code}, signal ${signal}${forced ? ' (had to be killed)' : ''}`
    if (code !== 0 || forced) log(`  ${name} did not exit cleanly: code ${code}, signal ${signal}${forced ? ', killed' : ''}\n${server.stderr().trim().split('\n').slice(-5).join('\n')}`)
  }
  async function stopRunning (): Promise<void> {
    for (const name of [...running.keys()]) await stopOne(name)
  }
  try {
    // Start the servers one at a time (so the start-up times are comparable).
    const spawnServer = async (def: ServerDef): Promise<ServerProcess> => startServer({
      name: def.name,
      file: def.file,
      tsx: def.tsx,
      ...(args.pin ? { cpu: os.cpus().length - 1 } : {}),
      env: { BENCH_LOG_DIR: logDir, BENCH_STREAM_BYTES: String(settings.streamBytes), BENCH_STREAM_FILE: streamFile, NODE_ENV: 'production', BENCH_SERVER_NAME: def.name, ...def.env }
    })
    // A server with nothing to measure in this run (--scenarios stream-gen, sse) is not started.
    for (const def of serverDefs.filter((d) => scenarios.some((s) => serves(d, s)))) {
      const run: ServerRun = { name: def.name, label: def.label }
      results.servers.push(run)
      try {
        const server = await spawnServer(def)
        running.set(def.name, server)
        Object.assign(run, { pid: server.pid, readyMs: server.readyMs, info: server.info })
        const missing = Object.entries(server.info.missing ?? {}).map(([k, why]) => `${k} OFF (${why})`)
        log(`  started ${def.name.padEnd(22)} pid ${server.pid}, ready in ${Math.round(server.readyMs)} ms${missing.length > 0 ? `; ${missing.join('; ')}` : ''}`)
      } catch (error) {
        failures++
        run.error = (error as Error).message
        log(`  FAILED to start ${def.name}: ${run.error}`)
      }
    }
    results.meta.cpuSource = (() => { for (const s of running.values()) cpuMicros(s.pid); return cpuSource() })()

    // Every server must answer every scenario alike before it is measured.
    const measured = new Map<ScenarioId, string[]>()
    for (const scenario of scenarios) {
      const list: string[] = []
      for (const def of serverDefs) {
        const server = running.get(def.name)
        if (server === undefined) continue
        if (!serves(def, scenario)) continue
        // --quick streams only what the budget compares (each transfer takes a second or two).
        if (scenario.id === 'stream' && mode === 'quick' && !QUICK_STREAM.has(def.name)) continue
        const problem = scenario.stream !== undefined ? undefined : await probe(server, scenario, headers, postBody)
        if (problem !== undefined) {
          failures++
          skip(scenario.id, def.name, problem)
          log(`  ${def.name} / ${scenario.id}: not measured: ${problem}`)
          continue
        }
        list.push(def.name)
      }
      measured.set(scenario.id, list)
    }
    // Each repetition starts its own processes (see below): these have answered and stop.
    if (restart) await stopRunning()

    /** `server\0scenario` pairs warmed up, and the server processes past their first, longer warm-up. */
    const warmed = new Set<string>()
    const pastFirstWarmup = new Set<string>()
    /** Forgets what a server's process has been through: a fresh one is warmed up again. */
    const forget = (name: string): void => {
      for (const scenario of scenarios) warmed.delete(`${name}\0${scenario.id}`)
      pastFirstWarmup.delete(name)
    }
    // Every server measured in at least one scenario, in the servers' order.
    const visited = serverDefs.map((d) => d.name).filter((name) => [...measured.values()].some((list) => list.includes(name)))
    for (let rep = 1; rep <= settings.reps; rep++) {
      // Each repetition starts one server further along (A B C, B C A, C A B): no server
      // always runs first or last. A server runs all its scenarios back to back, so no
      // measurement follows a wait: a process left idle while the others are measured
      // has its heap shrunk by V8's memory reducer, and under load again it pays for
      // extra collections for seconds (bench/RESULTS.md, twelfth session).
      const shift = visited.length === 0 ? 0 : (rep - 1) % visited.length
      const lines = new Map<ScenarioId, string[]>()
      for (const name of [...visited.slice(shift), ...visited.slice(0, shift)]) {
        if (interrupted) return 130
        if (restart) {
          // A fresh process for each server and repetition (unless --no-restart), started when
          // its turn comes and stopped when it ends, so one process's luck (JIT decisions,
          // memory layout) does not carry through every repetition, and no other server's
          // process is alive, even idle, while one is measured (the processes of the answer
          // check were stopped after it). One that fails to start misses this repetition only.
          forget(name)
          try {
            running.set(name, await spawnServer(serverDefs.find((d) => d.name === name) as ServerDef))
          } catch (error) {
            failures++
            log(`  FAILED to start ${name} for repetition ${rep} (not measured in it): ${(error as Error).message}`)
          }
        }
        const server = running.get(name)
        if (server === undefined) continue
        for (const scenario of scenarios) {
          if (interrupted) return 130
          if (!(measured.get(scenario.id) ?? []).includes(name)) continue
          const line = lines.get(scenario.id) ?? []
          lines.set(scenario.id, line)
          if (scenario.stream !== undefined) {
            // Server on the last CPU, the harness (the client) on the others, for every transfer.
            const cpuCount = os.cpus().length
            const pinned = cpuCount > 1 && pinProcess(server.pid, String(cpuCount - 1)) && pinProcess(process.pid, `0-${cpuCount - 2}`)
            if (!warmed.has(`${name}\0${scenario.id}`)) {
              // Warm both ends of the streaming path: 64 MiB, then hang up.
              await runStream(server.port, scenario.path, () => 0, 60_000, 64 * 1024 ** 2, scenario.stream.headers).catch(() => {})
              await sleep(100)
              warmed.add(`${name}\0${scenario.id}`)
            }
            let sample = await measureStream(server, rep, scenario)
            for (let retry = 0; retry < settings.retries && retried < settings.retryBudget && (sample.otherCpu ?? 0) > NOISY_CPU; retry++) {
              const again = await measureStream(server, rep, scenario)
              retried++
              if ((again.otherCpu ?? 0) < (sample.otherCpu ?? 0)) sample = again
            }
            if (pinned && !args.pin) {
              pinProcess(server.pid, `0-${cpuCount - 1}`)
              pinProcess(process.pid, `0-${cpuCount - 1}`)
            }
            ;((results.stream[scenario.id] ??= {})[server.name] ??= []).push(sample)
            line.push(`${server.name} ${sample.invalid === undefined ? `${Math.round(sample.mbPerS)} MB/s +${(sample.rssGrowth / 1024 ** 2).toFixed(1)} MB` : 'INVALID'}`)
            continue
          }
          const loadOptions = {
            port: server.port,
            path: scenario.path,
            method: scenario.method,
            headers: scenario.method === 'POST' ? { ...headers, 'content-type': 'application/json' } : headers,
            ...(scenario.method === 'POST' ? { body: postBody } : {}),
            connections: settings.connections,
            ...(settings.rate === undefined ? {} : { rate: settings.rate })
          }
          if (!warmed.has(`${name}\0${scenario.id}`)) {
            // Warm up by request count, so a slow server gets as many JIT-warming requests as a
            // fast one; a process's first warm-up is longer: a fresh process goes on getting
            // cheaper for tens of thousands of requests (bench/README.md).
            const factor = pastFirstWarmup.has(name) ? 1 : settings.firstWarmupFactor
            await runLoad({ ...loadOptions, amount: settings.warmupRequests * factor, duration: settings.warmup * factor })
            warmed.add(`${name}\0${scenario.id}`)
            pastFirstWarmup.add(name)
          }
          let sample = await measureLoad(server, rep, { ...loadOptions, duration: settings.duration })
          // Another process took CPU during the run (a test suite, a build): measure again, keep the quieter one.
          for (let retry = 0; retry < settings.retries && retried < settings.retryBudget && (sample.otherCpu ?? 0) > NOISY_CPU; retry++) {
            const again = await measureLoad(server, rep, { ...loadOptions, duration: settings.duration })
            retried++
            if ((again.otherCpu ?? 0) < (sample.otherCpu ?? 0)) sample = again
          }
          ;((results.load[scenario.id] ??= {})[server.name] ??= []).push(sample)
          line.push(`${server.name} ${sample.invalid === undefined ? `${sample.cpuUsPerReq.toFixed(1)}µs` : 'INVALID'}`)
        }
        if (restart) await stopOne(name)
      }
      for (const scenario of scenarios) {
        const line = lines.get(scenario.id)
        if (line !== undefined) log(`  rep ${rep}/${settings.reps} ${scenario.id.padEnd(7)} ${line.join(' | ')}`)
      }
    }
    // The sections run alone, once the scenarios' servers have stopped.
    await stopRunning()
    if (sections.some((s) => s.id === 'sse') && !interrupted) {
      log(`  SSE fan-out: ${settings.sseClients} clients, ${settings.sseWindow} broadcasts`)
      results.sse = await runSseFanout({ clients: settings.sseClients, broadcasts: settings.sseWindow, logDir, log: (line) => log(`    ${line}`), signal: abort.signal })
      if (results.sse.error !== undefined) {
        failures++
        log(`  SSE fan-out not measured: ${results.sse.error}`)
      }
    }
    if (sections.some((s) => s.id === 'ws') && !interrupted) {
      log(`  WebSocket: echo, ${settings.wsClients} sockets and a broadcast, ${settings.wsReps} repetitions`)
      results.ws = await runWsBench({ clients: settings.wsClients, reps: settings.wsReps, echoSockets: 50, echoSeconds: 3, logDir, log: (line) => log(`    ${line}`), signal: abort.signal })
      if (Object.values(results.ws.samples).flat().some((s) => s.invalid !== undefined)) failures++
    }
  } finally {
    await stopRunning()
    rmSync(logDir, { recursive: true, force: true })
  }
  results.meta.durationS = (performance.now() - t0) / 1000
  results.meta.retried = retried

  const budgets = tsxCheck || ablate ? [] : [...evaluateBudgets(results), ...(results.ws === undefined ? [] : [wsBudget(results.ws)])]
  log('')
  log(renderServers(results))
  log('')
  log(renderTables(results))
  if (budgets.length > 0) {
    log('Budget:')
    log(renderBudgets(budgets))
  }
  if (retried > 0) log(`\n${retried} run(s) measured again because other processes were using the CPU`)
  log(`\nwall time ${Math.round(results.meta.durationS)} s`)
  if (write) {
    writeResults(RESULTS_FILE, section, renderReport(results, budgets))
    log(`results written to bench/RESULTS.md (section "${section}")`)
  }
  if (args.json !== undefined) writeFileSync(args.json, JSON.stringify({ results, budgets }, null, 2))

  if (failures > 0) {
    log(`\n${failures} server(s) or scenario(s) could not be measured: see above`)
    return 2
  }
  if (args.check && budgets.some((b) => b.pass === false)) return 1
  return 0

  async function measureLoad (server: ServerProcess, rep: number, options: Parameters<typeof runLoad>[0]): Promise<LoadSample> {
    const logFile = server.info.log
    if (logFile !== undefined) truncateSync(logFile, 0)
    resetPeak(server.pid)
    const cpu0 = cpuMicros(server.pid)
    const faults0 = pageFaults(server.pid)
    const busy0 = machineBusyMicros()
    const self0 = process.cpuUsage()
    const t = performance.now()
    const r = await runLoad(options)
    await sleep(50) // in-flight responses and asynchronous log writes finish
    const cpu = cpuMicros(server.pid) - cpu0
    const faults1 = pageFaults(server.pid)
    const self = process.cpuUsage(self0)
    const otherCpu = Math.max(0, machineBusyMicros() - busy0 - cpu - self.user - self.system) / ((performance.now() - t) * 1000)
    const { peak } = memory(server.pid)
    const bad = r.responses - r.ok + r.errors + r.timeouts
    return {
      rep,
      rps: r.rps,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
      cpuUsPerReq: cpu / r.responses,
      responses: r.responses,
      peakRss: peak,
      otherCpu,
      faultsPerReq: (faults1.minor - faults0.minor + faults1.major - faults0.major) / r.responses,
      ...(logFile === undefined ? {} : { logBytesPerReq: statSync(logFile).size / r.responses }),
      ...(bad > 0 || r.responses === 0
        ? { invalid: `${r.responses - r.ok} non-2xx (${Object.entries(r.statusCodes).map(([c, n]) => `${c}×${n}`).join(', ')}), ${r.errors} errors, ${r.timeouts} timeouts` }
        : {})
    }
  }

  async function measureStream (server: ServerProcess, rep: number, scenario: ScenarioDef): Promise<StreamSample> {
    const requestHeaders = scenario.stream?.headers ?? {}
    // The source's size: a scenario may ask for less than --stream-mb (`?bytes=N`).
    const source = Math.min(settings.streamBytes, scenario.stream?.maxBytes ?? Infinity)
    const path = source === settings.streamBytes ? scenario.path : `${scenario.path}?bytes=${source}`
    const asked = requestHeaders['accept-encoding']
    if (scenario.id === 'stream-file') cacheFile(streamFile)
    await sleep(100)
    const rssBefore = memory(server.pid).rss
    const reset = resetPeak(server.pid)
    const cpu0 = cpuMicros(server.pid)
    const busy0 = machineBusyMicros()
    const self0 = process.cpuUsage()
    const t = performance.now()
    try {
      const r = await runStream(server.port, path, () => memory(server.pid).rss, 60_000, Infinity, requestHeaders)
      await sleep(50)
      const cpu = cpuMicros(server.pid) - cpu0
      const self = process.cpuUsage(self0)
      const otherCpu = Math.max(0, machineBusyMicros() - busy0 - cpu - self.user - self.system) / ((performance.now() - t) * 1000)
      const peak = Math.max(reset ? memory(server.pid).peak : 0, r.sampledPeak)
      // Identity: every byte counted. Compressed (the scenario asked for it): a complete
      // response in an encoding it accepts stands for the whole source (not inflated here).
      const encoding = r.headers['content-encoding']
      const problem = r.status !== 200
        ? `status ${r.status}`
        : asked === undefined
          ? encoding !== undefined ? `content-encoding ${encoding} though the request accepted none` : r.bytes !== source ? `${r.bytes} of ${source} bytes` : undefined
          : encoding === undefined || !asked.includes(encoding) ? `content-encoding ${encoding ?? 'none'} though the request accepted ${asked}` : !r.complete ? `the ${encoding} response ended early (${r.bytes} bytes)` : undefined
      const bytes = problem === undefined ? source : r.bytes
      return {
        rep,
        bytes,
        ...(encoding === undefined ? {} : { wire: { bytes: r.bytes, encoding } }),
        seconds: r.seconds,
        mbPerS: bytes / 1024 ** 2 / r.seconds,
        rssBefore,
        rssGrowth: peak - rssBefore,
        cpuMsPerGiB: cpu / 1000 / (bytes / 1024 ** 3),
        otherCpu,
        ...(problem === undefined ? {} : { invalid: problem })
      }
    } catch (error) {
      return { rep, bytes: 0, seconds: NaN, mbPerS: NaN, rssBefore, rssGrowth: NaN, cpuMsPerGiB: NaN, invalid: (error as Error).message }
    }
  }
}

/** bench/.build/raw.mjs: bench/servers/raw.ts compiled by esbuild (tsx's compiler), its packages left to node_modules. */
async function compileRaw (): Promise<void> {
  const name = 'esbuild' // tsx's own dependency
  const esbuild: any = await import(name)
  await esbuild.build({
    entryPoints: [fileURLToPath(new URL('servers/raw.ts', import.meta.url))],
    outfile: fileURLToPath(new URL('.build/raw.mjs', import.meta.url)),
    bundle: true,
    packages: 'external',
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning'
  })
}

/**
 * One request of the scenario, as the load sends it: 200 and the expected body, or why
 * not. A server that says it verifies JWTs must refuse a missing and a forged token; one
 * that says it limits must send rate-limit headers.
 */
async function probe (server: ServerProcess, scenario: ScenarioDef, headers: Record<string, string>, postBody: string): Promise<string | undefined> {
  const url = `http://127.0.0.1:${server.port}${scenario.path}`
  const timeout = (): AbortSignal => AbortSignal.timeout(5000)
  try {
    const res = scenario.method === 'POST'
      ? await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: postBody, signal: timeout() })
      : await fetch(url, { headers, signal: timeout() })
    const text = await res.text()
    const expected = JSON.stringify(scenario.method === 'POST' ? ITEM : PAYLOAD)
    if (res.status !== 200) return `answered ${res.status}: ${text.slice(0, 200)}`
    if (scenario.answer !== undefined) return scenario.answer(text)
    if (res.headers.get('content-encoding') !== null) return `compressed a ${text.length}-byte response (content-encoding ${res.headers.get('content-encoding')}): the scenario expects it under the threshold`
    let body: string
    try { body = JSON.stringify(JSON.parse(text)) } catch { body = text }
    if (body !== expected) return `answered ${body.slice(0, 200)} instead of ${expected}`
    if (scenario.method === 'POST') {
      const bad = await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ name: '', price: -1 }), signal: timeout() })
      await bad.arrayBuffer()
      if (bad.status < 400 || bad.status >= 500) return `accepted an invalid body (status ${bad.status}): no schema validation`
    }
    if (scenario.feature === 'jwt' && server.info.verifiesJwt) {
      const { authorization, ...rest } = headers
      for (const [what, h] of [['no token', rest], ['a forged token', { ...rest, authorization: authorization.slice(0, -4) + 'AAAA' }]] as const) {
        const r = await fetch(url, { headers: h, signal: timeout() })
        await r.arrayBuffer()
        if (r.status !== 401) return `says it verifies JWTs but answered ${r.status} to ${what}`
      }
    }
    if (scenario.feature === 'rateLimit' && server.info.limitsRate) {
      if (!['x-ratelimit-limit', 'ratelimit-limit', 'ratelimit', 'ratelimit-policy'].some((h) => res.headers.has(h))) return 'says it limits the rate but sent no rate-limit header'
    }
    return undefined
  } catch (error) {
    return `request failed: ${(error as Error).message}`
  }
}

const code = await main().catch((error) => {
  console.error(error)
  return 2
})
// Nothing of the harness should still be running; exit even if a library left a handle open.
process.exit(code)
