/**
 * client.ts: a typed client for the generated server, for browsers and Node, with no
 * dependency: messages are checked with the validator messages.ts carries.
 *
 * - WebSocket channels use the global `WebSocket` (browsers, Node 22+); on Node 20 pass
 *   one: `createClient({ baseUrl, WebSocket })` with `import { WebSocket } from 'ws'`.
 *   A message is sent once the socket is open (queued until then, and across reconnections).
 * - SSE channels read the stream with `fetch` (browsers, Node 18+), so they can send
 *   headers, and resume with `Last-Event-ID` after a reconnection.
 * - Both reconnect with exponential backoff and jitter (`reconnect`), until `close()`.
 * - `send` throws a ContractError for a payload that breaks the contract; a received message
 *   that matches none of the channel's messages goes to `onError` instead of a handler, as
 *   does a WebSocket error frame (a problem object).
 */
import type { ChannelModel, Model } from './model.js'
import { GENERATED, messagesImports } from './emit.js'
import { key } from './names.js'

const RUNTIME = `export interface ReconnectOptions {
  /** The first wait, in ms (default 250). */
  initialDelay?: number
  /** The longest wait, in ms (default 10000). */
  maxDelay?: number
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number
}

/** The part of the WebSocket API the client uses: the browser's, Node 22's global, or the ws package's. */
export interface WebSocketLike {
  readonly readyState: number
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  onopen: ((event: any) => void) | null
  onmessage: ((event: { data: unknown }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: any) => void) | null
}
export type WebSocketConstructor = new (url: string) => WebSocketLike

export interface ClientOptions {
  /** Where the server is: \`http://localhost:8000\` (WebSocket channels use ws: or wss: on it). */
  baseUrl: string
  /** The WebSocket class: the global one by default; on Node 20, ws's (\`import { WebSocket } from 'ws'\`). */
  WebSocket?: WebSocketConstructor
  /** The fetch SSE channels use (the global one by default). */
  fetch?: typeof fetch
  /** Headers for SSE requests (a browser's WebSocket cannot send any). */
  headers?: Record<string, string>
  /** Reconnection with exponential backoff and jitter; false: none. */
  reconnect?: ReconnectOptions | false
}

/** A message that breaks the contract: refused before it is sent, or received and not delivered. */
export class ContractError extends Error {
  readonly errors: string[]
  readonly payload: unknown
  // Fields declared apart from the constructor: Node's type stripping runs this file as it is.
  constructor (message: string, errors: string[], payload: unknown) {
    super(message)
    this.name = 'ContractError'
    this.errors = errors
    this.payload = payload
  }
}

/** A problem object the server answered with (a WebSocket error frame). */
export interface Problem { type: string, title: string, status: number, detail?: string, errors?: Array<{ path: string, message: string }> }

export interface Channel<Sends, Receives> {
  /** Sends a message (queued until the socket is open); throws a ContractError when the payload does not match the message's schema. */
  send: <Name extends keyof Sends & string>(name: Name, payload: Sends[Name]) => void
  /** Calls \`handler\` with each received message of that name; returns a function that stops. */
  on: <Name extends keyof Receives & string>(name: Name, handler: (payload: Receives[Name]) => void) => () => void
  /** Error frames from the server, received messages that break the contract, connection errors. */
  onError: (handler: (error: ContractError | Problem | Error) => void) => () => void
  /** Resolves once the channel is open (the first time). */
  readonly opened: Promise<void>
  /** Closes the channel for good (no reconnection). */
  close: () => void
}

export interface SseChannel<Receives> extends Omit<Channel<Record<never, never>, Receives>, 'send'> {
  /** The id of the last event received (sent as Last-Event-ID when reconnecting). */
  readonly lastEventId: string | undefined
}

type Handlers = Map<string, Set<(payload: any) => void>>

function delay (options: ReconnectOptions | false | undefined, attempt: number): number | undefined {
  if (options === false) return undefined
  const { initialDelay = 250, maxDelay = 10_000, maxAttempts = Infinity } = options ?? {}
  if (attempt > maxAttempts) return undefined
  const base = Math.min(maxDelay, initialDelay * 2 ** (attempt - 1))
  return base / 2 + Math.random() * base / 2
}

function url (base: string, path: string, params: Record<string, string>, protocol: 'ws' | 'http'): string {
  const filled = path.replace(/\\{([^}]+)\\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''))
  const u = new URL(base.replace(/\\/$/, '') + filled)
  if (protocol === 'ws') u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:'
  return u.toString()
}

function isProblem (value: unknown): value is Problem {
  const v = value as Problem | null
  return typeof v === 'object' && v !== null && typeof v.type === 'string' && typeof v.title === 'string' && typeof v.status === 'number'
}

function emitter () {
  const handlers: Handlers = new Map()
  const errors = new Set<(error: ContractError | Problem | Error) => void>()
  return {
    handlers,
    on (name: string, handler: (payload: any) => void): () => void {
      if (!handlers.has(name)) handlers.set(name, new Set())
      handlers.get(name)?.add(handler)
      return () => { handlers.get(name)?.delete(handler) }
    },
    onError (handler: (error: ContractError | Problem | Error) => void): () => void {
      errors.add(handler)
      return () => { errors.delete(handler) }
    },
    emit (name: string, payload: unknown): void { for (const h of handlers.get(name) ?? []) h(payload) },
    fail (error: ContractError | Problem | Error): void { for (const h of errors) h(error) }
  }
}

function openWebSocket<Sends, Receives> (options: ClientOptions, address: string, params: Record<string, string>, sends: Readonly<Record<string, JsonSchema>>, receives: Readonly<Record<string, JsonSchema>>): Channel<Sends, Receives> {
  const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
  if (WebSocketClass === undefined) throw new Error('no WebSocket here (Node 20): pass one, createClient({ baseUrl, WebSocket }) with WebSocket from the ws package')
  const target = url(options.baseUrl, address, params, 'ws')
  const events = emitter()
  const queue: string[] = []
  const names = Object.keys(receives)
  let socket: WebSocketLike | undefined
  let closed = false
  let attempt = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  let opened!: () => void
  const openedPromise = new Promise<void>((resolve) => { opened = resolve })
  const connect = (): void => {
    const ws = new WebSocketClass(target)
    socket = ws
    ws.onopen = () => {
      attempt = 0
      opened()
      while (queue.length > 0 && ws.readyState === 1) ws.send(queue.shift() as string)
    }
    ws.onmessage = (event) => {
      let payload: unknown
      try {
        payload = JSON.parse(String(event.data))
      } catch {
        events.fail(new ContractError('a received message is not JSON', ['/: not JSON'], event.data))
        return
      }
      const name = identify(receives, names, payload)
      if (name !== undefined) events.emit(name, payload)
      else if (isProblem(payload)) events.fail(payload)
      else events.fail(new ContractError('a received message matches none of the channel\\'s messages', names.map((n) => \`\${n}: \${validate(receives[n], payload).join('; ')}\`), payload))
    }
    ws.onerror = () => { events.fail(new Error(\`WebSocket error on \${target}\`)) }
    ws.onclose = () => {
      if (closed) return
      const wait = delay(options.reconnect, ++attempt)
      if (wait !== undefined) timer = setTimeout(connect, wait)
    }
  }
  connect()
  return {
    send (name, payload) {
      const schema = sends[name]
      const errors = schema === undefined ? [\`\${name}: not a message this channel sends\`] : validate(schema, payload)
      if (errors.length > 0) throw new ContractError(\`message "\${name}" breaks the contract: \${errors.join('; ')}\`, errors, payload)
      const text = JSON.stringify(payload)
      if (socket !== undefined && socket.readyState === 1) socket.send(text)
      else queue.push(text)
    },
    on: events.on,
    onError: events.onError,
    opened: openedPromise,
    close () {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      socket?.close(1000)
    }
  }
}

function openEventStream<Receives> (options: ClientOptions, address: string, params: Record<string, string>, receives: Readonly<Record<string, JsonSchema>>, text: ReadonlySet<string>): SseChannel<Receives> {
  const fetchFn = options.fetch ?? globalThis.fetch
  const target = url(options.baseUrl, address, params, 'http')
  const events = emitter()
  const abort = new AbortController()
  let lastEventId: string | undefined
  let retry: number | undefined
  let attempt = 0
  let opened!: () => void
  const openedPromise = new Promise<void>((resolve) => { opened = resolve })
  const dispatch = (name: string, data: string): void => {
    let payload: unknown = data
    if (!text.has(name)) {
      try {
        payload = JSON.parse(data)
      } catch {
        events.fail(new ContractError(\`event "\${name}": its data is not JSON\`, ['/: not JSON'], data))
        return
      }
    }
    const schema = receives[name]
    const errors = schema === undefined ? [\`\${name}: not an event of this channel\`] : validate(schema, payload)
    if (errors.length > 0) events.fail(new ContractError(\`event "\${name}" breaks the contract: \${errors.join('; ')}\`, errors, payload))
    else events.emit(name, payload)
  }
  const connect = async (): Promise<void> => {
    const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers }
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
    const response = await fetchFn(target, { headers, signal: abort.signal })
    if (!response.ok || response.body === null) throw new Error(\`GET \${target}: \${response.status}\`)
    attempt = 0
    opened()
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    let buffer = ''
    let name = ''
    let data: string[] = []
    let id: string | undefined
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += value
      const lines = buffer.split(/\\r\\n|\\r|\\n/)
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        if (line === '') {
          if (id !== undefined) lastEventId = id
          if (data.length > 0) dispatch(name === '' ? 'message' : name, data.join('\\n'))
          name = ''; data = []; id = undefined
          continue
        }
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon === -1 ? line : line.slice(0, colon)
        const content = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') name = content
        else if (field === 'data') data.push(content)
        else if (field === 'id' && !content.includes('\\0')) id = content
        else if (field === 'retry' && /^\\d+$/.test(content)) retry = Number(content)
      }
    }
  }
  const loop = async (): Promise<void> => {
    while (!abort.signal.aborted) {
      try {
        await connect()
      } catch (error) {
        if (abort.signal.aborted) return
        events.fail(error as Error)
      }
      if (abort.signal.aborted) return
      const wait = retry ?? delay(options.reconnect, ++attempt)
      if (wait === undefined) return
      await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }
  loop().catch((error: unknown) => { events.fail(error as Error) })
  return {
    on: events.on,
    onError: events.onError,
    opened: openedPromise,
    get lastEventId () { return lastEventId },
    close () { abort.abort() }
  }
}
`

