/**
 * The demo's routes: a plain Fastify plugin, loaded by `spikard start` from spikard.config.yaml.
 * Each route declares what it takes and answers; spikard documents the rest (auth, limits,
 * timeouts, problems) at /openapi.json, /docs and /redoc.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { ndjson, requestContext, type TaskContext } from '../src/index.js'

const Item = Type.Object({
  name: Type.String({ minLength: 1, description: 'What the item is called.' }),
  price: Type.Number({ minimum: 0, description: 'In euros.' })
}, { $id: 'Item', additionalProperties: false })

// The chat's messages (/chat/:room): what a client sends, and what the server sends back, each
// pinned by its `type`. spikard validates both and lists each in the AsyncAPI document (/asyncapi).
const Name = Type.String({ minLength: 1, maxLength: 32, pattern: '\\S', description: 'A display name, unique in the room.' })
const ChatIn = Type.Union([
  Type.Object({ type: Type.Literal('join'), name: Name }, { additionalProperties: false, description: 'Join the room under a name.' }),
  Type.Object({ type: Type.Literal('say'), text: Type.String({ minLength: 1, maxLength: 500, pattern: '\\S' }) }, { additionalProperties: false, description: 'Say something to the room (after joining).' }),
  Type.Object({ type: Type.Literal('leave') }, { additionalProperties: false, description: 'Leave the room; the socket stays open and may join again.' })
])
const ChatOut = Type.Union([
  Type.Object({ type: Type.Literal('welcome'), room: Type.String(), name: Type.String(), members: Type.Array(Type.String()) }, { additionalProperties: false, description: 'To the one who joined: the room and who is in it, themselves included.' }),
  Type.Object({ type: Type.Literal('joined'), room: Type.String(), name: Type.String() }, { additionalProperties: false, description: 'To the others in the room: someone joined.' }),
  Type.Object({ type: Type.Literal('said'), name: Type.String(), text: Type.String(), at: Type.String({ format: 'date-time' }) }, { additionalProperties: false, description: 'To everyone in the room, the speaker included, in the order the server received them.' }),
  Type.Object({ type: Type.Literal('left'), name: Type.String() }, { additionalProperties: false, description: 'To everyone in the room (the one leaving included, when they asked): someone left or disconnected.' }),
  Type.Object({ type: Type.Literal('refused'), detail: Type.String() }, { additionalProperties: false, description: 'A valid message the room cannot take: saying before joining, joining twice, a name already taken.' })
])
type ChatMessage = Static<typeof ChatIn>

export default async function routes (app: FastifyInstance): Promise<void> {
  app.addSchema(Item)

  // Public: every other route needs credentials, since the config turns auth on.
  app.get('/hello', {
    config: { auth: false },
    schema: {
      summary: 'Say hello',
      tags: ['demo'],
      response: { 200: { type: 'object', properties: { hello: { type: 'string' }, requestId: { type: 'string' } }, required: ['hello', 'requestId'] } }
    }
  }, async (request) => ({ hello: 'world', requestId: request.id }))

  // A JWT (see the README for minting a demo token), an API key, or a JWT with a role.
  app.get('/me', {
    config: { auth: 'jwt' },
    schema: {
      summary: 'Who the token says you are',
      tags: ['demo'],
      response: { 200: { type: 'object', properties: { identity: { type: 'object', additionalProperties: true }, claims: { type: 'object', additionalProperties: true } } } }
    }
  }, async (request) => ({ identity: request.identity, claims: request.user }))
  app.get('/reports', {
    config: { auth: 'apiKey' },
    schema: {
      summary: 'Reports, for API-key callers',
      tags: ['reports'],
      response: { 200: { type: 'object', properties: { caller: { type: 'string' }, reports: { type: 'array', items: { type: 'string' } } } } }
    }
  }, async (request) => ({ caller: request.identity?.id, reports: [] }))
  app.delete('/items/:id', {
    config: { auth: { claims: { role: 'admin' } } },
    schema: {
      summary: 'Delete an item (admins)',
      tags: ['items'],
      params: Type.Object({ id: Type.String({ description: 'The item\'s id.' }) }),
      response: { 204: { type: 'null', description: 'Deleted.' } }
    }
  }, async (_request, reply) => reply.code(204).send())

  app.post('/items', {
    config: { auth: false },
    bodyLimit: 16 * 1024,
    schema: {
      summary: 'Create an item',
      tags: ['items'],
      body: Type.Ref(Item),
      response: { 201: Type.Ref(Item) }
    }
  }, async (request, reply) => {
    requestContext.get('log')?.info({ item: request.body }, 'item created')
    return reply.code(201).send(request.body)
  })

  // A background task after the response: the receipt is "mailed" once the 202 has been sent;
  // its log line carries the request id (and the task's id and name).
  app.post('/orders', {
    config: { auth: false },
    schema: {
      summary: 'Place an order; the receipt is sent in the background',
      tags: ['items'],
      body: Type.Object({ item: Type.String({ minLength: 1 }), email: Type.String({ format: 'email' }) }, { additionalProperties: false }),
      response: { 202: Type.Object({ orderId: Type.String(), receiptTask: Type.String() }) }
    }
  }, async (request, reply) => {
    const { email } = request.body as { email: string }
    const orderId = `order-${Date.now().toString(36)}`
    const receiptTask = request.tasks.add(sendReceipt, orderId, email)
    return reply.code(202).send({ orderId, receiptTask })
  })

  // Newline-delimited JSON, one line per item as it is produced (try: curl -N localhost:8000/export).
  app.get('/export', {
    config: { auth: false },
    schema: { summary: 'Export the catalogue as ndjson, a line every 200 ms', tags: ['items'], querystring: Type.Object({ count: Type.Integer({ minimum: 1, maximum: 100, default: 10 }) }) }
  }, async (request) => ndjson((async function * () {
    const { count } = request.query as { count: number }
    for (let n = 1; n <= count; n++) {
      yield { n, name: `item ${n}`, price: n * 1.5 }
      await sleep(200, undefined, { signal: request.signal })
    }
  })()))

  // Server-Sent Events: a tick every second; index.html (the static mount) subscribes to it.
  app.get('/ticks', {
    // 'only': an event stream for any client (curl's Accept: */* too), not just those asking for one.
    sse: 'only',
    config: { auth: false },
    schema: { summary: 'A tick every second, as Server-Sent Events', tags: ['demo'], sse: Type.Object({ n: Type.Integer(), at: Type.String() }) }
  }, async (request, reply) => {
    let n = Number(reply.sse.lastEventId ?? 0)
    reply.sse.keepAlive()
    const timer = setInterval(() => {
      n += 1
      void reply.sse.send({ id: String(n), event: 'tick', data: { n, at: new Date().toISOString() } })
    }, 1000)
    reply.sse.onClose(() => clearInterval(timer))
  })

  // A chat over WebSockets; public/chat.html is its page. Public, as that page is: a browser
  // cannot set headers on a WebSocket and the page has no login to get a token from. (A route
  // that wants one sets config.websocket.accessToken: true, and its page opens
  // `new WebSocket(url, ['access_token', token])`.) Since the config turns auth on, spikard
  // lets only pages of this server's own origin open it (the Origin check, against cross-site
  // hijacking), and each upgrade counts against the rate limit.
  const chat = chatRooms(app)
  app.get('/chat/:room', {
    websocket: true,
    config: { auth: false, websocket: { receive: ChatIn, send: ChatOut } },
    schema: {
      summary: 'A chat room',
      description: 'Join under a name, then say things: everyone in the room, you included, gets each message in the order the server received it.',
      tags: ['chat'],
      params: Type.Object({ room: Type.String({ pattern: '^[a-z0-9-]{1,32}$', description: 'The room: up to 32 lower-case letters, digits and dashes.', examples: ['lobby'] }) })
    }
  }, (socket, request) => {
    chat(socket, (request.params as { room: string }).room, request.log)
  })

  app.get('/boom', { config: { auth: false }, schema: { summary: 'Fail on purpose: a 500 problem, the cause only in the log', tags: ['demo'] } }, async () => {
    throw new Error('database password=hunter2 rejected') // the client sees a generic 500, the log sees this
  })
}

