/**
 * A WebSocket route's declaration as the plugin and the AsyncAPI document read it. No
 * Fastify runtime import, so the document (and the CLI) can use it cheaply.
 *
 * A route is a WebSocket route when it has @fastify/websocket's `websocket: true` route
 * option; what spikard adds is read from `config.websocket`:
 *
 *     app.get('/chat/:room', {
 *       websocket: true,
 *       config: { websocket: { receive: ChatIn, send: ChatOut, closeOnInvalid: false } }
 *     }, (socket, request) => { ... })
 *
 * `receive` and `send` are the schemas of the messages (JSON text frames) the route takes
 * and sends, in one of two forms:
 *
 * - one JSON Schema (or TypeBox type) that every message matches: one message, `*`;
 * - a `oneOf` or `anyOf` whose every member pins a `type` property to one value
 *   (`properties.type.const`, or an `enum` of one): one message per value, discriminated by
 *   the message's `type` field, as a chat's `{ type: 'join' }` and `{ type: 'say' }`.
 */

/** Per-route options, `config.websocket`. */
export interface WebSocketRouteConfig {
  /** The messages the route receives: one schema, or a `oneOf`/`anyOf` discriminated by `type`. */
  receive?: unknown
  /** The messages the route sends: one schema, or a `oneOf`/`anyOf` discriminated by `type`. */
  send?: unknown
  /** Accept binary frames (refused by default). */
  binary?: boolean
  /** Close the socket (1007 for non-JSON, 1008 for a schema mismatch) on an invalid message instead of answering with an error frame. */
  closeOnInvalid?: boolean
  /** Accept a browser's token in `Sec-WebSocket-Protocol` (`access_token, <token>`) or an `access_token` query parameter. */
  accessToken?: boolean
}

/** The messages of one direction: the schema of each message by its `type` value, `*` for a route's single schema. */
export type MessageSchemas = Record<string, unknown>

/** A route as the AsyncAPI document sees it. */
export interface WebSocketRoute {
  receive: MessageSchemas | undefined
  send: MessageSchemas | undefined
  binary: boolean
  accessToken: boolean
}

/** The `type` value a schema pins, or undefined. */
function pinnedType (schema: unknown): string | undefined {
  const type = (schema as { properties?: { type?: { const?: unknown, enum?: unknown[] } } } | null)?.properties?.type
  if (type === undefined || type === null) return undefined
  const value = type.const ?? (Array.isArray(type.enum) && type.enum.length === 1 ? type.enum[0] : undefined)
  return typeof value === 'string' ? value : undefined
}

/**
 * The messages a `receive` or `send` schema declares, by name; throws a TypeError naming
 * what is wrong (`where` is the key, as `config.websocket.receive`).
 */
export function messageSchemas (schema: unknown, where: string): MessageSchemas | undefined {
  if (schema === undefined) return undefined
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new TypeError(`${where}: expected a JSON Schema, or a oneOf of schemas each with a "type" const, found ${JSON.stringify(schema)}`)
  }
  const members = (schema as { oneOf?: unknown, anyOf?: unknown }).oneOf ?? (schema as { anyOf?: unknown }).anyOf
  if (!Array.isArray(members) || members.length === 0) return { '*': schema }
  // No prototype: a message typed "constructor" or "__proto__" is a message like any other.
  const byType: MessageSchemas = Object.create(null)
  for (const member of members) {
    const type = pinnedType(member)
    // Not every member is named by its type: the whole schema is one message.
    if (type === undefined) return { '*': schema }
    if (type in byType) throw new TypeError(`${where}: two messages have "type": ${JSON.stringify(type)}`)
    byType[type] = member
  }
  return byType
}

/** A route's @fastify/websocket options: `websocket: true`, or `wsHandler` beside a `handler` for plain requests. */
export interface WebSocketRouteOptions { websocket?: unknown, wsHandler?: unknown, config?: unknown }

/** Whether the route accepts WebSocket upgrades, in either of @fastify/websocket's forms. */
export function isWebSocketRoute (route: WebSocketRouteOptions): boolean {
  return route.websocket === true || typeof route.wsHandler === 'function'
}

/** The route's WebSocket declaration (`websocket` route option and `config.websocket`), or undefined for other routes. */
export function websocketRoute (route: WebSocketRouteOptions): WebSocketRoute | undefined {
  if (!isWebSocketRoute(route)) return undefined
  const config = ((route.config as { websocket?: WebSocketRouteConfig } | undefined)?.websocket) ?? {}
  return {
    receive: messageSchemas(config.receive, 'config.websocket.receive'),
    send: messageSchemas(config.send, 'config.websocket.send'),
    binary: config.binary === true,
    accessToken: config.accessToken === true
  }
}
