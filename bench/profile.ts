/**
 * Where the time goes: `npx tsx bench/profile.ts [server | name=file ...] [--scenario json] [--duration 10]`.
 *
 * Starts each server (default: spikard-all and fastify) with `node --cpu-prof`, warms it
 * up, loads it with autocannon as bench/run.ts does, stops it (the profile is written at
 * exit), and reads the profile back, keeping only the samples taken during the measured
 * load. Prints, per server, the self time per request by owner (node internals, each
 * package, each spikard file) and the top functions by self time; then, against the
 * last server named (fastify by default), where the extra
 * microseconds per request go. Profiles stay in bench/.build/profiles/ for Chrome DevTools
 * or speedscope. `--callers NAME` (repeatable) also prints the stacks that lead to the
 * functions named NAME (e.g. `--callers nextTick --callers createAbortSignal`).
 *
 * `--alloc` samples allocations instead of time (lib/alloc-sampler.mjs: V8's sampling heap
 * profiler, freed objects included): the bytes each request allocates, by owner and by
 * function, during the measured load. Unlike CPU time, the figure barely moves with the
 * machine's speed or noise (two runs of 20,000 requests each 0.2% apart; allocations that
 * are no request's weigh more in a short window), so it compares two commits on a noisy VM.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { SignJWT } from 'jose'
import { ITEM, JWT } from './servers/common.js'
import { runLoad } from './lib/load.js'
import { SCENARIOS, SERVERS, serverFromSpec, type ServerDef } from './lib/plan.js'
import { startServer, stopServer, type ServerProcess } from './lib/proc.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const OUT = fileURLToPath(new URL('.build/profiles/', import.meta.url))

const { values: args, positionals } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'json' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '10' },
    top: { type: 'string', default: '25' },
    interval: { type: 'string', default: '100' },
    callers: { type: 'string', multiple: true },
    alloc: { type: 'boolean', default: false }
  },
  allowPositionals: true
})

// A known server's name, or `name=file` (a worktree's spikard-all.ts, to compare two commits).
const servers = (positionals.length > 0 ? positionals : ['spikard-all', 'fastify']).map((arg): ServerDef => {
  if (arg.includes('=')) return serverFromSpec(arg)
  const def = SERVERS.find((s) => s.name === arg)
  if (def === undefined) throw new Error(`unknown server ${arg} (known: ${SERVERS.map((s) => s.name).join(', ')}; or name=file)`)
  return def
})
const names = servers.map((s) => s.name)
const scenario = SCENARIOS.find((s) => s.id === args.scenario)
if (scenario === undefined || scenario.id === 'stream') throw new Error(`--scenario: one of ${SCENARIOS.filter((s) => s.id !== 'stream').map((s) => s.id).join(', ')}`)

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface Profile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

/** Who a frame belongs to: node internals, a package, a spikard file, the bench itself, or V8's own buckets. */
function owner (frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/').slice(0, 2).join('/')
  const path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm !== -1) {
    const parts = path.slice(nm + 14).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  const rel = relative(ROOT, path)
  if (rel.startsWith('src/') || rel.startsWith('plugins/')) return `spikard ${rel}`
  if (rel.startsWith('bench/')) return 'bench (routes, handlers)'
  return rel
}

function label (frame: CallFrame): string {
  const where = frame.url === '' ? '' : ` ${frame.url.replace(/^file:\/\//, '').replace(ROOT, '').replace(/.*\/node_modules\//, '')}:${frame.lineNumber + 1}`
  return `${frame.functionName || '(anonymous)'}${where}`
}

/** `--alloc`: what is counted per request. */
const UNIT = args.alloc === true ? 'bytes/req' : 'µs/req'

/** V8's sampling heap profile (HeapProfiler.SamplingHeapProfile): a tree of call frames with the bytes allocated in each. */
interface HeapNode { id: number, callFrame: CallFrame, selfSize: number, children: HeapNode[] }

interface Analysis {
  requests: number
  /** Microseconds of busy samples (not idle) inside the load window; with --alloc, the bytes allocated in it. */
  windowUs: number
  byOwner: Map<string, number>
  byFunction: Map<string, { self: number, owner: string }>
  /** Inclusive time of spikard's own functions (their callees included). */
  spikardInclusive: Map<string, number>
  /** --callers: for each function name, its self time by the 4 frames above it. */
  callers: Map<string, Map<string, number>>
}

function analyze (profile: Profile, from: number, to: number, requests: number): Analysis {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<number, number>()
  let t = profile.startTime
  let windowUs = 0
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]
    const dt = profile.timeDeltas[i + 1] ?? 0
    if (t < from || t > to) continue
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt)
    // Busy time only: (idle) samples are the event loop waiting.
    if (nodes.get(profile.samples[i])?.callFrame.functionName !== '(idle)') windowUs += dt
  }
  return tally(nodes, parent, self, windowUs, requests)
}

