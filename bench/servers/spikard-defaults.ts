/** spikard with only its defaults: createServer({}) plus the routes (log lines, of which there are none per request, to a file). */
import { createServer } from '../../src/index.js'
import { HOST, logDestination, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const { path: log, stream: logStream } = logDestination('spikard-defaults')
  const app = await createServer({ app: benchRoutes() }, { logStream })
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false, log } }
})
