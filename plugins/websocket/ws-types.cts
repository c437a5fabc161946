/**
 * `socket.sendJson` on the socket a WebSocket route's handler gets. @fastify/websocket
 * types that socket with ws's CommonJS declarations (@types/ws index.d.ts), which an ES
 * module's `declare module 'ws'` does not reach (it resolves to index.d.mts): this file,
 * being CommonJS, augments those.
 */
import type {} from 'ws'

declare module 'ws' {
  interface WebSocket {
    /**
     * Sends a value as a JSON text message (spikard): validated against the route's
     * `config.websocket.send` outside production (a WebSocketMessageError otherwise), counted,
     * and subject to `websocket.maxBuffered`. `socket.send` still sends anything as it is.
     */
    sendJson: (value: unknown) => void
  }
}
