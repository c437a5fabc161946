/**
 * spikard with its defaults: createServer with no feature key, so request ids, the access
 * line, the body limit, the timeouts, compression, health and shutdown are on, and auth, rate
 * limiting, the request context and (NODE_ENV=production in the bench) the OpenAPI document
 * off. The access line goes to a file through spikard's own destination
 * (`server.logger.file`), unbuffered, as a config with only `app:` gives.
 */
import { fileURLToPath } from 'node:url'
import { createServer } from '../../src/index.js'
import { HOST, logPath, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const log = logPath('spikard-defaults')
  // The static scenario's mount (static is off until a mount is configured).
  const app = await createServer({ server: { logger: { file: log } }, static: [{ root: fileURLToPath(new URL('./static/', import.meta.url)), prefix: '/static/' }], app: benchRoutes() })
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false, log } }
})
