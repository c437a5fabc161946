/**
 * Events as spikard sends them, and the event schema a route declares. No Fastify runtime
 * import: the OpenAPI document (and the AsyncAPI one) read routes with these functions.
 *
 * @fastify/sse 0.6 formats an event itself (formatSSEMessage), and gets three things wrong
 * that matter on a public stream, so every event is normalized here before it reaches it:
 *
 * - it splits data on LF only, while the spec (WHATWG HTML, "event stream interpretation")
 *   also ends a line at a lone CR: data `"a\r\rdata: x"` dispatched an event of its own, and
 *   `"a\revent: x"` set a field. Here CRLF and CR become LF, so each line is a `data:` line;
 * - it writes `id` and `event` as given: an id or name holding CR or LF injected fields or a
 *   whole event. Here such an id or name is refused (a TypeError), as is NUL in an id (the
 *   browser ignores the field);
 * - it serializes string data with JSON.stringify (`data: "hello"`, with the quotes), and
 *   drops `id: 0` and `retry: 0` (falsy tests). Here strings go as the text itself, objects
 *   as JSON, and numeric ids and retry as their decimal text.
 */

/** An event as a handler gives it: `data` an object (sent as JSON) or a string (sent as it is). */
export interface SseEvent {
  id?: string | number
  event?: string
  data?: unknown
  /** Milliseconds: how soon the browser's EventSource reconnects after the stream ends. */
  retry?: number
}

/** What a handler may pass to `reply.sse.send`: one event, a string or Buffer (the data), or an async iterable (a Readable too) of them. */
export type SseChunk = SseEvent | string | Buffer | Uint8Array

/** An event ready for @fastify/sse: id, name and data as safe text. */
export interface SafeEvent { id?: string, event?: string, data: string | undefined, retry?: string }

const KEYS = new Set(['id', 'event', 'data', 'retry'])
const LINE_BREAK = /\r\n?/g

/** The data's text, every line break an LF, so @fastify/sse writes one `data:` line per line. */
export function serializeData (data: unknown, serializer?: (data: unknown) => unknown): string | undefined {
  if (data === undefined) return undefined
  let text: unknown
  if (serializer !== undefined) text = serializer(data)
  else if (typeof data === 'string') text = data
  else if (Buffer.isBuffer(data) || data instanceof Uint8Array) text = Buffer.from(data).toString('utf8')
  else text = JSON.stringify(data)
  if (typeof text !== 'string') throw new TypeError(serializer === undefined ? `sse: event data must be a string or a JSON value, found ${typeof data}` : `sse: the route's serializer must return a string, returned ${typeof text}`)
  return text.includes('\r') ? text.replace(LINE_BREAK, '\n') : text
}

