/**
 * Request context: the request's id and logger anywhere in its async context (a service
 * function the handler calls, after any number of awaits), through @fastify/request-context:
 * `requestContext.get('requestId')`, `requestContext.get('log')`.
 *
 * Off by default, and worth leaving off unless used: on Node 20 its
 * AsyncLocalStorage switches on async hooks for the whole process (every promise and tick
 * of every request then runs a hook), about 1.7 µs per small GET in bench/RESULTS.md
 * (`--ablate`). Node 24 propagates the context without hooks.
 */
import fp from 'fastify-plugin'
import { fastifyRequestContext } from '@fastify/request-context'
import type { FastifyInstance } from 'fastify'
import { resolveRequestContextOptions, type RequestContextOptions } from './options.js'

async function spikardRequestContext (app: FastifyInstance, options: RequestContextOptions): Promise<void> {
  resolveRequestContextOptions(options)
  await app.register(fastifyRequestContext, {
    defaultStoreValues: (request) => ({ requestId: String(request.id), log: request.log })
  })
}

export default fp(spikardRequestContext, { name: 'spikard-request-context', fastify: '5.x' })
