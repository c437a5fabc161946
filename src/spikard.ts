/**
 * The root plugin. Registers problem details first, so every error below it is rendered
 * by one handler, then request context, then each enabled feature in this order:
 *
 *   1. requestId  2. logging
 */
import fp from 'fastify-plugin'
import { fastifyRequestContext } from '@fastify/request-context'
import type { FastifyBaseLogger, FastifyInstance, RouteOptions } from 'fastify'
import problemDetails from './problem-details.js'
import { resolveSpikardOptions, type ResolvedSpikardOptions, type SpikardOptions } from './options.js'
import requestId from '../plugins/request-id/index.js'
import logging from '../plugins/logging/index.js'

declare module '@fastify/request-context' {
  interface RequestContextData {
    /** The request's id, as in the response header and every log line. */
    requestId: string
    /** The request's logger (bound to its id). */
    log: FastifyBaseLogger
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The options spikard resolved (every default filled in). */
    spikard: {
      options: ResolvedSpikardOptions
      /** Every route registered after spikard, as Fastify's onRoute hook saw it (`spikard check` prints them). */
      routes: RouteOptions[]
    }
  }
}

async function spikard (app: FastifyInstance, options: SpikardOptions): Promise<void> {
  const resolved = resolveSpikardOptions(options)
  const routes: RouteOptions[] = []
  app.decorate('spikard', { options: resolved, routes })
  app.addHook('onRoute', (route) => { routes.push(route) })

  await app.register(problemDetails)
  await app.register(fastifyRequestContext, {
    defaultStoreValues: (request) => ({ requestId: String(request.id), log: request.log })
  })
  if (resolved.requestId !== false) await app.register(requestId, resolved.requestId)
  if (resolved.logging !== false) await app.register(logging, resolved.logging)
}

export default fp(spikard, { name: 'spikard', fastify: '5.x' })
