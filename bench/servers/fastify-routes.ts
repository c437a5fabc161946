/**
 * The benchmark routes for every Fastify-based server (bare, logger, naive, spikard):
 * the same handlers, schema and payloads; each server adds only route options of its own
 * (a JWT hook on /jwt, a route config for auth or rate limiting).
 */
import type { FastifyInstance, RouteShorthandOptions } from 'fastify'
// The module alone, not spikard's index: the bare Fastify servers load these routes too.
import { fileStream } from '../../plugins/stream/file.js'
import { generatorSource, ITEM_SCHEMA, PAYLOAD, requestedBytes, ROUTES, streamFile, streamSource } from './common.js'

/** Extra route options per route; `all` goes on every route (merged under the route's own). */
export interface RouteExtras {
  all?: RouteShorthandOptions
  json?: RouteShorthandOptions
  post?: RouteShorthandOptions
  jwt?: RouteShorthandOptions
  limited?: RouteShorthandOptions
  stream?: RouteShorthandOptions
}

function merge (a: RouteShorthandOptions | undefined, b: RouteShorthandOptions | undefined): RouteShorthandOptions {
  return { ...a, ...b, config: { ...a?.config, ...b?.config } as RouteShorthandOptions['config'] }
}

/** The task of the task scenario: nothing, so what is measured is queuing and running a task. */
async function emptyTask (): Promise<void> {}

export function benchRoutes (extras: RouteExtras = {}) {
  return async function routes (app: FastifyInstance): Promise<void> {
    const get = async () => PAYLOAD
    app.get(ROUTES.json, merge(extras.all, extras.json), get)
    app.post(ROUTES.post, merge(extras.all, { ...extras.post, schema: { body: ITEM_SCHEMA } }), async (request) => request.body)
    app.get(ROUTES.jwt, merge(extras.all, extras.jwt), get)
    // spikard only (its tasks feature): the small GET, with an empty task queued after the response.
    app.get(ROUTES.task, merge(extras.all, extras.json), async (request) => {
      request.tasks.add(emptyTask)
      return PAYLOAD
    })
    app.get(ROUTES.limited, merge(extras.all, extras.limited), get)
    app.get(ROUTES.stream, merge(extras.all, extras.stream), async (_request, reply) => {
      reply.type('application/octet-stream')
      return streamSource()
    })
    // Issue 17's streaming lines, written as a spikard user would: the handler returns the
    // async generator, or the file as the README says to send one, with fileStream() (bare
    // Fastify would serialize the generator as JSON: the scenarios measure these routes on
    // spikard and raw node:http only).
    app.get(ROUTES.streamGen, merge(extras.all, extras.stream), async (request, reply) => {
      reply.type('application/octet-stream')
      return generatorSource(requestedBytes(request.url))
    })
    app.get(ROUTES.streamFile, merge(extras.all, extras.stream), async (_request, reply) => {
      reply.type('application/octet-stream')
      return fileStream(streamFile())
    })
  }
}
