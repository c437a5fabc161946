/** Streamed responses: see plugins/stream/options.ts. */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolveStreamOptions, type StreamOptions } from './options.js'

async function spikardStream (_app: FastifyInstance, options: StreamOptions): Promise<void> {
  resolveStreamOptions(options)
}

export default fp(spikardStream, { name: 'spikard-stream', fastify: '5.x' })
