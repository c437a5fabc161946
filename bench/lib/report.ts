/** Aggregation (medians, ratios taken within each repetition), the tables, the budget lines and RESULTS.md. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { BUDGETS, SCENARIOS, type Budget, type ScenarioDef, type ScenarioId } from './plan.js'
import { max, median, spread } from './stats.js'
import type { ServerInfo } from '../servers/common.js'
import { renderSse, type SseFanoutResult } from './sse-fanout.js'
import { renderWs, type WsBenchResult } from './ws-bench.js'

export interface LoadSample {
  rep: number
  rps: number
  p50Ms: number
  p99Ms: number
  cpuUsPerReq: number
  responses: number
  peakRss: number
  logBytesPerReq?: number
  /** Page faults (minor + major) per request during the run. */
  faultsPerReq?: number
  /** CPU used by other processes during the run, in cores (0.25 = a quarter of one CPU). */
  otherCpu?: number
  /** Why the sample is not counted (non-2xx responses, errors). */
  invalid?: string
}

export interface StreamSample {
  rep: number
  /** Bytes of the source delivered (the whole source when a compressed response ended complete). */
  bytes: number
  /** Body bytes on the wire, when the response was compressed (its Content-Encoding). */
  wire?: { bytes: number, encoding: string }
  seconds: number
  mbPerS: number
  rssBefore: number
  rssGrowth: number
  cpuMsPerGiB: number
  /** CPU used by other processes during the transfer, in cores. */
  otherCpu?: number
  invalid?: string
}

export interface ServerRun {
  name: string
  label: string
  pid?: number
  readyMs?: number
  info?: ServerInfo
  error?: string
  exit?: string
}

export interface Results {
  meta: {
    date: string
    command: string
    mode: string
    machine: string
    versions: string
    settings: string
    cpuSource: string
    durationS?: number
    /** Runs measured again because other processes were busy. */
    retried?: number
  }
  base: string
  streamBase: string
  servers: ServerRun[]
  scenarios: ScenarioId[]
  /** scenario -> server -> samples */
  load: Partial<Record<ScenarioId, Record<string, LoadSample[]>>>
  /** scenario -> server -> samples, for the streamed scenarios */
  stream: Partial<Record<ScenarioId, Record<string, StreamSample[]>>>
  /** The SSE fan-out (bench/lib/sse-fanout.ts), when it ran. */
  sse?: SseFanoutResult
  /** The WebSocket bench (bench/lib/ws-bench.ts), when it ran. */
  ws?: WsBenchResult
  /** scenario -> server -> why it was not measured */
  skipped: Partial<Record<ScenarioId, Record<string, string>>>
}

export interface LoadSummary {
  n: number
  rps: number
  p50Ms: number
  p99Ms: number
  cpuUsPerReq: number
  cpuSpread: number
  cpuRatio: number
  rpsRatio: number
  peakRss: number
  logBytesPerReq?: number
  /** Highest CPU use of other processes during a run (cores). */
  otherCpuMax: number
  invalid: string[]
}

const valid = <T extends { invalid?: string }>(samples: T[] = []): T[] => samples.filter((s) => s.invalid === undefined)

/** Median of the per-repetition ratios of `pick(a)` to `pick(b)` (the same repetition, so slow drift cancels). */
function pairedRatio<T extends { rep: number, invalid?: string }> (a: T[] = [], b: T[] = [], pick: (s: T) => number): number {
  const byRep = new Map(valid(b).map((s) => [s.rep, pick(s)]))
  return median(valid(a).filter((s) => byRep.has(s.rep)).map((s) => pick(s) / (byRep.get(s.rep) as number)))
}

/** A server's requests/s on a scenario as a share of the scenario's `against` server's, paired by repetition. */
export function rpsAgainst (results: Results, scenario: ScenarioId, server: string): number {
  const against = SCENARIOS.find((s) => s.id === scenario)?.against
  const load = results.load[scenario]
  return against === undefined ? NaN : pairedRatio(load?.[server], load?.[against], (s) => s.rps)
}

