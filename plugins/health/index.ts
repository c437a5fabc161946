/**
 * Liveness and readiness routes (`/livez`, `/readyz` by default). Both answer
 * `200 {"status":"ok"}` while the server serves. From the moment shutdown begins, readiness
 * answers a 503 problem (SPK_ERR_SHUTTING_DOWN) so load balancers stop sending traffic,
 * while liveness stays 200 so the orchestrator does not kill an instance that is draining.
 *
 * The routes live in an encapsulated child, are kept out of the access log and are public:
 * the auth and rate-limit features leave alone a route whose `config.auth` or
 * `config.rateLimit` is `false`, and the shutdown feature keeps serving a route whose
 * `config.shutdown` is `false` after it has stopped accepting connections.
 */
import fp from 'fastify-plugin'
import type { FastifyContextConfig, FastifyInstance, RouteShorthandOptions } from 'fastify'
import { errors } from '../../src/errors.js'
import { resolveHealthOptions, type HealthOptions } from './options.js'
import { refuseLaterRoutes, refuseTakenPaths, type OwnPath } from '../../src/own-paths.js'

/**
 * The route config of a probe. `auth` and `rateLimit` are declared here rather than on
 * FastifyContextConfig: the features that own them declare their own types (the rate limit
 * one comes from @fastify/rate-limit), and two declarations of one key must agree.
 */
type ProbeConfig = FastifyContextConfig & { auth: false, rateLimit: false }

const config: ProbeConfig = { logging: false, auth: false, rateLimit: false, shutdown: false }

const OK = { status: 'ok' } as const

/** A probe's route options; the summary and the `health` tag are for the OpenAPI document. */
const probe = (summary: string): RouteShorthandOptions => ({
  config,
  schema: {
    tags: ['health'],
    summary,
    response: {
      200: { type: 'object', properties: { status: { type: 'string', const: 'ok' } }, required: ['status'], additionalProperties: false }
    }
  }
})

async function spikardHealth (app: FastifyInstance, options: HealthOptions): Promise<void> {
  const { liveness, readiness } = resolveHealthOptions(options)
  const probes: OwnPath[] = []
  if (liveness !== false) probes.push({ path: liveness, option: 'health.liveness', what: 'spikard\'s liveness probe' })
  if (readiness !== false) probes.push({ path: readiness, option: 'health.readiness', what: 'spikard\'s readiness probe' })

  // A probe's path is the probe's alone, for any method, whether the route came before
  // spikard or after.
  refuseTakenPaths(app, probes, 'any')
  await app.register(async function healthRoutes (child: FastifyInstance) {
    // Never stored: a cache between the prober and the server (a reverse proxy's default TTL
    // for a 200 without Cache-Control) would answer "ready" for a server that is draining.
    if (liveness !== false) {
      child.get(liveness, probe('Liveness: 200 while the process runs, during shutdown too.'), async (_request, reply) => {
        reply.header('cache-control', 'no-store')
        return OK
      })
    }
    if (readiness !== false) {
      child.get(readiness, probe('Readiness: 200 while serving, a 503 problem from the moment shutdown begins.'), async (_request, reply) => {
        reply.header('cache-control', 'no-store')
        if (app.spikard.phase !== 'serving') throw new errors.SPK_ERR_SHUTTING_DOWN()
        return OK
      })
    }
  })
  refuseLaterRoutes(app, probes, 'any')
}

export default fp(spikardHealth, { name: 'spikard-health', fastify: '5.x', decorators: { fastify: ['spikard'] } })
