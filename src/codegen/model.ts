/**
 * What the generator needs from a parsed AsyncAPI 3.0 document: the channels spikard can
 * serve (WebSocket ones, and HTTP ones as Server-Sent Events), each with its messages and
 * operations from the server's side, and a warning for everything left out. Read through
 * @asyncapi/parser's models, so every `$ref` is already resolved (other files included).
 */
import type { AsyncAPIDocumentInterface, ChannelInterface, MessageInterface, OperationInterface } from '@asyncapi/parser'
import { identifier, typeName } from './names.js'
import { unique } from '../unique.js'

type Json = Record<string, any>

export interface MessageModel {
  /** Its key in the channel's messages. */
  name: string
  /** Its TypeScript type (`ChatSay`), unique in the generated files. */
  type: string
  /** Its schemas' constant (`chatSaySchema`). */
  schemaConst: string
  /** The payload's JSON Schema, plain JSON (the parser's `x-parser-*` annotations dropped). */
  schema: Json
  /** The payload's `type` const, when it has one. */
  tag: string | undefined
  summary: string | undefined
}

export interface OperationModel {
  id: string
  /** The handler's name: the operationId, made an identifier. */
  handler: string
  action: 'send' | 'receive'
  messages: string[]
  reply: string[] | undefined
  summary: string | undefined
}

export interface ChannelModel {
  id: string
  /** `client.<name>(params)`. */
  name: string
  /** Its types' prefix (`Chat`). */
  type: string
  kind: 'websocket' | 'sse'
  address: string
  /** The route's path: `/chat/{roomId}` is `/chat/:roomId`. */
  path: string
  params: string[]
  messages: MessageModel[]
  operations: OperationModel[]
  /** The messages the server receives (messages of receive operations, replies to send ones). */
  receives: string[]
  /** The messages the server sends. */
  sends: string[]
}

export interface Model {
  title: string
  version: string
  channels: ChannelModel[]
  warnings: string[]
}

const WEBSOCKET = new Set(['ws', 'wss'])
const HTTP = new Set(['http', 'https'])

export function buildModel (document: AsyncAPIDocumentInterface): Model {
  const warnings: string[] = []
  const channels: ChannelModel[] = []
  const types = new Set<string>(['JsonSchema'])
  const handlers = new Set<string>()
  const names = new Set<string>()
  const paths = new Map<string, string>()
  const operations = document.operations().all()

  for (const channel of document.channels().all()) {
    const id = channel.id()
    const kind = protocolOf(channel)
    if (kind !== 'websocket' && kind !== 'sse') {
      warnings.push(`channel "${id}" skipped: ${kind === undefined ? 'no server or binding says which protocol it uses' : `${kind.slice(1)} channels cannot be served (only WebSocket and HTTP/Server-Sent Events)`}`)
      continue
    }
    const address = channel.address()
    if (address === null || address === undefined) { warnings.push(`channel "${id}" skipped: it has no address`); continue }
    const path = routePath(address)
    const taken = paths.get(path)
    if (taken !== undefined) { warnings.push(`channel "${id}" skipped: channel "${taken}" has the same address (${address})`); continue }

    const own = operations.filter((op) => op.channels().all().some((c) => c.id() === id))
    const ops: OperationModel[] = []
    for (const op of own) {
      const action = op.action()
      if (kind === 'sse' && action === 'receive') { warnings.push(`operation "${op.id() ?? ''}" skipped: the server cannot receive on an event stream (channel "${id}")`); continue }
      const messageNames = messagesOf(op, channel)
      const reply = op.reply()
      const replyNames = reply === undefined ? undefined : reply.messages().all().map((m) => m.id())
      if (kind === 'sse' && replyNames !== undefined && replyNames.length > 0) warnings.push(`operation "${op.id() ?? ''}": its reply is left out (an event stream has no way back)`)
      const opId = op.id() as string
      ops.push({
        id: opId,
        handler: unique(identifier(opId), handlers),
        action: action === 'receive' ? 'receive' : 'send',
        messages: messageNames,
        reply: kind === 'sse' ? undefined : replyNames,
        summary: op.summary() ?? undefined
      })
    }
    if (ops.length === 0) { warnings.push(`channel "${id}" skipped: no operation uses it`); continue }

    const receives = new Set<string>()
    const sends = new Set<string>()
    for (const op of ops) {
      for (const m of op.messages) (op.action === 'receive' ? receives : sends).add(m)
      for (const m of op.reply ?? []) (op.action === 'receive' ? sends : receives).add(m)
    }
    const channelType = typeName(id)
    const messages: MessageModel[] = []
    for (const message of channel.messages().all()) {
      const name = message.id()
      if (!receives.has(name) && !sends.has(name)) { warnings.push(`message "${name}" of channel "${id}" left out: no operation sends or receives it`); continue }
      messages.push(messageModel(message, name, channelType, types, (w) => warnings.push(`message "${name}" of channel "${id}": ${w}`)))
    }
    // Replies may name messages of another channel: they travel on this one's socket (an event stream has no replies).
    for (const op of kind === 'sse' ? [] : own) {
      for (const message of op.reply()?.messages().all() ?? []) {
        if (messages.some((m) => m.name === message.id())) continue
        messages.push(messageModel(message, message.id(), channelType, types, (w) => warnings.push(`message "${message.id()}": ${w}`)))
      }
    }
    paths.set(path, id)
    channels.push({
      id,
      name: unique(identifier(id), names),
      type: channelType,
      kind,
      address,
      path,
      params: [...address.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]),
      messages,
      operations: ops,
      receives: [...receives].filter((n) => messages.some((m) => m.name === n)),
      sends: [...sends].filter((n) => messages.some((m) => m.name === n))
    })
  }
  const info = document.info()
  return { title: info.title(), version: info.version(), channels, warnings }
}