/** Throws a TypeError naming what is wrong with a chunk that is not an event. */
export function toEvent (chunk: unknown): SseEvent {
  if (typeof chunk === 'string' || Buffer.isBuffer(chunk) || chunk instanceof Uint8Array) return { data: chunk }
  if (chunk === null || typeof chunk !== 'object' || Array.isArray(chunk)) {
    throw new TypeError(`sse: expected an event ({ id, event, data, retry }), a string or a Buffer, found ${chunk === null ? 'null' : Array.isArray(chunk) ? 'an array' : typeof chunk}`)
  }
  // Neither has an own key, so either would pass as an empty event and send nothing:
  // `reply.sse.send(buildEvent())` without the await, or a generator that is not async.
  if (typeof (chunk as { then?: unknown }).then === 'function') throw new TypeError('sse: expected an event ({ id, event, data, retry }), found a Promise (await it, then send its event)')
  if (typeof (chunk as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function') throw new TypeError('sse: expected an event ({ id, event, data, retry }), found a synchronous iterable (send an async iterable, or each event)')
  const unknown = Object.keys(chunk).filter((k) => !KEYS.has(k))
  if (unknown.length > 0) throw new TypeError(`sse: an event has id, event, data and retry; found ${unknown.map((k) => JSON.stringify(k)).join(', ')} (put the payload in data)`)
  return chunk as SseEvent
}

/** The event as @fastify/sse will write it, its fields checked. */
export function safeEvent (event: SseEvent, serializer?: (data: unknown) => unknown): SafeEvent {
  const safe: SafeEvent = { data: serializeData(event.data, serializer) }
  if (event.id !== undefined) {
    const id = typeof event.id === 'number' && Number.isFinite(event.id) ? String(event.id) : event.id
    if (typeof id !== 'string' || /[\r\n\0]/.test(id)) throw new TypeError(`sse: an event id must be a string or a number without CR, LF or NUL, found ${JSON.stringify(event.id)}`)
    safe.id = id
  }
  if (event.event !== undefined) {
    if (typeof event.event !== 'string' || event.event === '' || /[\r\n]/.test(event.event)) throw new TypeError(`sse: an event name must be a non-empty string without CR or LF, found ${JSON.stringify(event.event)}`)
    safe.event = event.event
  }
  if (event.retry !== undefined) {
    if (!Number.isInteger(event.retry) || event.retry < 0) throw new TypeError(`sse: retry must be a whole number of milliseconds >= 0, found ${JSON.stringify(event.retry)}`)
    // As text: @fastify/sse writes retry only when truthy, and `retry: 0` (reconnect at once) is valid.
    safe.retry = String(event.retry)
  }
  return safe
}

/**
 * A route's event schema, `schema.sse`, in one of two forms:
 *
 * - a JSON Schema (or TypeBox type) that the `data` of every event matches;
 * - `{ events: { <name>: <schema>, ... } }`: the data schema of each event name (`message`
 *   for events sent without one); an event of another name is invalid.
 *
 * Returned as a map from event name to data schema, `*` standing for any name.
 */
export function eventSchemas (schema: unknown): Record<string, unknown> | undefined {
  if (schema === undefined) return undefined
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) throw new TypeError(`schema.sse: expected a JSON Schema for the data of every event, or { events: { <name>: <schema> } }, found ${JSON.stringify(schema)}`)
  const keys = Object.keys(schema)
  if (keys.length === 1 && keys[0] === 'events') {
    const events = (schema as { events: unknown }).events
    if (events === null || typeof events !== 'object' || Array.isArray(events) || Object.keys(events).length === 0) {
      throw new TypeError('schema.sse.events: expected an object mapping each event name to the schema of its data')
    }
    return { ...events }
  }
  return { '*': schema }
}

/**
 * Whether an `Accept` header admits `text/event-stream` (RFC 9110 12.5.1): yes when it is
 * absent or empty, else as its most specific matching range says (`text/event-stream`,
 * then `text/*`, then `*\/*`), refused only by `q=0`. As @fastify/sse decides for
 * `sse: 'only'` routes, which spikard serves itself so the refusal is a problem (406).
 */
export function acceptsEventStream (accept: string | undefined): boolean {
  if (accept === undefined || accept.trim() === '' || accept === 'text/event-stream' || accept === '*/*') return true
  let best = 0
  let refused = false
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';').map((p) => p.trim().toLowerCase())
    const rank = type === 'text/event-stream' ? 3 : type === 'text/*' ? 2 : type === '*/*' ? 1 : 0
    if (rank === 0 || rank < best) continue
    const zero = params.some((p) => /^q=0(\.0{0,3})?$/.test(p))
    if (rank === best) refused = refused && zero
    else refused = zero
    best = rank
  }
  return best > 0 && !refused
}

/** Where a route registered with `sse: 'only'` keeps that kind (spikard serves it as `'manual'`). */
export const kDeclaredKind = Symbol.for('spikard.sse.kind')

/** A route as the OpenAPI and AsyncAPI documents see it: what `sse` says, if it is an event stream. */
export interface SseRoute { kind: 'only' | 'dual' | 'manual' | 'legacy', events: Record<string, unknown> | undefined }

/** The route's event-stream declaration (`sse` route option and `schema.sse`), or undefined for other routes. */
export function sseRoute (route: { sse?: unknown, schema?: unknown, config?: unknown }): SseRoute | undefined {
  const sse = route.sse
  if (sse === undefined || sse === false || sse === null) return undefined
  const declared = (route as { config?: Record<symbol, unknown> }).config?.[kDeclaredKind]
  const kind = declared ?? (sse === true ? 'legacy' : typeof sse === 'string' ? sse : (sse as { kind?: string }).kind ?? 'legacy')
  let events: Record<string, unknown> | undefined
  try {
    events = eventSchemas((route.schema as { sse?: unknown } | undefined)?.sse)
  } catch {
    events = undefined
  }
  return { kind: kind as SseRoute['kind'], events }
}
