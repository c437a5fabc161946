import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { uuid } from './uuid.js'
import { resolveRequestIdOptions, type RequestIdOptions } from './options.js'
import { ownRequestIdGenerator } from '../../src/fastify-internals.js'

/** An incoming id is reused only if it is short and made of safe characters; anything else is replaced, never reflected. */
const WELL_FORMED = /^[A-Za-z0-9._:-]{1,128}$/

async function spikardRequestId (app: FastifyInstance, options: RequestIdOptions): Promise<void> {
  const { header, trustIncoming } = resolveRequestIdOptions(options)
  if (app.initialConfig.requestIdHeader) {
    // Fastify would take that header verbatim, bypassing the check below.
    throw new Error(`requestId: Fastify was created with requestIdHeader ${JSON.stringify(app.initialConfig.requestIdHeader)}; remove it and set requestId.header instead, so malformed ids are replaced`)
  }
  const name = header.toLowerCase()
  // Your own generator (Fastify's genReqId option, or app.setGenReqId() before spikard) makes
  // the ids spikard would make a UUID for; a well-formed incoming id still comes first unless
  // trustIncoming is false. Chosen here, once.
  const generate = ownRequestIdGenerator(app) ?? uuid
  app.setGenReqId(trustIncoming
    ? function (this: unknown, req) {
      const incoming = req.headers[name]
      return typeof incoming === 'string' && WELL_FORMED.test(incoming) ? incoming : generate.call(this, req) as string
    }
    : generate as (req: unknown) => string)
  app.addHook('onRequest', function spikardRequestId (request, reply, done) {
    reply.header(name, request.id)
    done()
  })
}

export default fp(spikardRequestId, { name: 'spikard-request-id', fastify: '5.x' })