function channelMethod (c: ChannelModel): string {
  const params = c.params.length === 0 ? '' : `params: ${c.type}Params`
  const paramsValue = c.params.length === 0 ? '{}' : 'params as unknown as Record<string, string>'
  const doc = `  /** Opens channel "${c.id}" (${c.kind === 'sse' ? 'Server-Sent Events' : 'WebSocket'}, ${c.address}). */\n`
  if (c.kind === 'sse') {
    const text = c.messages.filter((m) => m.schema.type === 'string' && c.sends.includes(m.name)).map((m) => JSON.stringify(m.name))
    return `${doc}  ${key(c.name)}: (${params}): SseChannel<${c.type}Sent> => openEventStream<${c.type}Sent>(options, ${JSON.stringify(c.address)}, ${paramsValue}, ${c.name}Sent, new Set([${text.join(', ')}]))`
  }
  return `${doc}  ${key(c.name)}: (${params}): Channel<${c.type}Received, ${c.type}Sent> => openWebSocket<${c.type}Received, ${c.type}Sent>(options, ${JSON.stringify(c.address)}, ${paramsValue}, ${c.name}Received, ${c.name}Sent)`
}

export function clientFile (model: Model): string {
  const values = new Set(['identify', 'validate'])
  const types = new Set(['JsonSchema'])
  for (const c of model.channels) {
    values.add(`${c.name}Sent`)
    types.add(`${c.type}Sent`)
    if (c.params.length > 0) types.add(`${c.type}Params`)
    if (c.kind === 'websocket') { values.add(`${c.name}Received`); types.add(`${c.type}Received`) }
  }
  return [
    GENERATED,
    '/**',
    ` * ${model.title} ${model.version}: a typed client, \`createClient({ baseUrl })\`, one method per channel.`,
    ' * Browsers and Node 22+ as it is; on Node 20 pass `WebSocket` from the ws package.',
    ' * Messages that break the contract are refused (send throws a ContractError) and received',
    ' * ones that do go to onError.',
    ' */',
    ...messagesImports(values, types),
    '',
    RUNTIME,
    'export function createClient (options: ClientOptions) {',
    '  return {',
    model.channels.map(channelMethod).join(',\n'),
    '  }',
    '}',
    '',
    'export type Client = ReturnType<typeof createClient>',
    ''
  ].join('\n')
}
