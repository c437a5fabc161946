/**
 * The demo's routes: a plain Fastify plugin, loaded by `spikard start` from spikard.config.yaml.
 * Each route declares what it takes and answers; spikard documents the rest (auth, limits,
 * timeouts, problems) at /openapi.json, /docs and /redoc.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { ndjson, requestContext, type TaskContext } from '../src/index.js'

const Item = Type.Object({
  name: Type.String({ minLength: 1, description: 'What the item is called.' }),
  price: Type.Number({ minimum: 0, description: 'In euros.' })
}, { $id: 'Item', additionalProperties: false })

export default async function routes (app: FastifyInstance): Promise<void> {
  app.addSchema(Item)

  // Public: every other route needs credentials, since the config turns auth on.
  app.get('/hello', {
    config: { auth: false },
    schema: {
      summary: 'Say hello',
      tags: ['demo'],
      response: { 200: { type: 'object', properties: { hello: { type: 'string' }, requestId: { type: 'string' } }, required: ['hello', 'requestId'] } }
    }
  }, async (request) => ({ hello: 'world', requestId: request.id }))

  // A JWT (see the README for minting a demo token), an API key, or a JWT with a role.
  app.get('/me', {
    config: { auth: 'jwt' },
    schema: {
      summary: 'Who the token says you are',
      tags: ['demo'],
      response: { 200: { type: 'object', properties: { identity: { type: 'object', additionalProperties: true }, claims: { type: 'object', additionalProperties: true } } } }
    }
  }, async (request) => ({ identity: request.identity, claims: request.user }))
  app.get('/reports', {
    config: { auth: 'apiKey' },
    schema: {
      summary: 'Reports, for API-key callers',
      tags: ['reports'],
      response: { 200: { type: 'object', properties: { caller: { type: 'string' }, reports: { type: 'array', items: { type: 'string' } } } } }
    }
  }, async (request) => ({ caller: request.identity?.id, reports: [] }))
  app.delete('/items/:id', {
    config: { auth: { claims: { role: 'admin' } } },
    schema: {
      summary: 'Delete an item (admins)',
      tags: ['items'],
      params: Type.Object({ id: Type.String({ description: 'The item\'s id.' }) }),
      response: { 204: { type: 'null', description: 'Deleted.' } }
    }
  }, async (_request, reply) => reply.code(204).send())

  app.post('/items', {
    config: { auth: false },
    bodyLimit: 16 * 1024,
    schema: {
      summary: 'Create an item',
      tags: ['items'],
      body: Type.Ref(Item),
      response: { 201: Type.Ref(Item) }
    }
  }, async (request, reply) => {
    requestContext.get('log')?.info({ item: request.body }, 'item created')
    return reply.code(201).send(request.body)
  })

  // A background task after the response: the receipt is "mailed" once the 202 has been sent;
  // its log line carries the request id (and the task's id and name).
  app.post('/orders', {
    config: { auth: false },
    schema: {
      summary: 'Place an order; the receipt is sent in the background',
      tags: ['items'],
      body: Type.Object({ item: Type.String({ minLength: 1 }), email: Type.String({ format: 'email' }) }, { additionalProperties: false }),
      response: { 202: Type.Object({ orderId: Type.String(), receiptTask: Type.String() }) }
    }
  }, async (request, reply) => {
    const { email } = request.body as { email: string }
    const orderId = `order-${Date.now().toString(36)}`
    const receiptTask = request.tasks.add(sendReceipt, orderId, email)
    return reply.code(202).send({ orderId, receiptTask })
  })

  // Newline-delimited JSON, one line per item as it is produced (try: curl -N localhost:8000/export).
  app.get('/export', {
    config: { auth: false },
    schema: { summary: 'Export the catalogue as ndjson, a line every 200 ms', tags: ['items'], querystring: Type.Object({ count: Type.Integer({ minimum: 1, maximum: 100, default: 10 }) }) }
  }, async (request) => ndjson((async function * () {
    const { count } = request.query as { count: number }
    for (let n = 1; n <= count; n++) {
      yield { n, name: `item ${n}`, price: n * 1.5 }
      await sleep(200, undefined, { signal: request.signal })
    }
  })()))

  // Server-Sent Events: a tick every second; index.html (the static mount) subscribes to it.
  app.get('/ticks', {
    // 'only': an event stream for any client (curl's Accept: */* too), not just those asking for one.
    sse: 'only',
    config: { auth: false },
    schema: { summary: 'A tick every second, as Server-Sent Events', tags: ['demo'], sse: Type.Object({ n: Type.Integer(), at: Type.String() }) }
  }, async (request, reply) => {
    let n = Number(reply.sse.lastEventId ?? 0)
    reply.sse.keepAlive()
    const timer = setInterval(() => {
      n += 1
      void reply.sse.send({ id: String(n), event: 'tick', data: { n, at: new Date().toISOString() } })
    }, 1000)
    reply.sse.onClose(() => clearInterval(timer))
  })

  app.get('/boom', { config: { auth: false }, schema: { summary: 'Fail on purpose: a 500 problem, the cause only in the log', tags: ['demo'] } }, async () => {
    throw new Error('database password=hunter2 rejected') // the client sees a generic 500, the log sees this
  })
}

/** The demo's background task: a stand-in for a mail API call, aborted with the task (timeout, cancel, shutdown). */
async function sendReceipt (ctx: TaskContext, orderId: string, email: string): Promise<void> {
  await sleep(100, undefined, { signal: ctx.signal })
  // The address stays out of the log: only its domain.
  ctx.log.info({ orderId, to: `…@${email.split('@')[1]}`, attempt: ctx.attempt }, 'receipt sent')
}
