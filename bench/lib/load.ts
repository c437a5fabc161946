/**
 * The load: autocannon, run in the harness process (the servers each have their own; the
 * 1 GB stream has its own client, stream-client.ts). Latencies are taken from autocannon's
 * per-response event in microseconds: its own histogram keeps whole milliseconds, which
 * is too coarse for a server answering in 200 µs.
 */
import autocannon from 'autocannon'
import { availableParallelism } from 'node:os'

/**
 * While the load runs, the harness's event loop never sleeps: an immediate that queues
 * itself again makes libuv poll the sockets without blocking. Over loopback, the server's
 * write runs the client's receive path in the server's own system call, and when the
 * client is asleep in epoll_wait that includes waking it (an interrupt to the other CPU,
 * costly in a VM), charged to the server's CPU time. The slower the server, the more often
 * the client has gone to sleep between responses, so the wake-ups inflated the ratios of
 * the slower servers (measured in bench/RESULTS.md, "Where spikard stands now"). On a
 * single CPU the polling would take the server's CPU time instead, so it is off there.
 */
export const SPIN = availableParallelism() > 1

export interface LoadOptions {
  port: number
  path: string
  method?: 'GET' | 'POST'
  headers?: Record<string, string>
  body?: string
  connections: number
  /** Seconds (fractions allowed). */
  duration: number
  /** Fixed offered load (requests/s over all connections) instead of as fast as the server answers. */
  rate?: number
  /** Stop after this many requests instead (a warm-up); `duration` then bounds the run. */
  amount?: number
}

export interface LoadResult {
  /** Responses received (any status). */
  responses: number
  ok: number
  non2xx: number
  errors: number
  timeouts: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
  statusCodes: Record<string, number>
}

export function percentile (sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]
}

export async function runLoad (options: LoadOptions): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16)
  let count = 0
  const t0 = performance.now()
  let cap: ReturnType<typeof setTimeout> | undefined
  let spinning = SPIN
  const spin = (): void => { if (spinning) setImmediate(spin) }
  spin()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: `http://127.0.0.1:${options.port}${options.path}`,
      method: options.method ?? 'GET',
      headers: options.headers,
      body: options.body,
      connections: options.connections,
      pipelining: 1,
      ...(options.amount === undefined ? { duration: options.duration } : { amount: options.amount }),
      // The run ends at the first sample tick after `duration`: tick often.
      sampleInt: 50,
      timeout: 10,
      ...(options.rate === undefined ? {} : { overallRate: options.rate })
    }, (error, res) => {
      if (error != null) reject(error)
      else resolve(res)
    })
    // With `amount`, autocannon has no time limit of its own. (Options it refuses end the
    // run before it returns; the cleanup below runs after this line either way.)
    cap = setTimeout(() => instance.stop(), options.duration * 1000 + 1000)
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2)
        bigger.set(latencies)
        latencies = bigger
      }
      latencies[count++] = ms
    })
  }).finally(() => {
    spinning = false
    clearTimeout(cap)
  })
  const seconds = (performance.now() - t0) / 1000
  const sorted = latencies.subarray(0, count).sort()
  const statusCodes: Record<string, number> = {}
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stats?.count ?? 0
  const responses = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  return {
    responses,
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    seconds,
    rps: responses / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    statusCodes
  }
}
