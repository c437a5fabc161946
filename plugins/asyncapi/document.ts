/**
 * The AsyncAPI 3.0 document of an app: one channel per WebSocket route and per event-stream
 * route, addressed by the route's path (`/chat/{room}`). A WebSocket channel has two
 * operations, from the server's side: `receive` (the messages its `receive` schema
 * declares) and `send` (its `send` schema, and the problem frames it answers invalid
 * messages with); an event-stream channel has one, `send`, its events. Messages are named
 * by their `type` or event name. No Fastify runtime import: the plugin builds it once when
 * the app is ready, from `app.spikard.routes`.
 */
import type { RouteOptions } from 'fastify'
import type { ResolvedSpikardOptions } from '../../src/options.js'
import { websocketRoute, type MessageSchemas, type WebSocketRouteOptions } from '../websocket/messages.js'
import { sseRoute } from '../sse/events.js'
import { inAsyncApi, type ResolvedAsyncApiOptions } from './options.js'
import { schemaComponents } from './schemas.js'
import { security, servers, type ServerUrl } from './servers.js'
import { channelAddress, channelId } from './paths.js'
import { unique } from '../../src/unique.js'
import { nameMessages, PROBLEM_FRAME, type Entry } from './messages.js'
import { routeAsyncApi, type AsyncApiRouteOperation } from './route.js'

type Json = Record<string, any>

/**
 * An object keyed by names that come from routes (message names, channel and operation ids),
 * without a prototype: a message typed `__proto__` is a key like any other, where assigning
 * it on a plain object would set the object's prototype and leave it out of the document.
 */
const record = (): Json => Object.create(null)

export interface DocumentInput {
  routes: readonly RouteOptions[]
  /** The asyncapi options, `info.title` and `info.version` filled in. */
  options: ResolvedAsyncApiOptions & { info: { title: string, version: string } }
  spikard: ResolvedSpikardOptions
  /** The app's shared schemas by `$id` (`app.getSchemas()`). */
  shared: Record<string, unknown>
  /** Where clients reach the app: `asyncapi.servers`, else the address it listens on; none before it listens. */
  servers: readonly ServerUrl[]
}

