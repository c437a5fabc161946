// Placeholder until the feature lands: refusing the key is better than a limit that silently does not apply.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AuthOptions } from './options.js'

async function spikardAuth (_app: FastifyInstance, _options: AuthOptions): Promise<void> {
  throw new Error('auth: not available in this version of spikard yet')
}

export default fp(spikardAuth, { name: 'spikard-auth', fastify: '5.x' })
