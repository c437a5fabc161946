/**
 * The AsyncAPI document: valid AsyncAPI 3.0 (@asyncapi/parser, no diagnostic of severity
 * error) for an app with WebSocket routes (test/plugins/asyncapi-helpers.ts: a chat with
 * discriminated messages, a path parameter, a shared schema and the browser token; an echo
 * with one schema and binary frames) and event streams (one schema; events by name), with
 * auth on and off; its channels, operations and messages, as whole objects; servers from
 * the options or the listening address; message names that clash; hidden routes; serving
 * (ETag, 304, YAML, paths, off, production, asyncapi.auth); info.
 */
import { describe, test } from 'node:test'
import { Type } from '@sinclair/typebox'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Parser, DiagnosticSeverity } from '@asyncapi/parser'
import { parse as parseYaml } from 'yaml'
import Fastify, { type FastifyInstance } from 'fastify'
import { build, listen } from '../helpers.js'
import spikard from '../../src/spikard.js'
import { SpikardConfigError } from '../../src/errors.js'
import type { CreateServerConfig } from '../../src/server.js'
import { websocket, websocketRoutes } from './asyncapi-helpers.js'
import { expectedChannels, expectedMessages, expectedOperations, LINE } from './asyncapi-expected.js'

type Json = Record<string, any>

const PKG = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { name: string, version: string }
const API_KEY = 'asyncapi-test-key-0123456789'
const AUTH = { jwt: { secret: 'a-secret-of-at-least-32-bytes-for-hs256!' }, apiKey: { keys: [{ name: 'client', key: API_KEY }], query: 'api_key' } }

/** The WebSocket routes, an event stream with one schema (public) and one with events by name (a shared schema among them). */
async function routes (app: FastifyInstance): Promise<void> {
  await websocketRoutes(app)
  app.get('/ticks', { sse: true, config: { auth: false }, schema: { sse: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] } } }, async () => {})
  app.get('/news/:topic', {
    sse: 'only',
    schema: {
      description: 'Headlines of a topic.',
      tags: ['news'],
      querystring: { type: 'object', properties: { since: { type: 'string' } } },
      sse: { events: { headline: { type: 'string' }, line: { $ref: 'https://example.com/line.json#' } } }
    }
  }, async () => {})
}

async function appWith (t: { after: (fn: () => Promise<void>) => void }, config: Partial<CreateServerConfig>, setup: (app: FastifyInstance) => Promise<void> = routes): Promise<FastifyInstance> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, ...config }, setup)
  t.after(() => app.close())
  return app
}

async function documentOf (app: FastifyInstance, url = '/asyncapi.json'): Promise<Json> {
  const response = await app.inject({ url, headers: { 'x-api-key': API_KEY } })
  assert.equal(response.statusCode, 200, response.body)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  return JSON.parse(response.body)
}

/** The parser's diagnostics of severity error (none for a valid document). */
async function errorsOf (document: Json): Promise<string[]> {
  const diagnostics = await new Parser().validate(JSON.stringify(document))
  return diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)
}