/** The same analysis of an allocation profile: bytes where the CPU profile has microseconds. */
function analyzeHeap (head: HeapNode, requests: number): Analysis {
  const nodes = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  const self = new Map<number, number>()
  let bytes = 0
  const pending = [head]
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    nodes.set(node.id, { id: node.id, callFrame: node.callFrame })
    self.set(node.id, node.selfSize)
    bytes += node.selfSize
    for (const child of node.children) {
      parent.set(child.id, node.id)
      pending.push(child)
    }
  }
  return tally(nodes, parent, self, bytes, requests)
}

/** Self time (or bytes) by owner and by function, spikard's functions inclusive, and --callers' stacks. */
function tally (nodes: Map<number, ProfileNode>, parent: Map<number, number>, self: Map<number, number>, windowUs: number, requests: number): Analysis {
  const byOwner = new Map<string, number>()
  const byFunction = new Map<string, { self: number, owner: string }>()
  const spikardInclusive = new Map<string, number>()
  for (const [id, us] of self) {
    const node = nodes.get(id) as ProfileNode
    const o = owner(node.callFrame)
    byOwner.set(o, (byOwner.get(o) ?? 0) + us)
    const key = label(node.callFrame)
    const entry = byFunction.get(key) ?? { self: 0, owner: o }
    entry.self += us
    byFunction.set(key, entry)
    // Charge the sample to every distinct spikard function on its stack.
    const seen = new Set<string>()
    for (let p: number | undefined = id; p !== undefined; p = parent.get(p)) {
      const frame = (nodes.get(p) as ProfileNode).callFrame
      if (!owner(frame).startsWith('spikard ')) continue
      const k = label(frame)
      if (seen.has(k)) continue
      seen.add(k)
      spikardInclusive.set(k, (spikardInclusive.get(k) ?? 0) + us)
    }
  }
  const callers = new Map<string, Map<string, number>>()
  for (const name of (args.callers as string[] | undefined) ?? []) {
    const stacks = new Map<string, number>()
    for (const [id, us] of self) {
      if ((nodes.get(id) as ProfileNode).callFrame.functionName !== name) continue
      const frames: string[] = []
      for (let p = parent.get(id); p !== undefined && frames.length < 4; p = parent.get(p)) frames.push(label((nodes.get(p) as ProfileNode).callFrame))
      const key = frames.join(' <- ')
      stacks.set(key, (stacks.get(key) ?? 0) + us)
    }
    callers.set(name, stacks)
  }
  return { requests, windowUs, byOwner, byFunction, spikardInclusive, callers }
}

const perReq = (us: number, a: Analysis): string => (us / a.requests).toFixed(args.alloc === true ? 0 : 2).padStart(7)

/** Sends the server a message of the allocation sampler's and waits for the answer of type `expect`. */
async function ask (server: ServerProcess, type: string, expect: string): Promise<{ profile?: { head: HeapNode } }> {
  const answer = new Promise<{ type: string, message?: string, profile?: { head: HeapNode } }>((resolve) => {
    const listen = (message: { type: string }): void => {
      if (message.type !== expect && message.type !== 'alloc-error') return
      server.child.off('message', listen)
      resolve(message)
    }
    server.child.on('message', listen)
  })
  server.child.send({ type })
  const message = await answer
  if (message.type === 'alloc-error') throw new Error(`${server.name}: the allocation sampler failed: ${message.message ?? ''}`)
  return message
}

