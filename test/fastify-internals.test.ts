/**
 * What src/fastify-internals.ts relies on in Fastify's private state. These fail when a
 * Fastify release renames or reshapes it: then spikard falls back to the public API
 * (slower: request.routeOptions builds an object per read, fastify/fastify#6141) or warns
 * (request.signal stays Fastify's, fastify/fastify#6725), and this is where to look.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import dns from 'node:dns'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { adoptErrorHandler, answers503OnClosing, internals, keepsConnection, ownRequestIdGenerator, provideRequestSignal, requestIdFor, responseUnderWay, routeConfig, routesInRouter, secondaryServers, setDefaultNotFoundHandler } from '../src/fastify-internals.js'
import spikard from '../src/spikard.js'
import { UUID } from './helpers.js'

async function requestOf (handler: (request: FastifyRequest) => unknown = () => {}): Promise<FastifyRequest> {
  const app = Fastify()
  let seen: FastifyRequest | undefined
  app.get('/x', { config: { mark: 'x' } as never }, async (request) => { seen = request; handler(request); return 'ok' })
  await app.inject('/x')
  await app.close()
  assert.ok(seen !== undefined)
  return seen
}

test('a request holds its route context under Fastify\'s `fastify.context` symbol, whose config is routeOptions.config', async () => {
  const request = await requestOf()
  const symbol = Object.getOwnPropertySymbols(request).find((s) => s.description === internals.ROUTE_CONTEXT)
  assert.ok(symbol !== undefined, `no ${internals.ROUTE_CONTEXT} symbol on the request: Fastify changed it`)
  const context = (request as unknown as Record<symbol, { config?: object }>)[symbol]
  // The very object the public getter returns, which features write their decisions on.
  assert.equal(context.config, request.routeOptions.config)
  assert.equal(routeConfig(request), request.routeOptions.config)
  assert.equal((routeConfig(request) as { mark?: string }).mark, 'x')
})

test('request.signal reads its controller from Fastify\'s `fastify.request.signal` slot, created on first read', async () => {
  const request = await requestOf((request) => { void request.signal })
  assert.ok(Object.getOwnPropertySymbols(request).some((s) => s.description === internals.REQUEST_SIGNAL),
    `no ${internals.REQUEST_SIGNAL} symbol on the request: Fastify changed it`)
  const controller = new AbortController()
  const fresh = await requestOf((request) => { assert.equal(provideRequestSignal(request, controller), true) })
  assert.equal(fresh.signal, controller.signal)
})

test('requestIdFor: the id the app\'s generator gives a raw request (spikard\'s: a client\'s well-formed one, else a UUID); a UUID when there is none', async () => {
  const app = Fastify()
  await app.register(spikard, {})
  await app.ready()
  const raw = (id?: string): IncomingMessage => ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as unknown as IncomingMessage
  assert.equal(requestIdFor(app, raw('mine-1')), 'mine-1')
  assert.match(requestIdFor(app, raw('bad id')), UUID)
  assert.match(requestIdFor({} as FastifyInstance, raw('mine-1')), UUID)
  await app.close()
})

test('an instance points to the one that holds its prefix\'s not-found handler (`fastify.404LogLevelInstance`), whose `fastify.canSetNotFoundHandler` turns false once one is set', async () => {
  const app = Fastify()
  assertNotFoundSlots(app, true)
  // spikard's default leaves the flag as it was: the app may still set its own, once.
  assert.equal(setDefaultNotFoundHandler(app, () => 'default'), true)
  assertNotFoundSlots(app, true)
  app.setNotFoundHandler(() => 'mine')
  assertNotFoundSlots(app, false)
  // A handler set already stays.
  assert.equal(setDefaultNotFoundHandler(app, () => 'default'), false)
  await app.ready()
  assert.equal((await app.inject('/nowhere')).body, 'mine')
  await app.close()
})

function assertNotFoundSlots (app: FastifyInstance, canSet: boolean): void {
  const level = Object.getOwnPropertySymbols(app).find((s) => s.description === internals.NOT_FOUND_LEVEL)
  assert.ok(level !== undefined, `no ${internals.NOT_FOUND_LEVEL} symbol on the instance: Fastify changed it`)
  const holder = (app as unknown as Record<symbol, object>)[level]
  assert.equal(holder, app)
  const flag = Object.getOwnPropertySymbols(holder).find((s) => s.description === internals.CAN_SET_NOT_FOUND)
  assert.ok(flag !== undefined, `no ${internals.CAN_SET_NOT_FOUND} symbol on the instance: Fastify changed it`)
  assert.equal((holder as unknown as Record<symbol, unknown>)[flag], canSet)
}

test('Node keeps a connection\'s response under way on its socket (`_httpMessage`), and no longer once it has closed', async () => {
  const seen: Array<[string, ServerResponse | undefined, ServerResponse]> = []
  const server = createHttpServer((req, res) => {
    seen.push(['while answering', responseUnderWay(req.socket), res])
    res.on('close', () => { seen.push(['once closed', responseUnderWay(req.socket), res]) })
    res.end('ok')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    socket.on('error', reject).on('close', () => resolve()).resume()
    socket.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  })
  await new Promise((resolve) => server.close(resolve))
  assert.equal(seen[0][1], seen[0][2], 'no response under way on the socket: Node changed `_httpMessage`')
  assert.deepEqual(seen.slice(1).map(([when, found]) => [when, found]), [['once closed', undefined]])
})

test('listening on localhost, Fastify keeps the server of each other address in `fastify.serverBindings`', async (t) => {
  const lookup = dns.lookup
  // Two addresses, as most systems resolve localhost; the second one unused by anything else.
  t.mock.method(dns, 'lookup', (host: string, options: unknown, callback: (...args: unknown[]) => void) => {
    if (host === 'localhost' && (options as { all?: boolean } | undefined)?.all === true) return callback(null, [{ address: '127.0.0.1', family: 4 }, { address: '127.0.0.2', family: 4 }])
    return Reflect.apply(lookup, dns, [host, options, callback])
  })
  const app = Fastify()
  assert.deepStrictEqual(secondaryServers(app), [])
  await app.listen({ host: 'localhost', port: 0 })
  t.after(() => app.close())
  const servers = secondaryServers(app)
  assert.equal(servers.length, 1, `no ${internals.SERVER_BINDINGS} symbol on the instance, or no server in it: Fastify changed it`)
  assert.notEqual(servers[0], app.server)
  assert.equal((servers[0].address() as AddressInfo).address, '127.0.0.2')
})

test('an instance keeps its factory options under `fastify.options`, return503OnClosing absent unless given', async () => {
  const own = Fastify()
  assert.equal(answers503OnClosing(own), true, `no ${internals.OPTIONS} symbol on the instance: Fastify changed it`)
  assert.equal(answers503OnClosing(Fastify({ return503OnClosing: false })), false)
  // Inherited by an encapsulated child.
  await own.register(async (child) => { assert.equal(answers503OnClosing(child), true) })
  await own.ready()
  await own.close()
})

test('printRoutes({ includeMeta }) hands every route, its context as `store`, to the meta builder on the options it is given: routesInRouter lists each once, with the config requests see', async () => {
  const app = Fastify()
  app.get('/a', { config: { mark: 'a' } as never }, async (request) => request.routeOptions.config === routesInRouter(app).find((r) => (r.config as { mark?: string }).mark === 'a' && r.config.method === 'GET')?.config)
  // An optional parameter: two paths, one context.
  app.post('/b/:id?', { config: { mark: 'b' } as never, bodyLimit: 10 }, async () => 'b')
  let child: object | undefined
  await app.register(async (c) => { child = c; c.get('/c', { config: { mark: 'c' } as never }, async () => 'c') }, { prefix: '/v1' })
  const seen = routesInRouter(app).map((r) => [[r.config.method].flat().join(','), r.config.url, (r.config as { mark?: string }).mark, r.server === app ? 'app' : r.server === child ? 'child' : 'other', r.bodyLimit])
  assert.deepEqual(seen.sort(), [
    ['GET', '/a', 'a', 'app', 1048576],
    ['GET', '/v1/c', 'c', 'child', 1048576],
    ['HEAD', '/a', 'a', 'app', 1048576],
    ['HEAD', '/v1/c', 'c', 'child', 1048576],
    ['POST', '/b/:id?', 'b', 'app', 10]
  ], 'the router\'s routes cannot be listed through printRoutes any more: find-my-way or Fastify changed it')
  assert.equal((await app.inject('/a')).body, 'true')
  await app.close()
})

test('Fastify\'s own request id generator is named `defaultGenReqId`: ownRequestIdGenerator tells yours (the option, setGenReqId) from it', async () => {
  const plain = Fastify()
  assert.equal((plain as unknown as { genReqId: { name: string } }).genReqId.name, internals.FASTIFY_GEN_REQ_ID, 'Fastify renamed its default request id generator')
  assert.equal(ownRequestIdGenerator(plain), undefined)
  const mine = (): string => 'mine'
  assert.equal(ownRequestIdGenerator(Fastify({ genReqId: mine })), mine)
  assert.equal(ownRequestIdGenerator(Fastify().setGenReqId(mine)), mine)
  // Inherited by an encapsulated child.
  const app = Fastify({ genReqId: mine })
  await app.register(async (child) => { assert.equal(ownRequestIdGenerator(child), mine) })
  await Promise.all([plain.close(), app.close()])
})

test('Node marks a response whose connection reached maxRequestsPerSocket (`maxRequestsOnConnectionReached`): keepsConnection is false for it and for Connection: close, true otherwise', async () => {
  const kept: boolean[] = []
  const server = createHttpServer((_req, res) => {
    kept.push(keepsConnection(res))
    res.end('ok')
  })
  server.maxRequestsPerSocket = 2
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  const request = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
  await new Promise<void>((resolve, reject) => {
    // Three pipelined on one connection: the second is the last the socket may serve, the third is refused (503).
    const socket = connect(port, '127.0.0.1')
    socket.on('error', reject).on('close', () => resolve()).resume()
    socket.end(request + request + request)
  })
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    socket.on('error', reject).on('close', () => resolve()).resume()
    socket.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  })
  await new Promise((resolve) => server.close(resolve))
  assert.deepEqual(kept, [true, false, false], 'Node changed `maxRequestsOnConnectionReached`')
})

test('a route keeps its instance\'s error handler in its context, Fastify\'s default a plain object under `fastify.errorHandler`: adoptErrorHandler gives the routes with that default the app\'s newer one', async () => {
  const app = Fastify()
  app.get('/default', async () => { throw Object.assign(new Error('x'), { statusCode: 418 }) })
  app.get('/own', { errorHandler: (_error, _request, reply) => { void reply.code(418).send('own') } }, async () => { throw new Error('x') })
  await app.register(async (child) => { child.get('/child', async () => { throw Object.assign(new Error('x'), { statusCode: 418 }) }) })
  app.setErrorHandler((_error, _request, reply) => { void reply.code(418).send('newer') })
  // /default and /child, each with the HEAD route Fastify adds beside a GET.
  assert.equal(adoptErrorHandler(app), 4, 'Fastify changed how a route keeps its error handler')
  assert.deepEqual(await Promise.all(['/default', '/own', '/child'].map(async (url) => (await app.inject(url)).body)), ['newer', 'own', 'newer'])
  await app.close()
})
