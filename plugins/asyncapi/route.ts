/**
 * `config.asyncapi`, a route's say in the AsyncAPI document: `false` leaves the route out;
 * an object names its channel, its messages and its operations, so a route generated from
 * an AsyncAPI document (`spikard asyncapi generate`) is described with the ids the document
 * had rather than ids made up from its path. No Fastify runtime import.
 *
 *     config: { asyncapi: {
 *       channel: 'chat',
 *       messages: { receive: { say: 'chatSay' }, send: { said: 'chatSaid' } },
 *       operations: {
 *         sendMessage: { action: 'receive', messages: ['chatSay'] },
 *         ping: { action: 'receive', messages: ['ping'], reply: ['pong'] },
 *         roomEvents: { action: 'send', messages: ['chatSaid'] }
 *       }
 *     } }
 *
 * The payloads still come from the route's schemas (`config.websocket.receive` and `send`,
 * `schema.sse`): what the document says is what the route validates.
 */

/** An operation of the channel, from the server's side. */
export interface AsyncApiRouteOperation {
  action: 'send' | 'receive'
  /** The names of its messages (as `messages` names them). */
  messages: string[]
  /** The names of the messages that answer it (on the same channel). */
  reply?: string[]
  summary?: string
}

export interface AsyncApiRouteConfig {
  /** The channel's id (default: from the path, `/chat/:room` is `chatByRoom`). */
  channel?: string
  /**
   * Message names by what the route declares: a WebSocket route's `receive` and `send`
   * messages by their `type` value (`*` for a single schema), an event stream's by event name.
   */
  messages?: { receive?: Record<string, string>, send?: Record<string, string>, event?: Record<string, string> }
  /** The channel's operations by id, instead of the default (`receive<Channel>` and `send<Channel>`, or `send<Channel>`). */
  operations?: Record<string, AsyncApiRouteOperation>
}

/** The route's `config.asyncapi` object, or an empty one. */
export function routeAsyncApi (config: unknown): AsyncApiRouteConfig {
  const value = (config as { asyncapi?: unknown } | undefined)?.asyncapi
  return value !== null && typeof value === 'object' ? value as AsyncApiRouteConfig : {}
}
