/**
 * The AsyncAPI 3.0 document of the app's WebSocket and event-stream routes
 * (plugins/asyncapi/document.ts), generated once when the app is ready from
 * `app.spikard.routes` and served from memory with an ETag, as the OpenAPI document is; and
 * a viewer page (@asyncapi/react-component's standalone bundle, from the package).
 *
 * Its `servers` are `asyncapi.servers`, else the address the app listens on: an app that
 * does not listen (inject, `spikard asyncapi`) has none unless configured, and one that
 * listens gets them once it does (the document is then served anew, once).
 */
import fp from 'fastify-plugin'
import { stringify } from 'yaml'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { resolveAsyncApiOptions, withPackageInfo, type AsyncApiOptions } from './options.js'
import { asyncapiDocument } from './document.js'
import { listeningUrl, type ServerUrl } from './servers.js'
import { viewerPaths, viewerRoutes } from './viewer.js'
import { serve, send, type Served } from '../openapi/served.js'
import { refuseLaterRoutes, refuseTakenPaths, type OwnPath } from '../../src/own-paths.js'
import { isWebSocketRoute, type WebSocketRouteOptions } from '../websocket/messages.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * `false` leaves a WebSocket or event-stream route out of the AsyncAPI document (as
     * `schema.hide: true` does); an object names its channel, messages and operations (./route.ts).
     */
    asyncapi?: boolean | (import('./route.js').AsyncApiRouteConfig & object) // `& object`: see RouteAuth (plugins/auth/route.ts)
  }
  interface FastifyInstance {
    /** The AsyncAPI document (a new copy on each call), once the app is ready. */
    asyncapi: () => Record<string, any>
  }
}

async function spikardAsyncApi (app: FastifyInstance, options: AsyncApiOptions): Promise<void> {
  const o = resolveAsyncApiOptions(options)
  const auth = app.spikard.options.auth !== false
  if (o.auth && !auth) throw new SpikardConfigError(['asyncapi.auth: true protects the document with the app\'s auth, and the auth feature is off; configure auth or remove asyncapi.auth'])
  const { info } = withPackageInfo(o, process.cwd())
  const resolved = { ...o, info: { ...info, title: info.title ?? 'API', version: info.version ?? '0.0.0' } }

  const compression = app.spikard.options.compression
  const encodings = compression === false ? [] : compression.encodings
  let document: Record<string, any> | undefined
  const served: { json?: Served, yaml?: Served } = {}
  const build = async (servers: readonly ServerUrl[]) => {
    document = asyncapiDocument({ routes: app.spikard.routes, options: resolved, spikard: app.spikard.options, shared: { ...app.getSchemas(), ...shared }, servers })
    served.json = await serve(JSON.stringify(document), 'application/json; charset=utf-8', encodings)
    served.yaml = await serve(yaml(document), 'application/yaml; charset=utf-8', encodings)
  }
  app.decorate('asyncapi', () => {
    if (document === undefined) throw new Error('spikard: the AsyncAPI document exists once the app is ready')
    return structuredClone(document)
  })
  // Shared schemas are encapsulated: those the channel routes see, from the context each is registered in.
  const shared: Record<string, unknown> = {}
  app.addHook('onRoute', function spikardAsyncApiSchemas (this: FastifyInstance, route) {
    if (!isWebSocketRoute(route as WebSocketRouteOptions) && (route as { sse?: unknown }).sse === undefined) return
    for (const [id, schema] of Object.entries(this.getSchemas())) if (!Object.hasOwn(shared, id)) shared[id] = schema
  })
  app.addHook('onReady', async function spikardAsyncApiDocument () { await build(o.servers) })
  // Without asyncapi.servers: where the app listens, once it does. On the first request after
  // that too, since Fastify's listen() resolves before the onListen hooks have run.
  let listening: Promise<void> | undefined
  const atListen = (): Promise<void> | undefined => {
    if (listening !== undefined || o.servers.length > 0 || !app.server.listening) return listening
    const address = app.server.address()
    if (address === null || typeof address !== 'object') return undefined
    return (listening = build([{ url: listeningUrl(address) }]))
  }
  // Started, not awaited: the routes wait for it, and the onListen hooks after this one
  // (the startup line) are not held back.
  if (o.servers.length === 0) {
    app.addHook('onListen', function spikardAsyncApiServers (done) {
      atListen()?.catch((error: unknown) => { app.log.error({ err: error }, 'asyncapi: could not build the document for the listening address') })
      done()
    })
  }

  // A route of yours at the path of one of these: refused naming its option (../openapi/taken.ts).
  const own: OwnPath[] = [
    ...(o.json === false ? [] : [{ path: o.json, option: 'asyncapi.json' }]),
    ...(o.yaml === false ? [] : [{ path: o.yaml, option: 'asyncapi.yaml' }]),
    ...(o.docs === false ? [] : viewerPaths(o.docs).map((path) => ({ path, option: 'asyncapi.docs' })))
  ]
  refuseTakenPaths(app, own)

  await app.register(async function asyncapiRoutes (child: FastifyInstance) {
    // Out of the OpenAPI document; public unless asyncapi.auth (read by auth on the first request).
    child.addHook('onRoute', (route) => {
      route.config = { ...route.config, openapi: false, ...(auth ? { auth: o.auth } : {}) }
    })
    const route = (which: 'json' | 'yaml') => async (request: FastifyRequest, reply: FastifyReply) => {
      await atListen()
      return send(request, reply, served[which] as Served)
    }
    if (o.json !== false) child.get(o.json, route('json'))
    if (o.yaml !== false) child.get(o.yaml, route('yaml'))
    if (o.docs !== false) await child.register(viewerRoutes(o.docs, served, encodings, atListen), { prefix: o.docs })
  })
  refuseLaterRoutes(app, own)
}

/** YAML without anchors and aliases (a shared object is written out each time), lines unfolded. */
export function yaml (document: unknown): string {
  return stringify(document, { aliasDuplicateObjects: false, lineWidth: 0 })
}

export type { AsyncApiRouteConfig, AsyncApiRouteOperation } from './route.js'

export default fp(spikardAsyncApi, { name: 'spikard-asyncapi', fastify: '5.x' })
