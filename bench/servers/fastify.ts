/** Bare Fastify: the reference every ratio is taken against. No logger, no plugins. */
import Fastify from 'fastify'
import { HOST, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const app = Fastify()
  await app.register(benchRoutes())
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false } }
})