describe('the document', () => {
  test('the parser refuses what is not valid AsyncAPI 3.0 (so passing means something)', async (t) => {
    const document = await documentOf(await appWith(t, { auth: AUTH }))
    document.operations.sendTicks.channel = { $ref: '#/channels/nowhere' }
    document.operations.receiveEcho.action = 'subscribe'
    const errors = await errorsOf(document)
    assert.ok(errors.some((e) => e.includes('operations.sendTicks.channel')), errors.join('\n'))
    assert.ok(errors.some((e) => e.endsWith('at operations.receiveEcho.action')), errors.join('\n'))
  })

  test('with auth: valid, and its channels, operations and messages are the routes\' exactly', async (t) => {
    const document = await documentOf(await appWith(t, { auth: AUTH }))
    assert.deepEqual(await errorsOf(document), [])
    assert.equal(document.asyncapi, '3.0.0')
    assert.equal(document.defaultContentType, 'application/json')
    assert.deepEqual(document.channels, expectedChannels({ accessToken: true }))
    assert.deepEqual(document.operations, expectedOperations({ auth: true }))
    assert.deepEqual(document.components.messages, expectedMessages)
    assert.deepEqual(document.components.schemas, { line: LINE })
    assert.deepEqual(document.components.securitySchemes, {
      bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT signed with HS256, in `Authorization: Bearer <token>`.' },
      apiKey: { type: 'httpApiKey', in: 'header', name: 'x-api-key', description: 'An API key in the `x-api-key` header.' },
      apiKeyQuery: { type: 'httpApiKey', in: 'query', name: 'api_key', description: 'An API key in the `api_key` query parameter (for clients that cannot set headers).' },
      accessTokenProtocol: { type: 'httpApiKey', in: 'header', name: 'Sec-WebSocket-Protocol', description: 'For browsers, which cannot set headers: the route\'s credential as the two subprotocols `access_token, <token>` (the handshake answers with `access_token` alone).' },
      accessTokenQuery: { type: 'httpApiKey', in: 'query', name: 'access_token', description: 'For browsers, which cannot set headers: the route\'s credential in the `access_token` query parameter.' }
    })
    // Not listening, no asyncapi.servers: no servers.
    assert.equal(document.servers, undefined)
  })

  test('without auth: valid, no security anywhere, no browser token in the chat\'s query', async (t) => {
    const document = await documentOf(await appWith(t, {}))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(document.channels, expectedChannels({ accessToken: false }))
    assert.deepEqual(document.operations, expectedOperations({ auth: false }))
    assert.deepEqual(document.components, { messages: expectedMessages, schemas: { line: LINE } })
  })

  test('the parser reads back each channel\'s address, each operation\'s messages by name', async (t) => {
    const { document, diagnostics } = await new Parser().parse(JSON.stringify(await documentOf(await appWith(t, { auth: AUTH }))))
    assert.ok(document !== undefined, diagnostics.map((d) => d.message).join('\n'))
    assert.deepEqual(document.channels().all().map((c) => [c.id(), c.address()]), [
      ['chatByRoom', '/chat/{room}'], ['echo', '/echo'], ['ticks', '/ticks'], ['newsByTopic', '/news/{topic}']
    ])
    assert.deepEqual(document.operations().all().map((o) => [o.id(), o.action(), o.messages().all().map((m) => m.name())]), [
      ['receiveChatByRoom', 'receive', ['join', 'say']],
      ['sendChatByRoom', 'send', ['joined', 'said', 'problem']],
      ['receiveEcho', 'receive', ['message', 'binary']],
      ['sendEcho', 'send', ['message']],
      ['sendTicks', 'send', ['event']],
      ['sendNewsByTopic', 'send', ['headline', 'line']]
    ])
    // The shared schema, dereferenced by the parser, in the said message and the line event.
    const said = document.messages().all().find((m) => m.id() === 'said')
    assert.deepEqual(said?.payload()?.properties()?.line.required(), ['from', 'text', 'at'])
  })

  test('two routes giving one message name different schemas: each qualified by its channel; the same schema is one message', async (t) => {
    const app = await appWith(t, {}, async (app) => {
      const ping = { type: 'object', properties: { type: { const: 'ping' } }, required: ['type'] }
      const joinA = { type: 'object', properties: { type: { const: 'join' }, room: { type: 'string' } } }
      const joinB = { type: 'object', properties: { type: { const: 'join' }, team: { type: 'integer' } } }
      websocket(app, '/a', { config: { websocket: { receive: { oneOf: [ping, joinA] }, send: { oneOf: [ping] }, closeOnInvalid: true } } })
      websocket(app, '/b', { config: { websocket: { receive: { oneOf: [ping, joinB] }, closeOnInvalid: true } } })
    })
    const document = await documentOf(app)
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(Object.keys(document.components.messages), ['ping', 'a.join', 'b.join', 'b.sent'])
    assert.deepEqual(document.operations.receiveA.messages, [{ $ref: '#/channels/a/messages/ping' }, { $ref: '#/channels/a/messages/a.join' }])
    assert.deepEqual(document.operations.sendA.messages, [{ $ref: '#/channels/a/messages/ping' }])
    assert.deepEqual(document.operations.receiveB.messages, [{ $ref: '#/channels/b/messages/ping' }, { $ref: '#/channels/b/messages/b.join' }])
    assert.equal(document.components.messages['a.join'].name, 'join')
  })

  test('messages typed "__proto__" and "constructor" are messages like any other: in their channel, operation and components, with their own fields of those names', async (t) => {
    // A computed key: `__proto__:` in an object literal would set its prototype.
    const PROTO = '__proto__'
    const app = await appWith(t, {}, async (app) => {
      const odd = { oneOf: ['__proto__', 'constructor'].map((type) => ({ type: 'object', properties: { type: { const: type }, [PROTO]: { type: 'string' } }, required: ['type'] })) }
      websocket(app, '/odd', { config: { websocket: { receive: odd, closeOnInvalid: true } } })
      // Names given for some messages: the others are not looked up on Object.prototype.
      websocket(app, '/named', { config: { websocket: { receive: odd, closeOnInvalid: true }, asyncapi: { channel: '__proto__', messages: { receive: { constructor: 'ctor' } } } } })
    })
    // Not given to @asyncapi/parser: it reads a `__proto__` key as a prototype too, and then
    // reports the document's other keys as misplaced.
    const document = await documentOf(app)
    const ref = (name: string) => ({ $ref: `#/components/messages/${name}` })
    assert.deepEqual(document.channels.odd.messages, { [PROTO]: ref(PROTO), constructor: ref('constructor'), 'odd.sent': ref('odd.sent') })
    assert.deepEqual(Object.keys(document.channels), ['odd', '__proto__'])
    assert.deepEqual(document.channels[PROTO].messages, { [PROTO]: ref(PROTO), ctor: ref('ctor'), '__proto__.sent': ref('__proto__.sent') })
    assert.deepEqual(document.operations.receiveOdd.messages, [{ $ref: '#/channels/odd/messages/__proto__' }, { $ref: '#/channels/odd/messages/constructor' }])
    assert.deepEqual(Object.keys(document.components.messages), ['__proto__', 'constructor', 'odd.sent', 'ctor', '__proto__.sent'])
    assert.deepEqual(document.components.messages[PROTO], {
      name: '__proto__', title: '__proto__', payload: { type: 'object', properties: { type: { const: '__proto__' }, [PROTO]: { type: 'string' } }, required: ['type'] }
    })
    // The same in YAML, and in app.asyncapi().
    assert.deepEqual(parseYaml((await app.inject('/asyncapi.yaml')).body), document)
    assert.deepEqual(JSON.parse(JSON.stringify(app.asyncapi())), document)
  })

  test('config.asyncapi false, and schema.hide on an event stream, leave a route out; the document\'s own routes are out of the OpenAPI document', async (t) => {
    const app = await appWith(t, {}, async (app) => {
      websocket(app, '/hidden', { config: { asyncapi: false } })
      app.get('/secret', { sse: true, schema: { hide: true } }, async () => {})
      websocket(app, '/shown')
    })
    const document = await documentOf(app)
    assert.deepEqual(Object.keys(document.channels), ['shown'])
    const openapi = await documentOf(app, '/openapi.json')
    assert.deepEqual(Object.keys(openapi.paths).filter((p) => p.startsWith('/asyncapi')), [])
  })

  test('a route with @fastify/websocket\'s wsHandler (HTTP and WebSocket on one path) is a channel, its messages from config.websocket', async (t) => {
    const document = await documentOf(await appWith(t, {}, async (app) => {
      app.route({
        method: 'GET',
        url: '/live',
        config: { websocket: { receive: Type.Object({ text: Type.String() }) } },
        handler: async () => ({ plain: true }),
        wsHandler: () => {}
      } as never)
    }))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(Object.keys(document.channels), ['live'])
    assert.equal(document.channels.live.address, '/live')
    assert.deepEqual(Object.keys(document.operations).sort(), ['receiveLive', 'sendLive'])
  })

  test('an app without WebSocket or event-stream routes: a valid document with no channels', async (t) => {
    const document = await documentOf(await appWith(t, {}, async (app) => { app.get('/plain', async () => ({})) }))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual({ ...document, info: undefined }, { asyncapi: '3.0.0', info: undefined, defaultContentType: 'application/json', channels: {}, operations: {} })
  })
})

