/**
 * The JSON Schema of a test fixture, as `runFixtures` validates it. It lives in the
 * package (a module, so it ships in dist/ with nothing to copy); the project keeps a copy
 * at testing_data/fixture.schema.json for editors, and a test keeps the two equal.
 */

const headers = { type: 'object', additionalProperties: { type: 'string' } } as const
const url = { type: 'string', pattern: '^/' } as const

/** Bytes: text, or base64 for binary. */
const chunk = {
  oneOf: [
    { type: 'string' },
    { type: 'object', additionalProperties: false, required: ['base64'], properties: { base64: { type: 'string', description: 'Bytes, base64-encoded.' } } }
  ]
} as const

const exchangeCommon = {
  name: { type: 'string' },
  afterTasks: { const: true, description: 'Wait until no background task is queued or running (client.tasks.drain()) before this exchange.' }
} as const

export const fixtureSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://spikard.dev/schemas/fixture.json',
  title: 'spikard test fixture',
  description: 'One file, one test: spikard options and the routes to register (or neither: the fixture runs against the app of the client runFixtures is given), then exchanges in order: HTTP requests (through inject()), streamed bodies, event streams and WebSocket sessions (over a real socket), each with what is expected. Expected strings starting with $ are markers: $any-uuid, $any-string, $any-number, $absent, $present, $header:<name> (equal to that response header).',
  type: 'object',
  additionalProperties: false,
  required: ['description', 'requests'],
  properties: {
    $schema: { type: 'string' },
    description: { type: 'string', minLength: 1 },
    options: { type: 'object', description: 'A spikard config (server settings and feature keys), as in spikard.config.json; relative paths in it (a static mount\'s root) are relative to the fixture\'s directory. With options or routes, the fixture gets an app of its own.' },
    routes: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['method', 'url', 'handler'],
        properties: {
          method: { enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] },
          url,
          options: { type: 'object', description: 'Fastify route options that are plain JSON: schema, bodyLimit, sse, config (config.websocket: receive, send, binary, closeOnInvalid), ...' },
          handler: { $ref: '#/definitions/handler' }
        }
      }
    },
    requests: {
      type: 'array',
      minItems: 1,
      description: 'The exchanges, in order: each has exactly one of request (HTTP), stream, sse or ws.',
      items: {
        type: 'object',
        properties: { request: {}, stream: {}, sse: {}, ws: {}, expect: {}, steps: {}, ...exchangeCommon },
        oneOf: [
          { required: ['request'] },
          { required: ['stream'] },
          { required: ['sse'] },
          { required: ['ws'] }
        ],
        allOf: [
          { if: { required: ['request'] }, then: { $ref: '#/definitions/http' } },
          { if: { required: ['stream'] }, then: { $ref: '#/definitions/stream' } },
          { if: { required: ['sse'] }, then: { $ref: '#/definitions/sse' } },
          { if: { required: ['ws'] }, then: { $ref: '#/definitions/ws' } }
        ]
      }
    }
  },
  definitions: {
    http: {
      description: 'An HTTP request through inject(), and the response expected.',
      type: 'object',
      additionalProperties: false,
      required: ['request', 'expect'],
      properties: {
        ...exchangeCommon,
        request: {
          type: 'object',
          additionalProperties: false,
          required: ['method', 'url'],
          properties: {
            method: { type: 'string' },
            url: { type: 'string' },
            headers,
            body: { description: 'Sent as JSON (content-type application/json unless headers say otherwise).' },
            payload: { type: 'string', description: 'Sent verbatim.' }
          }
        },
        expect: {
          type: 'object',
          additionalProperties: false,
          required: ['status'],
          properties: {
            status: { type: 'integer', minimum: 100, maximum: 599 },
            headers: { $ref: '#/definitions/expectedHeaders' },
            body: { description: 'The whole body, parsed as JSON when the response is JSON (for application/x-ndjson, an array of its lines\' values), text otherwise; values may be markers.' },
            bodyBase64: { type: 'string', description: 'The whole body\'s bytes, base64-encoded (binary responses).' },
            select: {
              type: 'object',
              minProperties: 1,
              propertyNames: { pattern: '^(/.*)?$' },
              description: 'Parts of the body: each key a JSON Pointer (RFC 6901, e.g. "/paths/~1users~1{id}/get/responses/429"; "~1" is "/", "~0" is "~"), each value what is expected there, compared as `body` is (exact keys; values may be markers; $absent where nothing is).'
            }
          }
        }
      }
    },
    stream: {
      description: 'A GET over a real socket (client.stream), its body read as it streams.',
      type: 'object',
      additionalProperties: false,
      required: ['stream', 'expect'],
      properties: {
        ...exchangeCommon,
        stream: { type: 'object', additionalProperties: false, required: ['url'], properties: { url, headers } },
        expect: {
          type: 'object',
          additionalProperties: false,
          required: ['status', 'chunks'],
          properties: {
            status: { type: 'integer', minimum: 100, maximum: 599 },
            headers: { $ref: '#/definitions/expectedHeaders' },
            chunks: { type: 'array', items: chunk, description: 'The body, chunk after chunk, in order. The bytes are compared; where one chunk ends is not (TCP may merge or split them).' }
          }
        }
      }
    },
    sse: {
      description: 'An event stream over a real socket (client.sse), parsed as EventSource parses it.',
      type: 'object',
      additionalProperties: false,
      required: ['sse', 'expect'],
      properties: {
        ...exchangeCommon,
        sse: { type: 'object', additionalProperties: false, required: ['url'], properties: { url, headers } },
        expect: {
          type: 'object',
          additionalProperties: false,
          required: ['events'],
          properties: {
            headers: { $ref: '#/definitions/expectedHeaders' },
            events: {
              type: 'array',
              description: 'The first events, in this order.',
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['data'],
                properties: {
                  event: { type: 'string', description: 'The event\'s name; `message` when it had none. Not compared when absent.' },
                  data: { description: 'The data lines joined with LF: a string compares the text; any other value compares the text parsed as JSON (values may be markers).' },
                  id: { type: 'string', description: 'The last event id (EventSource\'s lastEventId). Not compared when absent.' },
                  retry: { type: 'integer', minimum: 0 }
                }
              }
            },
            ended: { type: 'boolean', description: 'true: the server ends the stream after these events; false: it is still open after them (nothing else is read).' }
          }
        }
      }
    },
    ws: {
      description: 'A WebSocket session over a real socket (client.ws): the upgrade, then steps in order. A socket still open after the last step is closed with 1000.',
      type: 'object',
      additionalProperties: false,
      required: ['ws', 'steps'],
      properties: {
        ...exchangeCommon,
        ws: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: { url, headers, protocols: { type: 'array', items: { type: 'string' } } }
        },
        expect: {
          type: 'object',
          additionalProperties: false,
          description: 'The upgrade\'s response.',
          properties: { status: { const: 101 }, headers: { $ref: '#/definitions/expectedHeaders' } }
        },
        steps: { type: 'array', minItems: 1, items: { $ref: '#/definitions/wsStep' } }
      }
    },
    wsStep: {
      description: 'send: a text frame (a string as it is, any other value as JSON); sendBinary: a binary frame (base64); receive: the next message (JSON parsed, else text) matches; receiveBinary: the next message is binary, these bytes (base64); ping: a ping with this payload, answered by a pong with the same payload; close: the client closes (code, reason) and the server answers with this code; closed: the server closes the socket with this code (and reason).',
      type: 'object',
      minProperties: 1,
      maxProperties: 1,
      additionalProperties: false,
      properties: {
        send: {},
        sendBinary: { type: 'string' },
        receive: {},
        receiveBinary: { type: 'string' },
        ping: { type: 'string' },
        close: { $ref: '#/definitions/closeFrame' },
        closed: { $ref: '#/definitions/closeFrame' }
      }
    },
    closeFrame: {
      type: 'object',
      additionalProperties: false,
      properties: { code: { type: 'integer', minimum: 1000, maximum: 4999 }, reason: { type: 'string' } }
    },
    expectedHeaders: { type: 'object', additionalProperties: { type: 'string' }, description: 'A subset of the response headers; values may be markers.' },
    handler: {
      description: 'What the handler does: reply (status, headers, body), throw an error, sleep then act, stream chunks (a Readable, an async generator or a web ReadableStream), send values with ndjson(), echo the request, record in background tasks and reply with what they recorded, send Server-Sent Events, or answer WebSocket messages.',
      type: 'object',
      additionalProperties: false,
      properties: {
        sleep: { type: 'integer', minimum: 0, description: 'Milliseconds to wait first.' },
        reply: {
          type: 'object',
          additionalProperties: false,
          properties: { status: { type: 'integer' }, headers, body: {} }
        },
        throw: {
          type: 'object',
          additionalProperties: false,
          required: ['message'],
          properties: {
            message: { type: 'string' },
            status: { type: 'integer', description: 'Sets error.statusCode; absent throws a plain Error.' }
          }
        },
        stream: {
          type: 'object',
          additionalProperties: false,
          required: ['chunks'],
          properties: {
            chunks: { type: 'array', items: chunk },
            contentType: { type: 'string' },
            headers,
            source: { enum: ['readable', 'generator', 'web'], description: 'What the handler returns: a Node Readable (default), an async generator, or a web ReadableStream.' }
          }
        },
        ndjson: { type: 'array', description: 'Return ndjson() of these values, yielded by an async generator.' },
        echo: { const: true, description: 'Reply with { method, params, query, body }.' },
        task: {
          type: 'object',
          additionalProperties: false,
          description: 'Also add background tasks (request.tasks.add) that each record the request body, after sleep ms.',
          properties: {
            count: { type: 'integer', minimum: 1, description: 'How many; 1 by default.' },
            sleep: { type: 'integer', minimum: 0 }
          }
        },
        recorded: { const: true, description: 'Reply with the bodies the background tasks recorded so far, in order.' },
        sse: {
          type: 'array',
          description: 'A Server-Sent Events route (give the route options { "sse": true }): these steps, then the stream ends. send: reply.sse.send(event); sleep: wait (ms); lastEventId: send { event: "resumed", data: { lastEventId } } with the request\'s Last-Event-ID header (null when absent).',
          items: {
            type: 'object',
            minProperties: 1,
            maxProperties: 1,
            additionalProperties: false,
            properties: {
              send: { type: 'object' },
              sleep: { type: 'integer', minimum: 0 },
              lastEventId: { const: true }
            }
          }
        },
        websocket: {
          type: 'object',
          additionalProperties: false,
          description: 'A WebSocket route (websocket: true is set on the route; config.websocket comes from the route options). open: messages sent once the socket opens; on: for a JSON message whose "type" is the key, send this value, where a string "$message" is the message and "$message/<pointer>" a part of it; echo: send back any other message as it came (text or binary); close: close with this code once a message whose "type" is the key arrives.',
          properties: {
            open: { type: 'array' },
            on: { type: 'object' },
            echo: { const: true },
            close: { type: 'object', additionalProperties: { $ref: '#/definitions/closeFrame' } }
          }
        }
      },
      oneOf: [
        { required: ['reply'] },
        { required: ['throw'] },
        { required: ['stream'] },
        { required: ['ndjson'] },
        { required: ['echo'] },
        { required: ['recorded'] },
        { required: ['sse'] },
        { required: ['websocket'] }
      ]
    }
  }
} as const
