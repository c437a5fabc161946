/**
 * `spikard/testing`. The full test client arrives with its own feature; for now this
 * builds an app with spikard registered and the logger silenced, for `inject()` tests.
 */
import type { FastifyInstance } from 'fastify'
import { createServer, type CreateServerConfig } from '../server.js'

export async function createTestApp (config: CreateServerConfig = {}): Promise<FastifyInstance> {
  const server: CreateServerConfig['server'] = { ...config.server, logger: { level: 'silent', ...config.server?.logger } }
  return await createServer({ ...config, server })
}
