/**
 * The naive assembly: what a user gets by stacking the same features from their plugins
 * with default settings. Fastify's default two-line request logging (to a file),
 * @fastify/request-context, @fastify/rate-limit (global, in memory; only `max` raised so
 * it never trips), @fastify/compress (global), @fastify/swagger (its OpenAPI document),
 * @fastify/jwt verifying the token on /jwt, and Fastify's handlerTimeout. Fastify's
 * default body limit (1 MiB) is built in.
 */
import Fastify from 'fastify'
import { fastifyJwt, jwtVerify } from '../lib/fastify-jwt.js'
import rateLimit from '@fastify/rate-limit'
import compress from '@fastify/compress'
import swagger from '@fastify/swagger'
import { fastifyRequestContext } from '@fastify/request-context'
import { HOST, JWT, logDestination, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const { path: log, stream: logStream } = logDestination('naive')
  const app = Fastify({ logger: { level: 'info', stream: logStream }, handlerTimeout: 30_000 })
  await app.register(swagger, { openapi: { info: { title: 'bench', version: '1.0.0' } } })
  await app.register(fastifyRequestContext)
  await app.register(rateLimit, { max: 1_000_000_000 })
  await app.register(compress)
  await app.register(fastifyJwt, { secret: JWT.secret, verify: { allowedIss: JWT.issuer, allowedAud: JWT.audience, algorithms: ['HS256'] } })
  await app.register(benchRoutes({
    jwt: { onRequest: async (request) => { await jwtVerify(request) } }
  }))
  await app.listen({ host: HOST, port: 0 })
  return {
    server: app.server,
    close: () => app.close(),
    info: { verifiesJwt: true, limitsRate: true, log }
  }
})
