/** Server-Sent Events: see plugins/sse/options.ts. */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolveSseOptions, type SseOptions } from './options.js'

async function spikardSse (_app: FastifyInstance, options: SseOptions): Promise<void> {
  resolveSseOptions(options)
}

export default fp(spikardSse, { name: 'spikard-sse', fastify: '5.x' })
