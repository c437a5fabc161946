/** Static files: see plugins/static/options.ts. */
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { resolveStaticOptions, type StaticOptions } from './options.js'

async function spikardStatic (_app: FastifyInstance, options: StaticOptions): Promise<void> {
  resolveStaticOptions(options)
}

export default fp(spikardStatic, { name: 'spikard-static', fastify: '5.x' })
