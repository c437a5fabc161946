/**
 * `ndjson(iterable)`: newline-delimited JSON from an async iterable of values. No Fastify
 * runtime import: it is part of spikard's public surface.
 */
import type { Readable } from 'node:stream'
import { IterableReadable } from './iterable.js'

export const NDJSON_CONTENT_TYPE = 'application/x-ndjson'

/**
 * The content type a stream asks for when the route sets none (read by the stream feature).
 * A registered symbol: a routes module loaded by `spikard start` through tsx gets its own
 * instance of spikard's modules, and its ndjson() must still be recognised.
 */
export const kContentType = Symbol.for('spikard.stream.contentType')

/**
 * A stream of `application/x-ndjson`: one JSON text per value, each followed by `\n`,
 * produced as the iterable yields (backpressure included: the next value is asked for
 * when the client has taken the previous ones). Return it from a handler:
 *
 *     app.get('/events', async (request) => ndjson(db.cursor('events', { signal: request.signal })))
 *
 * The route's own `Content-Type`, when it sets one, wins. When the client goes away the
 * iterable's `return()` runs (a generator's `finally` blocks). A value JSON cannot
 * represent (`undefined`, a function) fails the stream, as would a throw in the iterable.
 */
export function ndjson (iterable: AsyncIterable<unknown> | Iterable<unknown>): Readable {
  const items = Symbol.asyncIterator in iterable ? iterable : toAsync(iterable)
  const stream = new IterableReadable(items, line)
  return Object.assign(stream, { [kContentType]: NDJSON_CONTENT_TYPE })
}

function line (value: unknown, index: number): string {
  const json = JSON.stringify(value)
  if (json === undefined) throw new TypeError(`ndjson: item ${index} (${typeof value}) has no JSON representation`)
  return json + '\n'
}

async function * toAsync (iterable: Iterable<unknown>): AsyncGenerator<unknown> {
  yield * iterable
}