async function profileServer (def: ServerDef, token: string): Promise<Analysis> {
  const name = def.name
  const dir = join(OUT, name)
  rmSync(dir, { recursive: true, force: true })
  mkdirSync(dir, { recursive: true })
  const server = await startServer({
    name,
    file: def.file,
    tsx: def.tsx,
    nodeArgs: args.alloc === true
      ? ['--import', pathToFileURL(fileURLToPath(new URL('lib/alloc-sampler.mjs', import.meta.url))).href]
      : ['--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', args.interval as string],
    // The server's own settings (the variants of spikard-all), and its log next to its profile.
    env: { NODE_ENV: 'production', BENCH_LOG_DIR: dir, BENCH_SERVER_NAME: name, ...def.env }
  })
  const s = scenario as (typeof SCENARIOS)[number]
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'accept-encoding': 'gzip, deflate, br', ...(s.method === 'POST' ? { 'content-type': 'application/json' } : {}) }
  const load = { port: server.port, path: s.path, method: s.method, headers, connections: Number(args.connections), ...(s.method === 'POST' ? { body: JSON.stringify(ITEM) } : {}) }
  let from = 0
  let to = 0
  let requests = 0
  let heap: { head: HeapNode } | undefined
  try {
    await runLoad({ ...load, duration: Number(args.warmup) })
    await sleep(200)
    if (args.alloc === true) await ask(server, 'alloc-start', 'alloc-started')
    // V8's profile timestamps and hrtime are both the monotonic clock, in µs here.
    from = Number(process.hrtime.bigint() / 1000n)
    const r = await runLoad({ ...load, duration: Number(args.duration) })
    to = Number(process.hrtime.bigint() / 1000n)
    requests = r.responses
    if (r.ok !== r.responses) console.log(`  warning: ${name}: ${r.responses - r.ok} non-2xx responses`)
    if (args.alloc === true) heap = (await ask(server, 'alloc-stop', 'alloc-profile')).profile
  } finally {
    const exit = await stopServer(server)
    if (exit.code !== 0) console.log(`  warning: ${name} exited with ${exit.code ?? exit.signal}: the profile may be missing`)
  }
  let a: Analysis
  let file: string
  if (heap !== undefined) {
    file = join(dir, 'alloc.heapprofile')
    writeFileSync(file, JSON.stringify(heap))
    a = analyzeHeap(heap.head, requests)
    console.log(`\n== ${name}: ${requests} requests in the window, ${(a.windowUs / requests).toFixed(0)} bytes allocated per request (sampled; profile: ${relative(ROOT, file)})`)
  } else {
    const cpu = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
    if (cpu === undefined) throw new Error(`${name}: no profile written in ${dir}`)
    file = join(dir, cpu)
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile
    a = analyze(profile, from, to, requests)
    if (a.windowUs === 0) {
      console.log(`  note: ${name}: the profile's clock does not match the harness's; using the whole profile (start-up and warm-up included)`)
      a = analyze(profile, -Infinity, Infinity, requests)
    }
    console.log(`\n== ${name}: ${requests} requests in the window, ${(a.windowUs / requests).toFixed(1)} µs of busy samples per request (profile: ${relative(ROOT, file)})`)
  }
  console.log(`   self ${UNIT} by owner:`)
  for (const [o, us] of [...a.byOwner].sort((x, y) => y[1] - x[1]).filter(([o]) => o !== '(idle)').slice(0, 20)) console.log(`   ${perReq(us, a)}  ${o}`)
  console.log(`   top ${args.top} functions by self ${args.alloc === true ? 'allocation' : 'time'} (${UNIT}):`)
  for (const [f, { self }] of [...a.byFunction].sort((x, y) => y[1].self - x[1].self).filter(([f]) => f !== '(idle)').slice(0, Number(args.top))) console.log(`   ${perReq(self, a)}  ${f}`)
  if (a.spikardInclusive.size > 0) {
    console.log(`   spikard functions, inclusive (callees included; a callback-style hook also "includes" the later hooks and the send that its done() runs), ${UNIT}:`)
    for (const [f, us] of [...a.spikardInclusive].sort((x, y) => y[1] - x[1]).slice(0, 15)) console.log(`   ${perReq(us, a)}  ${f}`)
  }
  for (const [name, stacks] of a.callers) {
    console.log(`   callers of ${name} (self ${UNIT}, by the 4 frames above):`)
    for (const [stack, us] of [...stacks].sort((x, y) => y[1] - x[1]).slice(0, 8)) console.log(`   ${perReq(us, a)}  ${stack}`)
  }
  return a
}

const token = await new SignJWT({ scope: 'read' })
  .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  .setIssuer(JWT.issuer).setAudience(JWT.audience).setSubject(JWT.subject)
  .setIssuedAt().setExpirationTime('2h')
  .sign(new TextEncoder().encode(JWT.secret))

console.log(`profiling ${names.join(', ')} on ${scenario.title}: ${args.warmup} s warm-up, ${args.duration} s measured, ${args.alloc === true ? 'sampling allocations' : `sampling every ${args.interval} µs`}`)
const analyses = new Map<string, Analysis>()
for (const def of servers) analyses.set(def.name, await profileServer(def, token))

if (names.length > 1) {
  const baseName = names[names.length - 1]
  const base = analyses.get(baseName) as Analysis
  for (const name of names.slice(0, -1)) {
    const a = analyses.get(name) as Analysis
    console.log(`\n== ${name} minus ${baseName}, self ${UNIT} by owner (sampled; the profiler itself adds overhead to both)`)
    const owners = new Set([...a.byOwner.keys(), ...base.byOwner.keys()])
    const rows = [...owners].filter((o) => o !== '(idle)').map((o) => [o, (a.byOwner.get(o) ?? 0) / a.requests - (base.byOwner.get(o) ?? 0) / base.requests] as const)
    const threshold = args.alloc === true ? 16 : 0.1
    const digits = args.alloc === true ? 0 : 2
    for (const [o, d] of rows.sort((x, y) => y[1] - x[1]).filter(([, d]) => Math.abs(d) >= threshold)) console.log(`   ${(d >= 0 ? '+' : '') + d.toFixed(digits).padStart(6)}  ${o}`)
    console.log(`   total: ${(a.windowUs / a.requests).toFixed(digits === 0 ? 0 : 1)} vs ${(base.windowUs / base.requests).toFixed(digits === 0 ? 0 : 1)} ${UNIT}`)
  }
}
process.exit(0)