/** `websocket`, `sse`, `!<protocol>` (one spikard cannot serve) or undefined (none said). */
function protocolOf (channel: ChannelInterface): 'websocket' | 'sse' | `!${string}` | undefined {
  const protocols = channel.servers().all().map((s) => s.protocol().toLowerCase())
  const bindings = channel.bindings().all().map((b) => b.protocol().toLowerCase())
  if (protocols.some((p) => WEBSOCKET.has(p)) || bindings.includes('ws')) return 'websocket'
  if (protocols.some((p) => HTTP.has(p)) || bindings.includes('http')) return 'sse'
  const other = [...new Set([...protocols, ...bindings])]
  return other.length === 0 ? undefined : `!${other.join(', ')}`
}

/** An operation's messages by name; all the channel's when it lists none. */
function messagesOf (op: OperationInterface, channel: ChannelInterface): string[] {
  const listed = (op.json() as Json).messages
  if (!Array.isArray(listed) || listed.length === 0) return channel.messages().all().map((m) => m.id())
  return op.messages().all().map((m) => m.id())
}

/** `/chat/{roomId}` is `/chat/:roomId`; an address is a path, so it starts with `/`. */
function routePath (address: string): string {
  const path = address.replace(/\{([^}]+)\}/g, (_, name: string) => `:${name}`)
  return path.startsWith('/') ? path : `/${path}`
}

function messageModel (message: MessageInterface, name: string, channelType: string, types: Set<string>, warn: (w: string) => void): MessageModel {
  const payload = message.payload()
  const schemaFormat = (message.json() as Json).payload?.schemaFormat as string | undefined
  let schema: Json = {}
  if (payload === undefined) warn('it has no payload; any JSON value is accepted')
  else if (schemaFormat !== undefined && !/^application\/(schema\+(json|yaml)|vnd\.aai\.asyncapi)/.test(schemaFormat)) warn(`its payload is in ${schemaFormat}, not JSON Schema; any JSON value is accepted`)
  else schema = plain(payload.json(), warn) as Json
  const tag = (schema.properties as Json | undefined)?.type?.const
  const type = unique(typeName(name), types, channelType)
  return {
    name,
    type,
    schemaConst: `${type[0].toLowerCase()}${type.slice(1)}Schema`,
    schema,
    tag: typeof tag === 'string' ? tag : undefined,
    summary: message.summary() ?? message.title() ?? undefined
  }
}

/** A copy without the parser's annotations; a schema that contains itself is cut where it loops (`{}`), with a warning. */
function plain (value: unknown, warn: (w: string) => void, seen: unknown[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => plain(v, warn, seen))
  if (value === null || typeof value !== 'object') return value
  if (seen.includes(value)) { warn('its schema refers to itself; the loop is accepted as any value'); return {} }
  const out: Json = {}
  for (const [key, item] of Object.entries(value)) {
    if (key.startsWith('x-parser-')) continue
    out[key] = plain(item, warn, [...seen, value])
  }
  return out
}
