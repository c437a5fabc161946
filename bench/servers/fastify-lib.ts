/**
 * Reference for the JWT and rate-limit scenarios: bare Fastify plus only the library the
 * scenario needs, each on its own route: @fastify/jwt verifying the token on /jwt,
 * @fastify/rate-limit (in memory, never trips) on /limited. What a hand-written Fastify
 * app pays for the same check, so a feature's cost can be told from the preset's.
 */
import Fastify from 'fastify'
import { fastifyJwt, jwtVerify } from '../lib/fastify-jwt.js'
import rateLimit from '@fastify/rate-limit'
import { HOST, JWT, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

await serve(async () => {
  const app = Fastify()
  await app.register(fastifyJwt, { secret: JWT.secret, verify: { allowedIss: JWT.issuer, allowedAud: JWT.audience, algorithms: ['HS256'] } })
  await app.register(rateLimit, { global: false })
  await app.register(benchRoutes({
    jwt: { onRequest: async (request) => { await jwtVerify(request) } },
    limited: { config: { rateLimit: { max: 1_000_000_000, timeWindow: 60_000 } } }
  }))
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: true, limitsRate: true } }
})
