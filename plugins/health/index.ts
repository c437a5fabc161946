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
import { errors, SpikardConfigError } from '../../src/errors.js'
import { resolveHealthOptions, type HealthOptions } from './options.js'

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
  const probes = new Map<string, string>()
  if (liveness !== false) probes.set(liveness, 'health.liveness')
  if (readiness !== false) probes.set(readiness, 'health.readiness')

  /** A probe's path taken by another route: refused, naming both. */
  function taken (option: string, path: string, other: string): SpikardConfigError {
    return new SpikardConfigError([`${option}: ${path} is spikard's ${option === 'health.liveness' ? 'liveness' : 'readiness'} probe, and ${other} is registered there too; ` +
      `move that route, or set ${option} to another path (or false)`])
  }

  // Where the probes are served: spikard registered in a prefixed plugin serves them under
  // its prefix, and the router and onRoute know routes by their whole URL.
  const urls = new Map([...probes].map(([path, option]) => [app.prefix + path, option]))
  // Routes registered before spikard, for any method: the probe's own GET would only
  // collide with a GET (or HEAD) there, and onRoute below sees only later routes.
  for (const [url, option] of urls) {
    for (const method of app.supportedMethods) {
      if (app.hasRoute({ method, url })) throw taken(option, url, `your route ${method} ${url} (registered before spikard)`)
    }
  }
  await app.register(async function healthRoutes (child: FastifyInstance) {
    const add = (path: string, summary: string, handler: () => Promise<typeof OK>): void => {
      try {
        child.get(path, probe(summary), handler)
      } catch (error) {
        if ((error as { code?: string }).code !== 'FST_ERR_DUPLICATED_ROUTE') throw error
        throw taken(probes.get(path) as string, path, `your route GET ${path} (registered before spikard)`)
      }
    }
    if (liveness !== false) add(liveness, 'Liveness: 200 while the process runs, during shutdown too.', async () => OK)
    if (readiness !== false) {
      add(readiness, 'Readiness: 200 while serving, a 503 problem from the moment shutdown begins.', async () => {
        if (app.spikard.phase !== 'serving') throw new errors.SPK_ERR_SHUTTING_DOWN()
        return OK
      })
    }
  })
  // Routes registered after the probes, at a probe's path, for any method.
  app.addHook('onRoute', (route) => {
    const option = urls.get(route.url ?? '')
    if (option === undefined) return
    throw taken(option, route.url as string, `your route ${[route.method].flat().join(',')} ${route.url}`)
  })
}

export default fp(spikardHealth, { name: 'spikard-health', fastify: '5.x', decorators: { fastify: ['spikard'] } })
