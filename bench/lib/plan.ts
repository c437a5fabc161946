/** The servers, the scenarios and the budget: what a run measures and checks. */
import { resolve } from 'node:path'

export type ScenarioId = 'json' | 'post' | 'jwt' | 'limited' | 'stream' | 'stream-gen' | 'stream-file' | 'stream-gzip' | 'openapi' | 'static' | 'task'

/** Measured once per run after the scenarios, by a module of their own: `sse` (bench/lib/sse-fanout.ts), `ws` (bench/lib/ws-bench.ts). */
export type SectionId = 'sse' | 'ws'

export interface ServerDef {
  name: string
  file: string
  label: string
  /** Run through tsx's loader (default true). */
  tsx?: boolean
  /** Only these scenarios (default: all). */
  scenarios?: ScenarioId[]
  /** Left out of --quick unless named with --servers. */
  fullOnly?: boolean
  /** Environment of the server process. */
  env?: Record<string, string>
}

export interface ScenarioDef {
  id: ScenarioId
  title: string
  method: 'GET' | 'POST'
  path: string
  /** A feature the route needs; servers without it serve the plain route (marked †). */
  feature?: 'jwt' | 'rateLimit'
  /** Only these servers have the route. */
  only?: string[]
  /** Its requests/s are reported beside this scenario's, on the same server. */
  beside?: ScenarioId
  /** What its answer must be, when not the shared payload: undefined when right, else what is wrong (it may be compressed). */
  answer?: (text: string) => string | undefined
  /** Its requests/s are reported as a share of this server's. */
  against?: string
  /**
   * A streamed response: one GET on a fresh connection read by bench/lib/stream-client.ts,
   * throughput and RSS growth against raw node:http, instead of a load. `headers` go with
   * the request (none by default: identity, as curl or wget ask); `maxBytes` caps the
   * transfer below --stream-mb (sent as `?bytes=N`).
   */
  stream?: { headers?: Record<string, string>, maxBytes?: number }
  /** Left out of --quick unless named with --scenarios. */
  fullOnly?: boolean
}

export interface SectionDef {
  id: SectionId
  title: string
  /** Left out of --quick unless named with --scenarios. */
  fullOnly?: boolean
}

export const SERVERS: ServerDef[] = [
  { name: 'raw', file: 'raw.ts', label: 'node:http (floor)' },
  { name: 'fastify', file: 'fastify.ts', label: 'bare Fastify' },
  { name: 'fastify-logger', file: 'fastify-logger.ts', label: 'Fastify + default logger', fullOnly: true },
  { name: 'naive', file: 'naive.ts', label: 'naive assembly', fullOnly: true },
  { name: 'spikard-all', file: 'spikard-all.ts', label: 'spikard, every feature' },
  { name: 'spikard-all-buffer-16k', file: 'spikard-all.ts', label: 'spikard, every feature, server.logger.buffer 16kb (a write per ~60 access lines)', env: { BENCH_LOG_BUFFER: '16384' }, scenarios: ['json', 'jwt'], fullOnly: true },
  { name: 'spikard-defaults', file: 'spikard-defaults.ts', label: 'spikard, defaults' },
  { name: 'express', file: 'express.ts', label: 'Express 5', fullOnly: true },
  { name: 'hono', file: 'hono.ts', label: 'Hono (node-server)', fullOnly: true },
  { name: 'fastify-lib', file: 'fastify-lib.ts', label: 'Fastify + the one library', scenarios: ['jwt', 'limited'] },
  { name: 'static-bare', file: 'static-bare.ts', label: 'Fastify + @fastify/static alone', scenarios: ['static'] }
]

/**
 * `--tsx-check`: does running through tsx's loader cost anything per request? raw.ts
 * compiled ahead of time by esbuild (what tsx uses) and run by plain node, against the
 * same raw.ts run with `node --import tsx`; and a hand-written JS twin (raw-plain.mjs)
 * under plain node and under the tsx loader.
 */
