/**
 * The SSE fan-out's server (issue 17; bench/lib/sse-fanout.ts): spikard with its defaults
 * and one event-stream route, `GET /events` with `sse: true`, written as a user would write
 * a broadcast: each open stream's `reply.sse` kept in a Set (removed when it closes), and a
 * timer sending one event to every stream in the Set each second. The event's data carries
 * its number and the time it was sent (ms since the epoch, sub-millisecond), so the clients
 * can check every event arrived and say how long the fan-out took.
 *
 * `sse.maxConnections` defaults to 10,000 open streams per process, exactly the fan-out's
 * count: raised to BENCH_SSE_CLIENTS plus a margin, as a user running that many would.
 */
import type { FastifyReply } from 'fastify'
import { createServer } from '../../src/index.js'
import { HOST, logPath, serve } from './common.js'

const CLIENTS = Number(process.env.BENCH_SSE_CLIENTS ?? 10_000)

await serve(async () => {
  const log = logPath('spikard-sse')
  const open = new Set<FastifyReply['sse']>()
  let n = 0
  const app = await createServer({
    server: { logger: { file: log } },
    sse: { maxConnections: Math.max(10_000, CLIENTS + 1000) },
    app: async (app) => {
      app.get('/events', { sse: true }, async (_request, reply) => {
        reply.sse.keepAlive()
        open.add(reply.sse)
        reply.sse.onClose(() => open.delete(reply.sse))
      })
    }
  })
  await app.listen({ host: HOST, port: 0 })
  const timer = setInterval(() => {
    n += 1
    const event = { id: String(n), event: 'tick', data: { n, at: performance.timeOrigin + performance.now() } }
    for (const sse of open) sse.send(event).catch(() => {})
  }, 1000)
  return {
    server: app.server,
    close: async () => {
      clearInterval(timer)
      await app.close()
    },
    info: { verifiesJwt: false, limitsRate: false, log }
  }
})