export function summarizeLoad (results: Results, scenario: ScenarioId, server: string): LoadSummary | undefined {
  const samples = results.load[scenario]?.[server]
  if (samples === undefined || samples.length === 0) return undefined
  const ok = valid(samples)
  const base = results.load[scenario]?.[results.base]
  const logs = ok.map((s) => s.logBytesPerReq).filter((x): x is number => x !== undefined)
  return {
    n: ok.length,
    rps: median(ok.map((s) => s.rps)),
    p50Ms: median(ok.map((s) => s.p50Ms)),
    p99Ms: median(ok.map((s) => s.p99Ms)),
    cpuUsPerReq: median(ok.map((s) => s.cpuUsPerReq)),
    cpuSpread: spread(ok.map((s) => s.cpuUsPerReq)),
    cpuRatio: pairedRatio(samples, base, (s) => s.cpuUsPerReq),
    rpsRatio: pairedRatio(samples, base, (s) => s.rps),
    peakRss: max(ok.map((s) => s.peakRss)),
    ...(logs.length > 0 ? { logBytesPerReq: median(logs) } : {}),
    otherCpuMax: max(samples.map((s) => s.otherCpu ?? NaN)),
    invalid: [...new Set(samples.map((s) => s.invalid).filter((x): x is string => x !== undefined))]
  }
}

export interface StreamSummary {
  n: number
  mbPerS: number
  throughputRatio: number
  rssGrowthMax: number
  rssGrowthMedian: number
  cpuMsPerGiB: number
  /** Server CPU per GiB against the stream base's, median of per-repetition ratios: steadier than throughput on a busy machine. */
  cpuRatio: number
  otherCpuMax: number
  invalid: string[]
  /** A compressed response: its median size on the wire (MB) and its encodings. */
  wire?: { mb: number, encodings: string[] }
}

export function summarizeStream (results: Results, scenario: ScenarioId, server: string): StreamSummary | undefined {
  const byServer = results.stream[scenario] ?? {}
  const samples = byServer[server]
  if (samples === undefined || samples.length === 0) return undefined
  const ok = valid(samples)
  const wire = ok.map((s) => s.wire).filter((w): w is NonNullable<typeof w> => w !== undefined)
  return {
    n: ok.length,
    mbPerS: median(ok.map((s) => s.mbPerS)),
    throughputRatio: pairedRatio(samples, byServer[results.streamBase], (s) => s.mbPerS),
    rssGrowthMax: max(ok.map((s) => s.rssGrowth)),
    rssGrowthMedian: median(ok.map((s) => s.rssGrowth)),
    cpuMsPerGiB: median(ok.map((s) => s.cpuMsPerGiB)),
    cpuRatio: pairedRatio(samples, byServer[results.streamBase], (s) => s.cpuMsPerGiB),
    ...(wire.length > 0 ? { wire: { mb: median(wire.map((w) => w.bytes)) / MB, encodings: [...new Set(wire.map((w) => w.encoding))] } } : {}),
    otherCpuMax: max(samples.map((s) => s.otherCpu ?? NaN)),
    invalid: [...new Set(samples.map((s) => s.invalid).filter((x): x is string => x !== undefined))]
  }
}

const MB = 1024 * 1024
/** Other processes' CPU use during a run (cores) above which the row says the run was disturbed. */
export const NOISY_CPU = 0.15
const fmt = (x: number, digits = 1): string => Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '–'
const ratio = (x: number): string => Number.isFinite(x) ? `${x.toFixed(2)}x` : '–'
const pct = (x: number): string => Number.isFinite(x) ? `${Math.round(x * 100)}%` : '–'

/** Whether a server serves the scenario's real route or the plain one. */
function plainRoute (scenario: ScenarioDef, info: ServerInfo | undefined): boolean {
  if (scenario.feature === 'jwt') return info?.verifiesJwt !== true
  if (scenario.feature === 'rateLimit') return info?.limitsRate !== true
  return false
}