/** The demo's background task: a stand-in for a mail API call, aborted with the task (timeout, cancel, shutdown). */
async function sendReceipt (ctx: TaskContext, orderId: string, email: string): Promise<void> {
  await sleep(100, undefined, { signal: ctx.signal })
  // The address stays out of the log: only its domain.
  ctx.log.info({ orderId, to: `…@${email.split('@')[1]}`, attempt: ctx.attempt }, 'receipt sent')
}

/** What the chat uses of the handler's socket, `sendJson` narrowed to the chat's messages (spikard validates them against ChatOut outside production). */
interface ChatSocket {
  readonly readyState: number
  readonly OPEN: number
  sendJson: (value: Static<typeof ChatOut>) => void
  on: ((event: 'message', listener: (data: Buffer) => Promise<void>) => unknown) & ((event: 'close', listener: () => void) => unknown)
}

/**
 * The chat: who is in each room, by name, on top of app.spikard.rooms, which delivers to the
 * room's sockets. Returns what a new connection runs.
 */
function chatRooms (app: FastifyInstance) {
  const names = new Map<string, Map<ChatSocket, string>>()
  const { rooms } = app.spikard

  return function connect (socket: ChatSocket, room: string, log: FastifyInstance['log']): void {
    const members = (): Map<ChatSocket, string> => {
      let found = names.get(room)
      if (found === undefined) names.set(room, found = new Map())
      return found
    }
    /** Out of the room's names; true if the socket was in it. */
    const forget = (): string | undefined => {
      const name = names.get(room)?.get(socket)
      names.get(room)?.delete(socket)
      if (names.get(room)?.size === 0) names.delete(room)
      return name
    }

    // Already validated against ChatIn: the listener only sees messages that match it. A
    // rejection (a delivery that failed) closes this socket with 1011, logged.
    socket.on('message', async (data) => {
      const message = JSON.parse(String(data)) as ChatMessage
      const name = names.get(room)?.get(socket)
      if (message.type === 'join') {
        const wanted = message.name.trim()
        if (name !== undefined) return socket.sendJson({ type: 'refused', detail: `You are already in the room, as ${name}.` })
        if ([...members().values()].includes(wanted)) return socket.sendJson({ type: 'refused', detail: `The name ${wanted} is taken in this room.` })
        // Named before anything is awaited: a `say` sent right behind the `join` finds the name.
        // The others are told first (in process, publish delivers at once), then the newcomer
        // joins and gets the list, themselves included.
        members().set(socket, wanted)
        const told = rooms.publish(room, { type: 'joined', room, name: wanted })
        rooms.join(room, socket)
        socket.sendJson({ type: 'welcome', room, name: wanted, members: [...members().values()] })
        await told
      } else if (name === undefined) {
        socket.sendJson({ type: 'refused', detail: 'Join the room first: {"type":"join","name":"..."}.' })
      } else if (message.type === 'say') {
        await rooms.publish(room, { type: 'said', name, text: message.text, at: new Date().toISOString() })
      } else {
        // The one leaving gets the `left` too: their acknowledgement. Out of the room before
        // anything is awaited, as for `join`.
        const told = rooms.publish(room, { type: 'left', name })
        rooms.leave(room, socket)
        forget()
        await told
      }
    })
    // spikard has already taken a closed socket out of its rooms: the others hear it left.
    socket.on('close', () => {
      const name = forget()
      if (name !== undefined) rooms.publish(room, { type: 'left', name }).catch((error: unknown) => { log.error({ err: error }, 'chat: could not tell the room') })
    })
  }
}
