/**
 * What the tasks feature shares with the features that answer a request without a response
 * Fastify sees end: a WebSocket's 101 is written by ws on the socket it takes over, and an
 * upgrade whose client leaves before it gets one ends with no response at all, so no
 * onResponse (nor onRequestAbort) ever settles the tasks its request holds. No Fastify
 * runtime import.
 */
import type { FastifyRequest } from 'fastify'

/**
 * A request method the tasks feature (when on) decorates requests with: the request's
 * response has been sent (`true`: the tasks it holds are queued now and those it adds later
 * at once) or never will be (`false`: they are dropped, as for a client that went away).
 * Only the first call counts.
 */
export const kResponseSettled = Symbol('spikard.tasks.responseSettled')

type Settling = FastifyRequest & { [kResponseSettled]?: (sent: boolean) => void }

/** Tells the tasks feature (when on) that the request's response has been sent (a WebSocket's 101). */
export function responseSent (request: FastifyRequest): void {
  (request as Settling)[kResponseSettled]?.(true)
}

/** Tells the tasks feature (when on) that the request will get no response (an upgrade whose socket closed before its 101). */
export function responseDropped (request: FastifyRequest): void {
  (request as Settling)[kResponseSettled]?.(false)
}