/** Features a server was meant to have but ran without (spikard-all while auth or rateLimit is unavailable). */
export function missingFeatures (run: ServerRun | undefined): string[] {
  return Object.keys(run?.info?.missing ?? {})
}

function serverNote (run: ServerRun | undefined): string {
  const missing = missingFeatures(run)
  return missing.length === 0 ? '' : `without ${missing.join(', ')}`
}

export function renderTables (results: Results): string {
  const out: string[] = []
  for (const scenario of SCENARIOS.filter((s) => results.scenarios.includes(s.id))) {
    if (scenario.stream !== undefined) {
      const asked = Object.entries(scenario.stream.headers ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ')
      out.push(`### ${scenario.title} (GET ${scenario.path}${asked === '' ? ', no Accept-Encoding' : `, ${asked}`}): throughput and memory against ${results.streamBase}`, '')
      if (asked.includes('accept-encoding')) out.push('MB/s counts the source\'s bytes (what the client gets once inflated), not the compressed ones on the wire.', '')
      out.push('| server | MB/s | × ' + results.streamBase + ' | RSS growth, worst (MB) | RSS growth, median (MB) | server CPU ms/GiB | CPU × ' + results.streamBase + ' | n | notes |')
      out.push('|---|--:|--:|--:|--:|--:|--:|--:|---|')
      for (const run of results.servers) {
        const s = summarizeStream(results, scenario.id, run.name)
        const skipped = results.skipped[scenario.id]?.[run.name]
        if (s === undefined) {
          if (skipped !== undefined) out.push(`| ${run.name} | | | | | | | 0 | not measured: ${skipped} |`)
          continue
        }
        const notes = [
          serverNote(run),
          s.wire === undefined ? '' : `${s.wire.encodings.join(', ')}: ${fmt(s.wire.mb, 2)} MB on the wire`,
          s.otherCpuMax > NOISY_CPU ? `disturbed: other processes used up to ${pct(s.otherCpuMax)} of a CPU during a transfer` : '',
          ...s.invalid.map((i) => `invalid: ${i}`)
        ].filter((x) => x !== '').join('; ')
        out.push(`| ${run.name} | ${fmt(s.mbPerS, 0)} | ${pct(s.throughputRatio)} | ${fmt(s.rssGrowthMax / MB)} | ${fmt(s.rssGrowthMedian / MB)} | ${fmt(s.cpuMsPerGiB, 0)} | ${ratio(s.cpuRatio)} | ${s.n} | ${notes} |`)
      }
      out.push('')
      continue
    }
    out.push(`### ${scenario.title} (${scenario.method} ${scenario.path})`, '')
    out.push(`| server | req/s | p50 ms | p99 ms | CPU µs/req | CPU × ${results.base} | req/s × ${results.base} | CPU spread | peak RSS MB | log B/req | n | notes |`)
    out.push('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|')
    let plain = false
    for (const run of results.servers) {
      const s = summarizeLoad(results, scenario.id, run.name)
      const skipped = results.skipped[scenario.id]?.[run.name]
      if (s === undefined) {
        if (skipped !== undefined) out.push(`| ${run.name} | | | | | | | | | | 0 | not measured: ${skipped} |`)
        continue
      }
      const isPlain = plainRoute(scenario, run.info)
      plain ||= isPlain
      const notes = [
        isPlain ? `† plain route (no ${scenario.feature === 'jwt' ? 'JWT verification' : 'rate limiter'})` : '',
        serverNote(run),
        s.otherCpuMax > NOISY_CPU ? `disturbed: other processes used up to ${pct(s.otherCpuMax)} of a CPU during a run` : '',
        ...s.invalid.map((i) => `invalid: ${i}`)
      ].filter((x) => x !== '').join('; ')
      out.push(`| ${run.name}${isPlain ? ' †' : ''} | ${fmt(s.rps, 0)} | ${fmt(s.p50Ms, 2)} | ${fmt(s.p99Ms, 2)} | ${fmt(s.cpuUsPerReq, 1)} | ${ratio(s.cpuRatio)} | ${ratio(s.rpsRatio)} | ${pct(s.cpuSpread)} | ${fmt(s.peakRss / MB, 0)} | ${s.logBytesPerReq === undefined ? '' : fmt(s.logBytesPerReq, 0)} | ${s.n} | ${notes} |`)
    }
    if (scenario.against !== undefined) {
      for (const run of results.servers) {
        const ratio = rpsAgainst(results, scenario.id, run.name)
        if (run.name !== scenario.against && Number.isFinite(ratio)) out.push('', `${run.name}: ${pct(ratio)} of ${scenario.against}'s requests/s on ${scenario.path} (median of the per-repetition ratios).`)
      }
    }
    if (scenario.beside !== undefined) {
      const other = SCENARIOS.find((s) => s.id === scenario.beside) as typeof scenario
      for (const run of results.servers) {
        const s = summarizeLoad(results, scenario.id, run.name)
        const b = summarizeLoad(results, other.id, run.name)
        if (s !== undefined && b !== undefined) out.push('', `${run.name}: ${fmt(s.rps, 0)} req/s on ${scenario.path}, ${pct(s.rps / b.rps)} of its ${fmt(b.rps, 0)} req/s on the ${other.title} (${other.path}).`)
      }
    }
    if (plain) {
      out.push('', `† serves the same handler without the ${scenario.feature === 'jwt' ? 'JWT check' : 'rate limiter'} (it has none), so its figure is the cost of the route alone; the ratios of the servers that do check are against bare Fastify's plain route, i.e. they include the whole cost of the feature. \`fastify-lib\` is bare Fastify with only the library that does the check (${scenario.feature === 'jwt' ? '@fastify/jwt' : '@fastify/rate-limit'}), the reference for what the feature itself costs.`)
    }
    out.push('')
  }
  if (results.sse !== undefined) out.push(renderSse(results.sse), '')
  if (results.ws !== undefined) out.push(renderWs(results.ws), '')
  return out.join('\n')
}

export interface BudgetLine { pass: boolean | undefined, text: string }

export function evaluateBudgets (results: Results, budgets: Budget[] = BUDGETS): BudgetLine[] {
  const runs = new Map(results.servers.map((s) => [s.name, s]))
  return budgets.map((b): BudgetLine => {
    const run = runs.get(b.server)
    const missing = missingFeatures(run)
    const incomplete = missing.length > 0 ? ` [incomplete: ${b.server} ran without ${missing.join(', ')}]` : ''
    if (b.kind === 'cpu') {
      const title = SCENARIOS.find((s) => s.id === b.scenario)?.title ?? b.scenario
      const s = summarizeLoad(results, b.scenario, b.server)
      // The budget is against bare Fastify: a run without it measures no budget line.
      if (results.base !== 'fastify') return { pass: undefined, text: `${b.server}: CPU/request on the ${title} ≤ ${b.max.toFixed(1)}x fastify: not measured (no fastify in this run)` }
      if (s === undefined || !Number.isFinite(s.cpuRatio)) return { pass: undefined, text: `${b.server}: CPU/request on the ${title} ≤ ${b.max.toFixed(1)}x ${results.base}: not measured` }
      return { pass: s.cpuRatio <= b.max, text: `${b.server}: CPU/request on the ${title} ${s.cpuRatio.toFixed(2)}x ${results.base} (${fmt(s.cpuUsPerReq)} µs vs ${fmt(summarizeLoad(results, b.scenario, results.base)?.cpuUsPerReq ?? NaN)} µs; budget ≤ ${b.max.toFixed(1)}x)${incomplete}` }
    }
    if (b.kind === 'rps') {
      const scenario = SCENARIOS.find((s) => s.id === b.scenario)
      const ratio = rpsAgainst(results, b.scenario, b.server)
      const what = `${b.server}: requests/s on ${scenario?.title ?? b.scenario}`
      if (!Number.isFinite(ratio)) return { pass: undefined, text: `${what} ≥ ${pct(b.min)} of ${scenario?.against ?? '?'}'s: not measured` }
      return { pass: ratio >= b.min, text: `${what} ${pct(ratio)} of ${scenario?.against ?? '?'}'s (budget ≥ ${pct(b.min)})${incomplete}` }
    }
    const what = `${b.server}: ${SCENARIOS.find((s) => s.id === b.scenario)?.title ?? b.scenario}`
    const s = summarizeStream(results, b.scenario, b.server)
    if (s === undefined || !Number.isFinite(s.throughputRatio)) return { pass: undefined, text: `${what}: not measured` }
    const rssOk = s.rssGrowthMax < b.maxRssGrowth
    const tputOk = s.throughputRatio >= b.minThroughputRatio
    return {
      pass: rssOk && tputOk,
      text: `${what}: RSS growth ${fmt(s.rssGrowthMax / MB)} MB (budget < ${b.maxRssGrowth / MB} MB)${rssOk ? '' : ' FAIL'}, throughput ${pct(s.throughputRatio)} of ${results.streamBase} (budget ≥ ${pct(b.minThroughputRatio)})${tputOk ? '' : ' FAIL'}${incomplete}`
    }
  })
}

export function renderBudgets (lines: BudgetLine[]): string {
  return lines.map((l) => `${l.pass === undefined ? 'N/A ' : l.pass ? 'PASS' : 'FAIL'}  ${l.text}`).join('\n')
}

export function renderServers (results: Results): string {
  const out = ['| server | what | started in (ms) | notes |', '|---|---|--:|---|']
  for (const run of results.servers) {
    const notes = [
      ...Object.entries(run.info?.missing ?? {}).map(([k, why]) => `**${k} off**: ${why}`),
      ...(run.info?.notes ?? []),
      run.error === undefined ? '' : `**failed**: ${run.error.split('\n')[0]}`,
      run.exit ?? ''
    ].filter((x) => x !== '').join('; ')
    out.push(`| ${run.name} | ${run.label} | ${run.readyMs === undefined ? '–' : Math.round(run.readyMs)} | ${notes} |`)
  }
  return out.join('\n')
}

export function renderReport (results: Results, budgets: BudgetLine[]): string {
  const m = results.meta
  return [
    `- Date: ${m.date}`,
    `- Command: \`${m.command}\` (${m.mode})`,
    `- Machine: ${m.machine}`,
    `- Versions: ${m.versions}`,
    `- Settings: ${m.settings}`,
    `- Server CPU time: ${m.cpuSource}, divided by the responses of the run`,
    ...(m.durationS === undefined ? [] : [`- Wall time of the whole run: ${Math.round(m.durationS)} s`]),
    ...(m.retried ? [`- Runs measured again because other processes used the CPU meanwhile: ${m.retried}`] : []),
    '',
    '#### Budget',
    '',
    '```',
    renderBudgets(budgets),
    '```',
    '',
    '#### Servers',
    '',
    renderServers(results),
    '',
    renderTables(results).replace(/^### /gm, '#### ')
  ].join('\n')
}

const START = (mode: string): string => `<!-- bench:results:${mode}:start (written by bench/run.ts; edit outside these markers) -->`
const END = (mode: string): string => `<!-- bench:results:${mode}:end -->`

const TEMPLATE = `# Benchmark results

\`npm run bench\` (full run) and \`npm run bench -- --quick\` write their section below;
see bench/README.md for what is measured and how.

## Findings

(Hand-written: what the runs showed, profiles, what each change bought. The script
never touches this section.)

`

/** Writes the run into its mode's section of RESULTS.md, leaving everything else as it was. */
export function writeResults (file: string, mode: string, report: string): void {
  let text = existsSync(file) ? readFileSync(file, 'utf8') : TEMPLATE
  const section = `${START(mode)}\n## Latest ${mode} run\n\n${report}\n${END(mode)}`
  const start = text.indexOf(START(mode))
  const end = text.indexOf(END(mode))
  if (start !== -1 && end > start) {
    text = text.slice(0, start) + section + text.slice(end + END(mode).length)
  } else {
    text = text.replace(/\n*$/, '\n\n') + section + '\n'
  }
  writeFileSync(file, text)
}
