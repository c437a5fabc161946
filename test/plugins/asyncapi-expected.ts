/**
 * What the AsyncAPI document must say of the routes of test/plugins/asyncapi.test.ts
 * (the chat and echo of asyncapi-helpers.ts, /ticks and /news/:topic), written out whole.
 */

type Json = Record<string, any>

const ref = (path: string): Json => ({ $ref: `#/${path}` })
const messageRefs = (names: string[]): Json => Object.fromEntries(names.map((n) => [n, ref(`components/messages/${n}`)]))

export const LINE = {
  type: 'object',
  required: ['from', 'text', 'at'],
  properties: { from: { type: 'string' }, text: { type: 'string' }, at: { format: 'date-time', type: 'string' } }
}

export function expectedChannels ({ accessToken }: { accessToken: boolean }): Json {
  return {
    chatByRoom: {
      address: '/chat/{room}',
      messages: messageRefs(['join', 'say', 'joined', 'said', 'problem']),
      summary: 'A chat room',
      parameters: { room: { description: 'The room\'s name.', examples: ['lobby'] } },
      bindings: {
        ws: {
          method: 'GET',
          query: {
            type: 'object',
            properties: {
              nick: { type: 'string' },
              ...(accessToken ? { access_token: { type: 'string', description: 'The route\'s credential, for browsers (instead of a header).' } } : {})
            }
          },
          bindingVersion: '0.1.0'
        }
      }
    },
    // closeOnInvalid: no problem frames.
    echo: {
      address: '/echo',
      messages: messageRefs(['echo.received', 'binary', 'echo.sent']),
      bindings: { ws: { method: 'GET', bindingVersion: '0.1.0' } }
    },
    ticks: { address: '/ticks', messages: messageRefs(['ticks.event']) },
    newsByTopic: {
      address: '/news/{topic}',
      messages: messageRefs(['headline', 'line']),
      description: 'Headlines of a topic.',
      parameters: { topic: {} }
    }
  }
}

export function expectedOperations ({ auth }: { auth: boolean }): Json {
  const security = (names: string[]) => auth ? { security: names.map((n) => ref(`components/securitySchemes/${n}`)) } : {}
  const chat = security(['bearerAuth', 'apiKey', 'apiKeyQuery', 'accessTokenProtocol', 'accessTokenQuery'])
  const operation = (action: string, channel: string, summary: string, messages: string[], extra: Json = {}) => ({
    action, channel: ref(`channels/${channel}`), summary, ...extra, messages: messages.map((m) => ref(`channels/${channel}/messages/${m}`))
  })
  const receives = 'Messages the server receives from the client.'
  const sends = 'Messages the server sends to the client.'
  const events = 'Events the server sends on the stream (Server-Sent Events).'
  return {
    receiveChatByRoom: operation('receive', 'chatByRoom', receives, ['join', 'say'], chat),
    sendChatByRoom: operation('send', 'chatByRoom', sends, ['joined', 'said', 'problem'], chat),
    receiveEcho: operation('receive', 'echo', receives, ['echo.received', 'binary']),
    sendEcho: operation('send', 'echo', sends, ['echo.sent']),
    sendTicks: operation('send', 'ticks', events, ['ticks.event'], { bindings: { http: { method: 'GET', bindingVersion: '0.3.0' } } }),
    sendNewsByTopic: operation('send', 'newsByTopic', events, ['headline', 'line'], {
      ...security(['bearerAuth', 'apiKey', 'apiKeyQuery']),
      tags: [{ name: 'news' }],
      bindings: { http: { method: 'GET', query: { type: 'object', properties: { since: { type: 'string' } } }, bindingVersion: '0.3.0' } }
    })
  }
}

const typed = (type: string, properties: Json = {}, required: string[] = []): Json => ({
  type: 'object',
  required: ['type', ...required],
  properties: { type: { const: type, type: 'string' }, ...properties }
})

export const expectedMessages: Json = {
  join: { name: 'join', title: 'join', payload: typed('join') },
  say: { name: 'say', title: 'say', payload: typed('say', { text: { minLength: 1, maxLength: 500, type: 'string' } }, ['text']) },
  joined: { name: 'joined', title: 'joined', payload: typed('joined', { room: { type: 'string' } }, ['room']) },
  said: { name: 'said', title: 'said', payload: typed('said', { line: ref('components/schemas/line') }, ['line']) },
  problem: {
    name: 'problem',
    title: 'Problem',
    summary: 'The answer to an invalid message (not JSON, not matching the schema, a binary frame the route refuses); the connection stays open.',
    payload: {
      type: 'object',
      required: ['type', 'title', 'status', 'detail'],
      properties: {
        type: { type: 'string', format: 'uri', description: 'What went wrong, as a URI (https://spikard.dev/errors/<slug>).' },
        title: { type: 'string' },
        status: { type: 'integer', minimum: 400, maximum: 599 },
        detail: { type: 'string', description: 'What was wrong with the message.' },
        errors: {
          type: 'array',
          description: 'For a message that does not match the schema: the offending fields (the first 10).',
          items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string', description: 'Where in the message, as a JSON pointer ("/" for the message itself).' }, message: { type: 'string' } } }
        }
      }
    }
  },
  'echo.received': { name: 'message', title: 'A message', payload: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } },
  binary: { name: 'binary', title: 'A binary frame', contentType: 'application/octet-stream', payload: { type: 'string', format: 'binary' } },
  'echo.sent': { name: 'message', title: 'A message', description: 'A JSON text frame, not validated (the route declares no `config.websocket.send`).' },
  'ticks.event': { name: 'event', title: 'Any event', payload: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } },
  headline: { name: 'headline', title: 'headline', contentType: 'text/plain', payload: { type: 'string' } },
  line: { name: 'line', title: 'line', payload: ref('components/schemas/line') }
}
