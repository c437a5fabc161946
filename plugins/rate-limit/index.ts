// Placeholder until the feature lands: refusing the key is better than a limit that silently does not apply.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { RateLimitOptions } from './options.js'

async function spikardRateLimit (_app: FastifyInstance, _options: RateLimitOptions): Promise<void> {
  throw new Error('rateLimit: not available in this version of spikard yet')
}

export default fp(spikardRateLimit, { name: 'spikard-rate-limit', fastify: '5.x' })