describe('servers and info', () => {
  test('asyncapi.servers: each URL a WebSocket and an HTTP server; WebSocket channels on the first, event streams on the second', async (t) => {
    const servers = [{ url: 'https://api.example.com/v1', name: 'production', description: 'Live' }, { url: 'http://localhost:8000' }]
    const document = await documentOf(await appWith(t, { asyncapi: { servers } }))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(document.servers, {
      'production-wss': { host: 'api.example.com', protocol: 'wss', pathname: '/v1', description: 'Live' },
      'production-https': { host: 'api.example.com', protocol: 'https', pathname: '/v1', description: 'Live' },
      'server2-ws': { host: 'localhost:8000', protocol: 'ws' },
      'server2-http': { host: 'localhost:8000', protocol: 'http' }
    })
    assert.deepEqual(document.channels.chatByRoom.servers, [{ $ref: '#/servers/production-wss' }, { $ref: '#/servers/server2-ws' }])
    assert.deepEqual(document.channels.ticks.servers, [{ $ref: '#/servers/production-https' }, { $ref: '#/servers/server2-http' }])
  })

  test('without asyncapi.servers, once the app listens: where it listens, ws and http', async (t) => {
    const app = await appWith(t, {})
    const { port } = await listen(app)
    const document = await (await fetch(`http://127.0.0.1:${port}/asyncapi.json`)).json() as Json
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(document.servers, { ws: { host: `127.0.0.1:${port}`, protocol: 'ws' }, http: { host: `127.0.0.1:${port}`, protocol: 'http' } })
    assert.deepEqual(document.channels.echo.servers, [{ $ref: '#/servers/ws' }])
    assert.deepEqual(document.channels.newsByTopic.servers, [{ $ref: '#/servers/http' }])
    assert.deepEqual(parseYaml(await (await fetch(`http://127.0.0.1:${port}/asyncapi.yaml`)).text()), document)
  })

  test('a server URL that is not http(s) or ws(s) is refused at ready(), naming the key', async () => {
    await assert.rejects(build({ server: { logger: { level: 'silent' } }, asyncapi: { servers: [{ url: 'mqtt://broker' }] } }), /asyncapi\.servers\[0\]\.url: expected an http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/ URL/)
  })

  test('info and externalDocs URLs AsyncAPI 3.0 refuses (a relative termsOfService) are refused at ready(), naming the key', async () => {
    await assert.rejects(build({ server: { logger: { level: 'silent' } }, openapi: false, asyncapi: { info: { termsOfService: '/terms' }, externalDocs: { url: 'the wiki' } } }),
      (error: Error) => {
        assert.ok(error instanceof SpikardConfigError, error.message)
        assert.deepEqual(error.problems, [
          'asyncapi.info.termsOfService: expected an absolute URL (https://...), found "/terms"',
          'asyncapi.externalDocs.url: expected an absolute URL (https://...), found "the wiki"'
        ])
        return true
      })
  })

  test('title and version default to the package.json nearest the working directory', async (t) => {
    const document = await documentOf(await appWith(t, {}))
    assert.deepEqual(document.info, { title: PKG.name, version: PKG.version })
  })

  test('info fields, tags and externalDocs pass through (a license keeps its name and URL: AsyncAPI 3.0 has no identifier)', async (t) => {
    const info = {
      title: 'Chat',
      version: '2.0.0',
      description: 'Rooms and news.',
      termsOfService: 'https://example.com/terms',
      contact: { name: 'Team', url: 'https://example.com', email: 'team@example.com' },
      license: { name: 'MIT', identifier: 'MIT', url: 'https://opensource.org/license/mit' }
    }
    const document = await documentOf(await appWith(t, { asyncapi: { info, tags: [{ name: 'news', description: 'Headlines' }], externalDocs: { url: 'https://example.com/docs' } } }))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(document.info, {
      ...info,
      license: { name: 'MIT', url: 'https://opensource.org/license/mit' },
      tags: [{ name: 'news', description: 'Headlines' }],
      externalDocs: { url: 'https://example.com/docs' }
    })
  })
})