export function asyncapiDocument ({ routes, options, spikard, shared, servers: urls }: DocumentInput): Json {
  const schemas = schemaComponents(shared)
  const auth = security(spikard)
  const { servers: serverObjects, ws, http } = servers(urls)
  const channels = record()
  const operations = record()
  const entries: Entry[] = []
  const channelIds = new Set<string>()
  const operationIds = new Set<string>()
  /** Channels whose route declares its operations (`config.asyncapi.operations`): filled in once the messages are named. */
  const declaredOps: Array<{ channel: string, operations: Array<[string, AsyncApiRouteOperation]> }> = []
  const refs = (ids: string[]) => ids.length === 0 ? {} : { servers: ids.map((id) => ({ $ref: `#/servers/${id}` })) }

  for (const route of channelRoutes(routes)) {
    const socket = websocketRoute(route as WebSocketRouteOptions)
    const stream = socket === undefined && spikard.sse !== false ? sseRoute(route as { sse?: unknown }) : undefined
    if (socket === undefined && stream === undefined) continue
    const schema = (route.schema ?? {}) as Json
    const declared = routeAsyncApi(route.config)
    const id = unique(declared.channel ?? channelId(route.url), channelIds)
    const { address, parameters } = channelAddress(route.url, schema.params)
    channels[id] = {
      address,
      messages: record(),
      ...(schema.summary === undefined ? {} : { summary: schema.summary }),
      ...(schema.description === undefined ? {} : { description: schema.description }),
      ...refs(socket !== undefined ? ws : http),
      ...(Object.keys(parameters).length === 0 ? {} : { parameters })
    }
    const schemes = auth.route(route, socket?.accessToken === true)
    const query = schema.querystring === undefined ? undefined : schemas.payload(schema.querystring)
    const common = {
      ...(schemes === undefined ? {} : { security: schemes.map((name) => ({ $ref: `#/components/securitySchemes/${name}` })) }),
      ...(Array.isArray(schema.tags) ? { tags: schema.tags.map((name: string) => ({ name })) } : {})
    }
    const ops = declared.operations === undefined ? undefined : Object.entries(declared.operations).map(([opId, op]): [string, AsyncApiRouteOperation] => [unique(opId, operationIds), op])
    /** The default operations, or (declared ones) the first that lists the message: the entry's operation, for naming. */
    const operation = (action: 'send' | 'receive', summary: string, extra: Json = {}) => {
      if (ops !== undefined) return ops.find(([, op]) => op.action === action)?.[0] ?? `${action}.${id}`
      const opId = unique(`${action}${id[0].toUpperCase()}${id.slice(1)}`, operationIds)
      operations[opId] = { action, channel: { $ref: `#/channels/${pointer(id)}` }, summary, ...common, ...extra, messages: [] }
      return opId
    }
    if (ops !== undefined) {
      const http = socket === undefined ? { bindings: { http: { method: 'GET', ...(query === undefined ? {} : { query }), bindingVersion: '0.3.0' } } } : {}
      for (const [opId, op] of ops) {
        operations[opId] = {
          action: op.action,
          channel: { $ref: `#/channels/${pointer(id)}` },
          ...(op.summary === undefined ? {} : { summary: op.summary }),
          ...common,
          ...(op.action === 'send' ? http : {}),
          messages: []
        }
      }
      declaredOps.push({ channel: id, operations: ops })
    }
    const names = declared.messages

    if (socket !== undefined) {
      channels[id].bindings = { ws: wsBinding(query, schema.headers === undefined ? undefined : schemas.payload(schema.headers), schemes !== undefined && socket.accessToken) }
      const receive = operation('receive', 'Messages the server receives from the client.')
      const send = operation('send', 'Messages the server sends to the client.')
      entries.push(...messages(id, receive, 'receive', socket.receive, schemas.payload, names?.receive))
      if (socket.binary) entries.push({ channel: id, operation: receive, key: 'binary', message: { name: 'binary', title: 'A binary frame', contentType: 'application/octet-stream', payload: { type: 'string', format: 'binary' } } })
      entries.push(...messages(id, send, 'send', socket.send, schemas.payload, names?.send))
      const closeOnInvalid = ((route.config as Json | undefined)?.websocket as Json | undefined)?.closeOnInvalid === true
      if (!closeOnInvalid) entries.push({ channel: id, operation: send, key: 'problem', message: PROBLEM_FRAME })
    } else {
      const send = operation('send', 'Events the server sends on the stream (Server-Sent Events).', {
        bindings: { http: { method: 'GET', ...(query === undefined ? {} : { query }), bindingVersion: '0.3.0' } }
      })
      entries.push(...messages(id, send, 'event', stream?.events, schemas.payload, names?.event))
    }
  }

  const components: Json = {}
  const declaredChannels = new Set(declaredOps.map((d) => d.channel))
  /** Each channel's message names: the name a route asked for, and the one it got. */
  const finalNames = new Map<string, Map<string, string>>()
  for (const { channel, operation, key, name, message } of nameMessages(entries)) {
    // A route that declares its operations has the messages they name (and the problem frame), no others.
    const listed = declaredOps.find((d) => d.channel === channel)?.operations.some(([, op]) => op.messages.includes(key) || op.reply?.includes(key))
    if (listed === false && message !== PROBLEM_FRAME) continue
    components.messages ??= record()
    components.messages[name] = message
    channels[channel].messages[name] = { $ref: `#/components/messages/${pointer(name)}` }
    if (!finalNames.has(channel)) finalNames.set(channel, new Map())
    finalNames.get(channel)?.set(key, name)
    if (!declaredChannels.has(channel)) operations[operation].messages.push({ $ref: `#/channels/${pointer(channel)}/messages/${pointer(name)}` })
  }
  for (const { channel, operations: ops } of declaredOps) {
    const ref = (wanted: string) => {
      const name = finalNames.get(channel)?.get(wanted)
      return name === undefined ? [] : [{ $ref: `#/channels/${pointer(channel)}/messages/${pointer(name)}` }]
    }
    for (const [opId, op] of ops) {
      operations[opId].messages = op.messages.flatMap(ref)
      if (op.reply !== undefined) operations[opId].reply = { channel: { $ref: `#/channels/${pointer(channel)}` }, messages: op.reply.flatMap(ref) }
    }
  }
  const shared_ = schemas.components()
  if (Object.keys(shared_).length > 0) components.schemas = shared_
  if (Object.keys(auth.schemes).length > 0) components.securitySchemes = auth.schemes

  return {
    asyncapi: '3.0.0',
    info: info(options),
    ...(Object.keys(serverObjects).length === 0 ? {} : { servers: serverObjects }),
    defaultContentType: 'application/json',
    channels,
    operations,
    ...(Object.keys(components).length === 0 ? {} : { components })
  }
}

