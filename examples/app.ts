/** The demo's routes: a plain Fastify plugin, loaded by `spikard start` from spikard.config.yaml. */
import type { FastifyInstance } from 'fastify'
import { requestContext } from '../src/index.js'

export default async function routes (app: FastifyInstance): Promise<void> {
  app.get('/hello', async (request) => ({ hello: 'world', requestId: request.id }))

  app.post('/items', {
    schema: {
      body: {
        type: 'object',
        required: ['name', 'price'],
        additionalProperties: false,
        properties: { name: { type: 'string', minLength: 1 }, price: { type: 'number', minimum: 0 } }
      }
    }
  }, async (request, reply) => {
    requestContext.get('log')?.info({ item: request.body }, 'item created')
    return reply.code(201).send(request.body)
  })

  app.get('/boom', async () => {
    throw new Error('database password=hunter2 rejected') // the client sees a generic 500, the log sees this
  })
}
