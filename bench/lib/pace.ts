/**
 * Opening many connections without a storm of handshakes: what the SSE and WebSocket
 * clients (bench/lib/sse-clients.ts, ws-clients.ts) share.
 */

/**
 * Calls `open` `count` times, `rate` a second (every 10 ms, the next few), skipping a tick's
 * rest while `inProgress()` connections are still in their handshake, `concurrency` at most.
 * Returns the timer, which stops itself after the last call (clear it to stop sooner).
 */
export function pace (count: number, rate: number, concurrency: number, inProgress: () => number, open: () => void): NodeJS.Timeout {
  let started = 0
  const perTick = Math.max(1, Math.round(rate / 100))
  const ticker = setInterval(() => {
    for (let i = 0; i < perTick && started < count && inProgress() < concurrency; i++) {
      started++
      open()
    }
    if (started === count) clearInterval(ticker)
  }, 10)
  return ticker
}