/** An id in a `$ref`: a JSON pointer's segment (RFC 6901), as ids from a converted 2.x document (`/ticker/{symbol}`) need. */
function pointer (id: string): string {
  return id.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** The routes with a channel, once each: not hidden, and not the `/prefix/` twin Fastify adds for a prefix's `/` route. */
function channelRoutes (routes: readonly RouteOptions[]): RouteOptions[] {
  const keys = new Set(routes.map((r) => `${String(r.method)} ${r.url}`))
  return routes.filter((r) => inAsyncApi(r) && !(r.url.length > 1 && r.url.endsWith('/') && keys.has(`${String(r.method)} ${r.url.slice(0, -1)}`)))
}

/** The messages of one direction (`event`: an event stream's), as entries to name. */
function messages (channel: string, operation: string, direction: 'receive' | 'send' | 'event', declared: MessageSchemas | undefined, payload: (schema: unknown) => Json, names: Record<string, string> | undefined): Entry[] {
  const list = Object.entries(declared ?? { '*': undefined })
  return list.map(([key, schema]) => {
    const any = key === '*'
    const data = schema === undefined ? undefined : payload(schema)
    const event = direction === 'event'
    const message: Json = {
      name: any ? (event ? 'event' : 'message') : key,
      title: any ? (event ? 'Any event' : 'A message') : key
    }
    if (schema === undefined) {
      message.description = event
        ? 'The data of each event, not declared (the route has no `schema.sse`).'
        : `A JSON text frame, not validated (the route declares no \`config.websocket.${direction}\`).`
    }
    // An event's data is sent as it is when it is a string, as JSON otherwise.
    if (event && data?.type === 'string') message.contentType = 'text/plain'
    if (data !== undefined) message.payload = data
    const name = (names !== undefined && Object.hasOwn(names, key) ? names[key] : undefined) ?? (any ? `${channel}.${event ? 'event' : direction === 'receive' ? 'received' : 'sent'}` : key)
    return { channel, operation, key: name, message }
  })
}

/** The WebSocket channel binding: the route's query string (and the browser token when it accepts one) and headers. */
function wsBinding (query: Json | undefined, headers: Json | undefined, accessToken: boolean): Json {
  if (accessToken) {
    const token = { type: 'string', description: 'The route\'s credential, for browsers (instead of a header).' }
    query = { type: 'object', ...query, properties: { ...query?.properties, access_token: token } }
  }
  return {
    method: 'GET',
    ...(query === undefined ? {} : { query }),
    ...(headers === undefined ? {} : { headers }),
    bindingVersion: '0.1.0'
  }
}

function info (o: DocumentInput['options']): Json {
  const { license, ...rest } = o.info
  return {
    ...rest,
    // AsyncAPI 3.0's license has a name and a URL only.
    ...(license === undefined ? {} : { license: { name: license.name, ...(license.url === undefined ? {} : { url: license.url }) } }),
    ...(o.tags.length === 0 ? {} : { tags: o.tags }),
    ...(o.externalDocs === undefined ? {} : { externalDocs: o.externalDocs })
  }
}
