/**
 * The WebSocket routes the AsyncAPI tests document: a chat with a path parameter, a query
 * string, messages discriminated by their `type` (one referencing a shared schema) and the
 * browser token; an echo with one schema, binary frames and no auth. Only their declaration
 * matters to the document: the handlers close at once. Fastify keeps the `websocket` route
 * option as it is whether or not @fastify/websocket is registered, so these routes are
 * declared the same way with or without spikard's websocket feature.
 */
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'

/** A chat line, shared (`app.addSchema`) and referenced by the `said` message. */
export const Line = Type.Object({
  from: Type.String(),
  text: Type.String(),
  at: Type.String({ format: 'date-time' })
}, { $id: 'https://example.com/line.json' })

export const ChatIn = Type.Union([
  Type.Object({ type: Type.Literal('join') }),
  Type.Object({ type: Type.Literal('say'), text: Type.String({ minLength: 1, maxLength: 500 }) })
])

export const ChatOut = Type.Union([
  Type.Object({ type: Type.Literal('joined'), room: Type.String() }),
  Type.Object({ type: Type.Literal('said'), line: Type.Ref(Line) })
])

export const EchoIn = Type.Object({ text: Type.String() })

/**
 * A WebSocket route at `url`. Typed loosely: `websocket: true` is a route option only once
 * @fastify/websocket's types are loaded, and its handler then takes the socket.
 */
export function websocket (app: FastifyInstance, url: string, options: Record<string, unknown> = {}): void {
  app.route({ method: 'GET', url, websocket: true, ...options, handler: (socket: { close?: () => void }) => { socket.close?.() } } as never)
}

/** Declares the chat and the echo on `app` (and the shared schema they reference). */
export async function websocketRoutes (app: FastifyInstance): Promise<void> {
  app.addSchema(Line)
  websocket(app, '/chat/:room', {
    schema: {
      summary: 'A chat room',
      params: Type.Object({ room: Type.String({ description: 'The room\'s name.', examples: ['lobby'] }) }),
      querystring: Type.Object({ nick: Type.Optional(Type.String()) })
    },
    config: { websocket: { receive: ChatIn, send: ChatOut, accessToken: true } }
  })
  websocket(app, '/echo', { config: { auth: false, websocket: { receive: EchoIn, binary: true, closeOnInvalid: true } } })
}