export const TSX_CHECK_SERVERS: ServerDef[] = [
  { name: 'raw.ts compiled (node)', file: '../.build/raw.mjs', label: 'raw.ts compiled by esbuild, plain node', tsx: false, scenarios: ['json'] },
  { name: 'raw.ts (tsx)', file: 'raw.ts', label: 'raw.ts, node --import tsx', scenarios: ['json'] },
  { name: 'raw-plain.mjs (node)', file: 'raw-plain.mjs', label: 'hand-written JS twin, plain node', tsx: false, scenarios: ['json'] },
  { name: 'raw-plain.mjs (tsx)', file: 'raw-plain.mjs', label: 'hand-written JS twin, node --import tsx', scenarios: ['json'] }
]

/**
 * `name=path/to/server.ts`: a server file of its own next to the known ones (a variant
 * being tried, a worktree's spikard-all.ts to compare two commits); the path is taken from
 * the working directory.
 */
export function serverFromSpec (spec: string): ServerDef {
  const eq = spec.indexOf('=')
  if (eq < 1) throw new Error(`expected name=path/to/server.ts, found ${JSON.stringify(spec)}`)
  return { name: spec.slice(0, eq), file: resolve(spec.slice(eq + 1)), label: `--server ${spec.slice(eq + 1)}` }
}

/** Every feature spikard-all switches on, in registration order. */
export const SPIKARD_FEATURES = ['openapi', 'requestContext', 'requestId', 'logging', 'shutdown', 'health', 'auth', 'rateLimit', 'bodyLimit', 'timeout', 'compression'] as const

/**
 * `--ablate`: spikard-all with one feature off at a time, next to spikard-all, spikard's
 * defaults and bare Fastify: what each feature costs per request (spikard-all minus the
 * row), measured rather than read off a profile.
 */
export const ABLATION_SERVERS: ServerDef[] = [
  ...SERVERS.filter((s) => ['fastify', 'spikard-defaults', 'spikard-all', 'spikard-all-buffer-16k'].includes(s.name)),
  ...SPIKARD_FEATURES.map((f) => ({ name: `spikard-all -${f}`, file: 'spikard-all.ts', label: `spikard, every feature but ${f}`, env: { BENCH_SPIKARD_OFF: f } }))
]

export const SCENARIOS: ScenarioDef[] = [
  { id: 'json', title: 'small JSON GET', method: 'GET', path: '/json' },
  { id: 'post', title: 'JSON POST with schema validation', method: 'POST', path: '/items' },
  { id: 'jwt', title: 'JWT-protected GET', method: 'GET', path: '/jwt', feature: 'jwt' },
  { id: 'limited', title: 'rate-limited GET', method: 'GET', path: '/limited', feature: 'rateLimit' },
  { id: 'stream', title: '1 GiB streamed response', method: 'GET', path: '/stream', stream: {} },
  // Issue 17: 1 GiB as a spikard handler returns it, an async generator or a file's Readable,
  // against raw node:http piping the same source; requested without Accept-Encoding (a
  // download client such as curl or wget), so spikard's compression, on by default, stays
  // out of it. Then the generator again with `Accept-Encoding: gzip` (no budget), 256 MiB:
  // gzip at level 6 runs at some 360 MB/s here, against raw node:http through createGzip
  // with the same settings.
  { id: 'stream-gen', title: '1 GiB from an async generator', method: 'GET', path: '/stream-gen', stream: {}, only: ['raw', 'spikard-defaults'], fullOnly: true },
  { id: 'stream-file', title: '1 GiB from a file (spikard: fileStream(); raw: fs.createReadStream)', method: 'GET', path: '/stream-file', stream: {}, only: ['raw', 'spikard-defaults'], fullOnly: true },
  { id: 'stream-gzip', title: 'an async generator, gzip (Accept-Encoding: gzip; at most 256 MiB of source)', method: 'GET', path: '/stream-gen', stream: { headers: { 'accept-encoding': 'gzip' }, maxBytes: 256 * 1024 ** 2 }, only: ['raw', 'spikard-defaults'], fullOnly: true },
  // Issue 16: the document is served from memory, so it should cost about what a small JSON route does.
  {
    id: 'openapi',
    title: 'the OpenAPI document',
    method: 'GET',
    path: '/openapi.json',
    only: ['spikard-all'],
    beside: 'json',
    answer: (text) => (JSON.parse(text) as { openapi?: unknown } | null)?.openapi === '3.1.0' ? undefined : 'not an OpenAPI 3.1 document'
  },
  // Issue 17: a static file through spikard (its defaults and a mount) against @fastify/static alone.
  {
    id: 'static',
    title: 'a static file (6 KiB of HTML)',
    method: 'GET',
    path: '/static/page.html',
    only: ['static-bare', 'spikard-defaults'],
    against: 'static-bare',
    answer: (text) => text.startsWith('<!doctype html>') && text.includes('Paragraph 89') ? undefined : 'not bench/servers/static/page.html'
  },
  // Issue 19: the small GET queuing an empty background task, beside the same GET without it.
  { id: 'task', title: 'the small JSON GET queuing an empty background task', method: 'GET', path: '/task', only: ['spikard-defaults'], beside: 'json' }
]

