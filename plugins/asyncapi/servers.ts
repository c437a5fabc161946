/**
 * The document's `servers` and security schemes. Each origin clients reach the app at is two
 * servers: the WebSocket one (ws, or wss behind TLS) for the WebSocket channels, the HTTP one
 * (http, https) for the event streams. The security schemes are those the features declare
 * for the OpenAPI document (the auth feature's bearer JWT and API keys), in AsyncAPI 3's
 * terms, and the browser token of the WebSocket routes that accept one. No Fastify runtime
 * import.
 */
import type { RouteOptions } from 'fastify'
import { features, type FeatureName, type ResolvedSpikardOptions } from '../../src/options.js'
import type { FeatureDefinition } from '../../src/feature.js'

type Json = Record<string, any>

export interface ServerUrl { url: string, name?: string, description?: string }

export interface Servers {
  servers: Record<string, Json>
  /** The server ids WebSocket channels are reached at. */
  ws: string[]
  /** The server ids event streams are reached at. */
  http: string[]
}

export function servers (urls: readonly ServerUrl[]): Servers {
  const out: Servers = { servers: {}, ws: [], http: [] }
  urls.forEach((server, i) => {
    const url = new URL(server.url)
    const secure = url.protocol === 'https:' || url.protocol === 'wss:'
    const prefix = server.name !== undefined ? `${server.name}-` : urls.length > 1 ? `server${i + 1}-` : ''
    for (const [protocol, list] of [[secure ? 'wss' : 'ws', out.ws], [secure ? 'https' : 'http', out.http]] as const) {
      const id = `${prefix}${protocol}`
      out.servers[id] = {
        host: url.host,
        protocol,
        ...(url.pathname === '/' ? {} : { pathname: url.pathname.replace(/\/$/, '') }),
        ...(server.description === undefined ? {} : { description: server.description })
      }
      list.push(id)
    }
  })
  return out
}

/** The URL of a listening address (`0.0.0.0` and `::` are reached as localhost). */
export function listeningUrl (address: { address: string, family: string, port: number }): string {
  const host = address.address === '0.0.0.0' || address.address === '::'
    ? 'localhost'
    : address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}

/** The browser token of WebSocket routes with `config.websocket.accessToken`. */
export const ACCESS_TOKEN = {
  accessTokenProtocol: {
    type: 'httpApiKey',
    in: 'header',
    name: 'Sec-WebSocket-Protocol',
    description: 'For browsers, which cannot set headers: the route\'s credential as the two subprotocols `access_token, <token>` (the handshake answers with `access_token` alone).'
  },
  accessTokenQuery: {
    type: 'httpApiKey',
    in: 'query',
    name: 'access_token',
    description: 'For browsers, which cannot set headers: the route\'s credential in the `access_token` query parameter.'
  }
} as const

export interface Security {
  /** `components.securitySchemes`: every scheme of the enabled features, the browser token's when a route accepts it. */
  schemes: Record<string, Json>
  /** The schemes a route accepts (any one suffices), undefined for a public route. */
  route: (route: RouteOptions, accessToken: boolean) => string[] | undefined
}

export function security (options: ResolvedSpikardOptions): Security {
  const enabled = (Object.entries(features) as Array<[FeatureName, FeatureDefinition]>)
    .filter(([name, feature]) => options[name] !== false && feature.openapi !== undefined)
    .map(([name, feature]) => ({ doc: feature.openapi!, options: options[name] }))
  const schemes: Record<string, Json> = {}
  for (const { doc, options: o } of enabled) {
    for (const [name, scheme] of Object.entries(doc.security?.(o)?.schemes ?? {})) schemes[name] = asyncapiScheme(scheme)
  }
  return {
    schemes,
    route (route, accessToken) {
      let accepted: string[] | undefined
      for (const { doc, options: o } of enabled) {
        const requirement = doc.operation?.(route, o)?.security
        if (requirement !== undefined) accepted = requirement.flatMap((r) => Object.keys(r))
      }
      if (accepted === undefined || accepted.length === 0) return undefined
      if (!accessToken) return accepted
      Object.assign(schemes, ACCESS_TOKEN)
      return [...accepted, ...Object.keys(ACCESS_TOKEN)]
    }
  }
}

/** An OpenAPI security scheme in AsyncAPI 3's terms: an API key sent over HTTP is `httpApiKey`; `http` (bearer) is the same. */
function asyncapiScheme (scheme: Record<string, unknown>): Json {
  if (scheme.type === 'apiKey') return { ...scheme, type: 'httpApiKey' }
  return { ...scheme }
}
