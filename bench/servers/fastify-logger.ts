/**
 * Fastify with its default logger: level info, Fastify's two request lines ("incoming
 * request", "request completed") per request, written to a file through
 * pino.destination (what `logger: { file }` does), not to the terminal.
 */
import Fastify from 'fastify'
import { HOST, logDestination, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const { path: log, stream: logStream } = logDestination('fastify-logger')
  const app = Fastify({ logger: { level: 'info', stream: logStream } })
  await app.register(benchRoutes())
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false, log } }
})