describe('serving', () => {
  test('/asyncapi.yaml parses to the same object as /asyncapi.json; both generated once, the same bytes on every request', async (t) => {
    const app = await appWith(t, {})
    const json = await app.inject('/asyncapi.json')
    const yaml = await app.inject('/asyncapi.yaml')
    assert.equal(yaml.statusCode, 200)
    assert.equal(yaml.headers['content-type'], 'application/yaml; charset=utf-8')
    assert.deepEqual(parseYaml(yaml.body), JSON.parse(json.body))
    assert.equal((await app.inject('/asyncapi.json')).body, json.body)
    assert.deepEqual(app.asyncapi(), JSON.parse(json.body))
  })

  test('ETag and Cache-Control; If-None-Match with it gives 304 and no body; gzip precompressed', async (t) => {
    const app = await appWith(t, {})
    const first = await app.inject('/asyncapi.json')
    const etag = first.headers.etag as string
    assert.match(etag, /^"[\w-]{32}"$/)
    assert.equal(first.headers['cache-control'], 'no-cache')
    const again = await app.inject({ url: '/asyncapi.json', headers: { 'if-none-match': etag } })
    assert.equal(again.statusCode, 304)
    assert.equal(again.body, '')
    const gzip = await app.inject({ url: '/asyncapi.json', headers: { 'accept-encoding': 'gzip' } })
    assert.equal(gzip.headers['content-encoding'], 'gzip')
    assert.notEqual(gzip.headers.etag, etag)
    assert.equal((await app.inject({ url: '/asyncapi.yaml', headers: { 'if-none-match': etag } })).statusCode, 200)
  })

  test('the viewer: its page with a CSP, the bundle, the styles and its script from the package; the document beside them', async (t) => {
    const app = await appWith(t, {})
    const page = await app.inject('/asyncapi')
    assert.equal(page.statusCode, 200)
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(page.headers['content-security-policy'], "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
    const assets = [...page.body.matchAll(/(?:src|href|data-document)="([^"]+)"/g)].map((m) => m[1])
    assert.deepEqual(assets, ['/asyncapi/default.min.css', '/asyncapi/asyncapi.json', '/asyncapi/asyncapi.standalone.js', '/asyncapi/viewer.js'])
    for (const [url, type] of [['/asyncapi/default.min.css', 'text/css'], ['/asyncapi/asyncapi.standalone.js', 'text/javascript'], ['/asyncapi/viewer.js', 'text/javascript'], ['/asyncapi/asyncapi.json', 'application/json']]) {
      const response = await app.inject(url)
      assert.equal(response.statusCode, 200, url)
      assert.equal(response.headers['content-type'], `${type}; charset=utf-8`, url)
    }
    assert.equal((await app.inject('/asyncapi/asyncapi.json')).body, (await app.inject('/asyncapi.json')).body)
    assert.match((await app.inject('/asyncapi/asyncapi.standalone.js')).body, /AsyncApiStandalone/)
  })

  test('custom paths; the defaults are then not found; each path false removes that route only', async (t) => {
    const app = await appWith(t, { asyncapi: { json: '/events/doc.json', yaml: false, docs: '/events/viewer' } })
    assert.equal((await app.inject('/events/doc.json')).statusCode, 200)
    assert.equal((await app.inject('/events/viewer')).statusCode, 200)
    assert.match((await app.inject('/events/viewer')).body, /data-document="\/events\/viewer\/asyncapi.json"/)
    for (const url of ['/asyncapi.json', '/asyncapi.yaml', '/asyncapi', '/events/doc.yaml']) assert.equal((await app.inject(url)).statusCode, 404, url)
    const noViewer = await appWith(t, { asyncapi: { docs: false } })
    assert.equal((await noViewer.inject('/asyncapi')).statusCode, 404)
    assert.equal((await noViewer.inject('/asyncapi.json')).statusCode, 200)
  })

  test('asyncapi: false turns it all off', async (t) => {
    const app = await appWith(t, { asyncapi: false })
    for (const url of ['/asyncapi.json', '/asyncapi.yaml', '/asyncapi']) assert.equal((await app.inject(url)).statusCode, 404, url)
    assert.equal(app.spikard.options.asyncapi, false)
  })

  test('NODE_ENV=production: off unless the key is set', async (t) => {
    const before = process.env.NODE_ENV
    process.env.NODE_ENV = 'production'
    t.after(() => { if (before === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = before })
    const off = await appWith(t, {})
    assert.equal((await off.inject('/asyncapi.json')).statusCode, 404)
    const on = await appWith(t, { asyncapi: true })
    assert.equal((await on.inject('/asyncapi.json')).statusCode, 200)
    const options = await appWith(t, { asyncapi: { docs: false } })
    assert.equal((await options.inject('/asyncapi.yaml')).statusCode, 200)
  })

  test('public by default with auth on; asyncapi.auth: true needs credentials for the document and the viewer', async (t) => {
    const open = await appWith(t, { auth: AUTH })
    assert.equal((await open.inject('/asyncapi.json')).statusCode, 200)
    assert.equal((await open.inject('/asyncapi')).statusCode, 200)
    const closed = await appWith(t, { auth: AUTH, asyncapi: { auth: true } })
    for (const url of ['/asyncapi.json', '/asyncapi.yaml', '/asyncapi', '/asyncapi/asyncapi.json']) {
      assert.equal((await closed.inject(url)).statusCode, 401, url)
      assert.equal((await closed.inject({ url, headers: { 'x-api-key': API_KEY } })).statusCode, 200, url)
    }
  })

  test('asyncapi.auth: true with auth off fails at ready(), naming asyncapi.auth', async () => {
    await assert.rejects(build({ server: { logger: { level: 'silent' } }, asyncapi: { auth: true } }), /asyncapi\.auth: true protects the document with the app's auth, and the auth feature is off/)
  })

  test('a route of yours at a path of the document or the viewer fails at startup naming the option, registered before spikard or after', async () => {
    const refused = (option: string, path: string, route: string) => (error: unknown): true => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, [`${option}: ${path} is a route of spikard's, and ${route} is registered there too; move that route, or set ${option} to another path (or false)`])
      return true
    }
    const before = Fastify({ logger: false })
    before.get('/asyncapi.yaml', async () => 'mine')
    before.register(spikard, { shutdown: { signals: false } })
    await assert.rejects(async () => { await before.ready() }, refused('asyncapi.yaml', '/asyncapi.yaml', 'your route GET /asyncapi.yaml (registered before spikard)'))
    await before.close()
    const after = Fastify({ logger: false })
    after.register(spikard, { shutdown: { signals: false }, asyncapi: { docs: '/events' } })
    after.register(async (child) => { child.get('/viewer.js', async () => 'mine') }, { prefix: '/events' })
    await assert.rejects(async () => { await after.ready() }, refused('asyncapi.docs', '/events/viewer.js', 'your route GET /events/viewer.js'))
    await after.close()
  })

  test('spikard in a prefixed plugin: a route of yours at the unprefixed paths is not in the way', async () => {
    const app = Fastify({ logger: false })
    try {
      app.get('/asyncapi.json', async () => 'mine, at the root')
      app.get('/asyncapi', async () => 'mine, at the root')
      app.register(async (api) => { await api.register(spikard, { shutdown: { signals: false } }) }, { prefix: '/api' })
      await app.ready()
      assert.equal((await app.inject({ url: '/asyncapi.json' })).body, 'mine, at the root')
      assert.equal((await app.inject({ url: '/asyncapi' })).body, 'mine, at the root')
      assert.equal((await app.inject({ url: '/api/asyncapi.json' })).json().asyncapi, '3.0.0')
    } finally {
      await app.close()
    }
  })
})

describe('config.asyncapi: a route names its channel, messages and operations', () => {
  const SAY = { type: 'object', required: ['type', 'text'], properties: { type: { const: 'say' }, text: { type: 'string' } } }
  const PING = { type: 'object', required: ['type'], properties: { type: { const: 'ping' } } }
  const PONG = { type: 'object', required: ['type'], properties: { type: { const: 'pong' } } }
  const NOTE = { type: 'object', properties: { text: { type: 'string' } } }
  async function named (app: FastifyInstance): Promise<void> {
    app.get('/rooms/:roomId', {
      websocket: true,
      config: {
        websocket: { receive: { oneOf: [SAY, PING] }, send: PONG },
        asyncapi: {
          channel: 'room',
          messages: { receive: { say: 'chatSay', ping: 'ping' }, send: { '*': 'pong' } },
          operations: {
            sendMessage: { action: 'receive', messages: ['chatSay'] },
            ping: { action: 'receive', messages: ['ping'], reply: ['pong'], summary: 'Are you there?' }
          }
        }
      }
    }, (socket) => { socket.close() })
    app.get('/notes', { sse: true, schema: { sse: { events: { note: NOTE } } }, config: { asyncapi: { channel: 'notes', operations: { streamNotes: { action: 'send', messages: ['note'] } } } } }, async () => {})
  }

  test('the ids are the route\'s, the payloads its schemas, the reply on its channel; the document stays valid', async (t) => {
    const document = await documentOf(await appWith(t, {}, named))
    assert.deepEqual(await errorsOf(document), [])
    assert.deepEqual(Object.keys(document.channels), ['room', 'notes'])
    assert.equal(document.channels.room.address, '/rooms/{roomId}')
    assert.deepEqual(Object.keys(document.channels.room.messages), ['chatSay', 'ping', 'pong', 'problem'])
    assert.deepEqual(document.operations, {
      sendMessage: { action: 'receive', channel: { $ref: '#/channels/room' }, messages: [{ $ref: '#/channels/room/messages/chatSay' }] },
      ping: {
        action: 'receive',
        channel: { $ref: '#/channels/room' },
        summary: 'Are you there?',
        messages: [{ $ref: '#/channels/room/messages/ping' }],
        reply: { channel: { $ref: '#/channels/room' }, messages: [{ $ref: '#/channels/room/messages/pong' }] }
      },
      streamNotes: {
        action: 'send',
        channel: { $ref: '#/channels/notes' },
        bindings: { http: { method: 'GET', bindingVersion: '0.3.0' } },
        messages: [{ $ref: '#/channels/notes/messages/note' }]
      }
    })
    assert.deepEqual(document.components.messages.chatSay, { name: 'say', title: 'say', payload: SAY })
    assert.deepEqual(document.components.messages.pong.payload, PONG)
    assert.deepEqual(document.components.messages.note, { name: 'note', title: 'note', payload: NOTE })
  })
})
