import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'

export const TimeoutOptionsSchema = Type.Object({
  handler: Type.Optional(Duration({
    default: '30s',
    description: 'Time a request may take from arrival to the start of its response; a route overrides it with Fastify\'s `handlerTimeout` route option. `0` turns it off.'
  })),
  status: Type.Optional(Type.Union([Type.Literal(408), Type.Literal(503), Type.Literal(504)], {
    default: 408,
    description: 'Status of the problem sent when the handler timeout fires.'
  })),
  headers: Type.Optional(Duration({
    default: '10s',
    description: 'Time a client has to send the request headers (Node\'s `headersTimeout`); a slow client gets 408.'
  })),
  request: Type.Optional(Duration({
    default: '60s',
    description: 'Time a client has to send the whole request, body included (Node\'s `requestTimeout`); a slow client gets 408.'
  })),
  keepAlive: Type.Optional(Duration({
    default: '72s',
    description: 'How long an idle keep-alive connection stays open (Node\'s `keepAliveTimeout`). Keep it above your load balancer\'s idle timeout.'
  }))
}, { additionalProperties: false })

export type TimeoutOptions = Static<typeof TimeoutOptionsSchema>
export type ResolvedTimeoutOptions = Defaulted<typeof TimeoutOptionsSchema>
export const resolveTimeoutOptions = optionsResolver(TimeoutOptionsSchema, 'timeout')
