/**
 * The WebSocket bench's messages (issue 18), one JSON Schema per `type`: what the clients
 * (bench/lib/ws-clients.ts) send, what every WebSocket bench server validates. A spikard
 * server declares them as its route's `config.websocket.receive`; ws-bare.ts compiles them
 * with Ajv.
 *
 * - `echo`: sent back as it is;
 * - `broadcast`: the server sends `{ type: 'broadcast', seq, at }` (at: ms since the epoch,
 *   sub-millisecond) to every open socket.
 */
export const WS_MESSAGES = {
  echo: {
    type: 'object',
    required: ['type', 'seq', 'text'],
    additionalProperties: false,
    properties: {
      type: { const: 'echo' },
      seq: { type: 'integer', minimum: 0 },
      text: { type: 'string', maxLength: 256 }
    }
  },
  broadcast: {
    type: 'object',
    required: ['type', 'seq'],
    additionalProperties: false,
    properties: {
      type: { const: 'broadcast' },
      seq: { type: 'integer', minimum: 0 }
    }
  }
} as const

/** The echo's text: 64 bytes, so a message is about 100 bytes of JSON. */
export const ECHO_TEXT = 'spikard websocket bench echo payload, 64 bytes of text: 0123456.'
