/** The demo's routes: a plain Fastify plugin, loaded by `spikard start` from spikard.config.yaml. */
import type { FastifyInstance } from 'fastify'
import { requestContext } from '../src/index.js'

export default async function routes (app: FastifyInstance): Promise<void> {
  // Public: every other route needs credentials, since the config turns auth on.
  app.get('/hello', { config: { auth: false } }, async (request) => ({ hello: 'world', requestId: request.id }))

  // A JWT (see the README for minting a demo token), an API key, or a JWT with a role.
  app.get('/me', { config: { auth: 'jwt' } }, async (request) => ({ identity: request.identity, claims: request.user }))
  app.get('/reports', { config: { auth: 'apiKey' } }, async (request) => ({ caller: request.identity?.id, reports: [] }))
  app.delete('/items/:id', { config: { auth: { claims: { role: 'admin' } } } }, async (_request, reply) => reply.code(204).send())

  app.post('/items', {
    config: { auth: false },
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

  app.get('/boom', { config: { auth: false } }, async () => {
    throw new Error('database password=hunter2 rejected') // the client sees a generic 500, the log sees this
  })
}
