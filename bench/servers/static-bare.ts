/** Bare Fastify with only @fastify/static serving bench/servers/static/: the reference of the static scenario. */
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import fastifyStatic from '@fastify/static'
import { HOST, serve } from './common.js'

export const STATIC_ROOT = fileURLToPath(new URL('./static/', import.meta.url))

await serve(async () => {
  const app = Fastify()
  await app.register(fastifyStatic, { root: STATIC_ROOT, prefix: '/static/' })
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false } }
})
