/**
 * `spikard/testing`. The full test client arrives with its own feature; for now this
 * builds an app with spikard registered and the logger silenced, for `inject()` tests.
 */
import type { FastifyInstance } from 'fastify'
import { createServer } from '../server.js'
import type { SpikardConfig } from '../config/schema.js'

export async function createTestApp (config: Parameters<typeof createServer>[0] = {}): Promise<FastifyInstance> {
  const server: SpikardConfig['server'] = { ...config.server, logger: { level: 'silent', ...config.server?.logger } }
  return await createServer({ ...config, server })
}
