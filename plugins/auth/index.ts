// STUB: to be implemented (not committed in this state)
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AuthOptions } from './options.js'

async function spikardAuth (_app: FastifyInstance, _options: AuthOptions): Promise<void> {}

export default fp(spikardAuth, { name: 'spikard-auth', fastify: '5.x' })