/** Issue 17: 10,000 SSE clients on one spikard process, an event broadcast to all every second (no budget: figures recorded). */
export const SECTIONS: SectionDef[] = [
  { id: 'sse', title: '10,000 SSE clients, an event broadcast to all every second', fullOnly: true },
  // Issue 18 (bench/lib/ws-bench.ts): echo with validation against bare @fastify/websocket, 10,000 sockets, a broadcast.
  { id: 'ws', title: 'WebSocket echo, 10,000 sockets and a broadcast', fullOnly: true }
]

export interface CpuBudget {
  kind: 'cpu'
  server: string
  scenario: ScenarioId
  /** Highest allowed ratio of the server's CPU per request to bare Fastify's. */
  max: number
}

export interface RpsBudget {
  kind: 'rps'
  server: string
  scenario: ScenarioId
  /** Its requests/s at least this fraction of the scenario's `against` server's (median of per-repetition ratios). */
  min: number
}

export interface StreamBudget {
  kind: 'stream'
  server: string
  scenario: ScenarioId
  /** RSS growth during the transfer must stay below this (bytes; worst repetition). */
  maxRssGrowth: number
  /** Throughput at least this fraction of raw node:http's (median of per-repetition ratios). */
  minThroughputRatio: number
}

export type Budget = CpuBudget | StreamBudget | RpsBudget

/**
 * The budget (issue 15, after issue 6's): spikard with its defaults (the access line
 * included) at most 1.5x bare Fastify's CPU per request, aiming for 1.3x; with every
 * feature on, at most 1.8x, aiming for 1.5x, on Node 20 and on Node 24.
 */
export const BUDGETS: Budget[] = [
  { kind: 'cpu', server: 'spikard-all', scenario: 'json', max: 1.8 },
  { kind: 'cpu', server: 'spikard-all', scenario: 'jwt', max: 1.8 },
  { kind: 'cpu', server: 'spikard-defaults', scenario: 'json', max: 1.5 },
  { kind: 'cpu', server: 'spikard-defaults', scenario: 'post', max: 1.5 },
  { kind: 'stream', server: 'spikard-all', scenario: 'stream', maxRssGrowth: 50 * 1024 * 1024, minThroughputRatio: 0.8 },
  { kind: 'stream', server: 'spikard-defaults', scenario: 'stream', maxRssGrowth: 50 * 1024 * 1024, minThroughputRatio: 0.8 },
  // Issue 17: the same line for what a handler returns, an async generator and a file.
  { kind: 'stream', server: 'spikard-defaults', scenario: 'stream-gen', maxRssGrowth: 50 * 1024 * 1024, minThroughputRatio: 0.8 },
  { kind: 'stream', server: 'spikard-defaults', scenario: 'stream-file', maxRssGrowth: 50 * 1024 * 1024, minThroughputRatio: 0.8 },
  // Issue 17: static files at 90% of @fastify/static's requests/s.
  { kind: 'rps', server: 'spikard-defaults', scenario: 'static', min: 0.9 }
]
