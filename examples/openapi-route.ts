/**
 * The README's OpenAPI example: this route, and the part of the document spikard writes for
 * it (`npm run docs` renders both into the README, and a test fails when they drift apart).
 */
import type { FastifyInstance } from 'fastify'
import type { SpikardOptions } from '../src/index.js'

export const options: SpikardOptions = {
  auth: { jwt: { algorithms: ['HS256'], secret: 'an-example-secret-of-at-least-32-bytes' } },
  rateLimit: 100
}

export default async function routes (app: FastifyInstance): Promise<void> {
  // readme:start
  app.post('/orders', {
    bodyLimit: 64 * 1024,
    config: { auth: { claims: { scope: 'orders:write' } } },
    schema: {
      summary: 'Place an order',
      body: {
        type: 'object',
        required: ['sku', 'quantity'],
        properties: { sku: { type: 'string' }, quantity: { type: 'integer', minimum: 1 } }
      },
      response: {
        201: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] }
      }
    }
  }, async (_request, reply) => reply.code(201).send({ id: 'ord_1' }))
  // readme:end
}
