/**
 * spikard with every feature that exists switched on: the OpenAPI document and its pages
 * (set explicitly: the bench runs with NODE_ENV=production), request context, request ids, the
 * one-line access log (to a file, spikard's default writes), graceful shutdown, health probes, JWT on
 * GET /jwt (every other route opts out with `config: { auth: false }`), an in-memory
 * rate limit that never trips, the body limit, the handler timeout, and compression
 * (negotiated on every response; the JSON responses are under its threshold).
 *
 * auth and rateLimit are tried first with the options below; while a feature is not
 * available yet (its plugin refuses to register, or its options schema refuses these
 * options) the server starts without it and tells the harness, which marks the results.
 * When the auth or rate-limit option names change, change AUTH and RATE_LIMIT here.
 */
import type { FastifyInstance, RouteShorthandOptions } from 'fastify'
import { createServer, type CreateServerConfig } from '../../src/index.js'
import { HOST, JWT, logPath, serve } from './common.js'
import { benchRoutes } from './fastify-routes.js'

/** The auth options (issue 4's contract): HS256 with the bench secret, issuer and audience checked. */
export const AUTH = { jwt: { algorithms: ['HS256'], secret: JWT.secret, issuer: JWT.issuer, audience: JWT.audience } }
/** The rate limit (issue 5's contract): global, keyed by client address, in memory, never tripped by the load. */
export const RATE_LIMIT = { max: 1_000_000_000, timeWindow: '1m' }

/** Route options read by features that may not be registered (their config types come with them). */
const publicRoute = { config: { auth: false } } as unknown as RouteShorthandOptions

const OPTIONAL = ['auth', 'rateLimit'] as const

await serve(async () => {
  // The log file is spikard's own (`server.logger.file`), written as by default: the lines
  // of at most 10 ms in one background write. BENCH_LOG_BUFFER=16384 measures a 16 KiB
  // `server.logger.buffer` instead (one write per ~60 access lines).
  const log = logPath('spikard-all')
  const buffer = process.env.BENCH_LOG_BUFFER
  const config: Record<string, unknown> = {
    server: { logger: { level: 'info', file: log, ...(buffer === undefined ? {} : { buffer: Number(buffer) }) } },
    openapi: true,
    requestContext: true,
    requestId: true,
    logging: true,
    shutdown: true,
    health: true,
    auth: AUTH,
    rateLimit: RATE_LIMIT,
    bodyLimit: true,
    timeout: true,
    compression: true,
    app: benchRoutes({ json: publicRoute, post: publicRoute, limited: publicRoute, stream: publicRoute })
  }
  // `bench/run.ts --ablate`: the same server with some features switched off (BENCH_SPIKARD_OFF=timeout,logging).
  // `false`, not a missing key: most features are on by default.
  const off = (process.env.BENCH_SPIKARD_OFF ?? '').split(',').filter((f) => f !== '')
  for (const feature of off) {
    if (!(feature in config) || feature === 'server' || feature === 'app') throw new Error(`BENCH_SPIKARD_OFF: no feature ${JSON.stringify(feature)}`)
    config[feature] = false
  }
  const on = (feature: string): boolean => config[feature] !== undefined && config[feature] !== false
  const missing: Record<string, string> = {}
  let app: FastifyInstance | undefined
  while (app === undefined) {
    try {
      app = await createServer(config as CreateServerConfig)
    } catch (error) {
      // A refusal that names auth or rateLimit: start without that feature and say so.
      const message = error instanceof Error ? error.message : String(error)
      const feature = OPTIONAL.find((f) => on(f) && new RegExp(`(^|[\\s"'])${f}[.:"']`).test(message))
      if (feature === undefined) throw error
      missing[feature] = message.split('\n').map((l) => l.trim()).filter((l) => l.includes(feature)).join(' ').slice(0, 200)
      delete config[feature]
    }
  }
  await app.listen({ host: HOST, port: 0 })
  const server = app
  return {
    server: server.server,
    close: () => server.close(),
    info: {
      verifiesJwt: on('auth'),
      limitsRate: on('rateLimit'),
      log,
      ...(Object.keys(missing).length > 0 ? { missing } : {}),
      ...(off.length > 0 ? { notes: [`switched off: ${off.join(', ')}`] } : {})
    }
  }
})
