/**
 * What the tasks feature shares with the features that answer a request without a response
 * Fastify sees end: a WebSocket's 101 is written by ws on the socket it takes over, so no
 * onResponse (nor onRequestAbort) ever settles the tasks its request holds. No Fastify
 * runtime import.
 */
import type { FastifyRequest } from 'fastify'

/**
 * A request method the tasks feature (when on) decorates requests with: the request's
 * response has been sent, so the tasks it holds are queued now and those it adds later at once.
 */
export const kResponseSent = Symbol('spikard.tasks.responseSent')

/** Tells the tasks feature (when on) that the request's response has been sent (a WebSocket's 101). */
export function responseSent (request: FastifyRequest): void {
  (request as FastifyRequest & { [kResponseSent]?: () => void })[kResponseSent]?.()
}
