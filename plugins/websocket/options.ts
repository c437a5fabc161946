import { Type, type Static } from '@sinclair/typebox'
import { Duration, Size, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatBytes, formatDuration, type FeatureDefinition } from '../../src/feature.js'
import { websocketRoute, type WebSocketRouteOptions } from './messages.js'

/** An origin as browsers send it: scheme, host and port, no path; or `*` for any. */
const ORIGIN = '^(\\*|https?://[^/?#\\s]+)$'

export const WebSocketOptionsSchema = Type.Object({
  origins: Type.Optional(Type.Array(Type.String({ pattern: ORIGIN, expected: 'an origin such as "https://app.example.com" (scheme, host and port, no path), or "*"' }), {
    default: [],
    description: 'The browser origins (`Origin` header) allowed to open a WebSocket; others get a 403 problem. Empty: any origin, except that the same origin only is allowed whenever auth is on (against cross-site WebSocket hijacking). `["*"]`: any origin. Clients that send no `Origin` (not browsers) are not checked.'
  })),
  heartbeat: Type.Optional(Duration({
    default: '30s',
    minimum: 10,
    minimumText: '10ms',
    description: 'A ping is sent on every open socket this often; a socket that has not answered the previous one with a pong is terminated.'
  })),
  maxConnections: Type.Optional(Type.Integer({
    minimum: 1,
    default: 10_000,
    description: 'Open WebSockets per process, all WebSocket routes together (upgrades under way included); past it, an upgrade gets a 503 problem instead of its 101.'
  })),
  maxPayload: Type.Optional(Size({
    default: '1mb',
    minimum: 1,
    description: 'The largest message a client may send; a larger one closes the socket with 1009 (message too big).'
  })),
  maxBuffered: Type.Optional(Size({
    default: '4mb',
    minimum: 1,
    description: 'The most a socket may hold unsent (its `bufferedAmount`) when the server sends to it: a client that does not read past it is closed with 1013 (try again later), so memory stays bounded.'
  }))
}, { additionalProperties: false })

export type WebSocketOptions = Static<typeof WebSocketOptionsSchema>
export type ResolvedWebSocketOptions = Defaulted<typeof WebSocketOptionsSchema>
export const resolveWebSocketOptions = optionsResolver(WebSocketOptionsSchema, 'websocket')

export const websocketFeature = {
  plugin: async () => await import('./index.js'),
  schema: WebSocketOptionsSchema,
  summary: 'WebSocket routes (@fastify/websocket) with `websocket: true`: the upgrade checked like any request (auth, rate limit, origin, shutdown), validated JSON messages, heartbeats, rooms, 1001 at shutdown.',
  enabledByDefault: true,
  settings: (o) => `origins=${o.origins.length === 0 ? 'default' : o.origins.join(',')} heartbeat=${formatDuration(o.heartbeat)} maxConnections=${o.maxConnections} maxPayload=${formatBytes(o.maxPayload)} maxBuffered=${formatBytes(o.maxBuffered)}`,
  // The browser token (`access_token, <token>` in Sec-WebSocket-Protocol, or ?access_token=).
  secrets: () => ({ headers: ['sec-websocket-protocol'], query: ['access_token'] }),
  columns: [{
    title: 'WS',
    value: (route) => {
      try {
        const ws = websocketRoute(route as WebSocketRouteOptions)
        if (ws === undefined) return '-'
        return ['ws', ws.receive === undefined ? '' : `in:${Object.keys(ws.receive).join('|')}`, ws.accessToken ? 'token' : ''].filter((s) => s !== '').join(' ')
      } catch {
        return 'invalid'
      }
    }
  }]
} satisfies FeatureDefinition<typeof WebSocketOptionsSchema, ResolvedWebSocketOptions>
