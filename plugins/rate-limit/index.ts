// STUB: to be implemented (not committed in this state)
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { RateLimitOptions } from './options.js'

async function spikardRateLimit (_app: FastifyInstance, _options: RateLimitOptions): Promise<void> {}

export default fp(spikardRateLimit, { name: 'spikard-rate-limit', fastify: '5.x' })
