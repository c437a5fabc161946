/**
 * The `asyncapi` options: the AsyncAPI 3.0 document of the app's WebSocket and
 * Server-Sent Events routes, where it is served, and what it says beyond the routes.
 */
import { Type, type Static } from '@sinclair/typebox'
import { optionsResolver, RoutePath, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'
import { nearestPackageJson } from '../../src/package-json.js'
import { AbsoluteUrl, ExternalDocs, Info, OpenApiOptionsSchema } from '../openapi/options.js'

export const AsyncApiOptionsSchema = Type.Object({
  json: Type.Optional(RoutePath('/asyncapi.json', 'Route of the AsyncAPI 3.0 document as JSON. `false` removes it.')),
  yaml: Type.Optional(RoutePath('/asyncapi.yaml', 'Route of the same document as YAML. `false` removes it.')),
  docs: Type.Optional(RoutePath('/asyncapi', 'The viewer page (@asyncapi/react-component\'s standalone bundle), served from the package: no CDN. `false` removes it.')),
  // The same `info` as the OpenAPI document's (one app, one description), with absolute
  // URLs only: AsyncAPI 3.0 takes no relative one.
  info: Info(AbsoluteUrl),
  servers: Type.Optional(Type.Array(Type.Object({
    url: Type.String({ pattern: '^(https?|wss?)://[^/?#]+(/[^?#]*)?$', expected: 'an http://, https://, ws:// or wss:// URL without query or fragment' }),
    name: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$', expected: 'letters, digits, "_" and "-"', description: 'Prefix of the server ids (`<name>-wss`, `<name>-https`).' })),
    description: Type.Optional(Type.String())
  }, { additionalProperties: false }), {
    default: [],
    description: 'Where clients connect, e.g. `[{ url: "https://api.example.com" }]`: each URL gives a WebSocket server (ws/wss) and an HTTP one (http/https, for the event streams). Default: the address the app listens on (`spikard asyncapi`: `server.host` and `server.port`).'
  })),
  tags: OpenApiOptionsSchema.properties.tags,
  externalDocs: ExternalDocs(AbsoluteUrl),
  auth: Type.Optional(Type.Boolean({
    default: false,
    description: 'Protect the document and the viewer with the app\'s auth (the `auth` feature must be on). Default: public.'
  }))
}, { additionalProperties: false })

export type AsyncApiOptions = Static<typeof AsyncApiOptionsSchema>
export type ResolvedAsyncApiOptions = Defaulted<typeof AsyncApiOptionsSchema>
export const resolveAsyncApiOptions = optionsResolver(AsyncApiOptionsSchema, 'asyncapi')

/**
 * The route's channel is in the document: not hidden by `config.asyncapi: false` (or, for an
 * event stream, `schema.hide`), and not a HEAD route Fastify added. @fastify/websocket sets
 * `schema.hide` on every WebSocket route, to keep it out of the OpenAPI document: there it
 * hides nothing.
 */
export function inAsyncApi (route: { method: string | string[], schema?: unknown, config?: unknown, websocket?: unknown }): boolean {
  return route.method !== 'HEAD' &&
    (route.websocket === true || (route.schema as { hide?: unknown } | undefined)?.hide !== true) &&
    (route.config as { asyncapi?: unknown } | undefined)?.asyncapi !== false
}

export const asyncapiFeature = {
  plugin: async () => await import('./index.js'),
  schema: AsyncApiOptionsSchema,
  summary: 'AsyncAPI 3.0 document of the WebSocket and Server-Sent Events routes (channels, messages from their schemas, servers, security), with a viewer, served offline. Off when NODE_ENV=production unless set.',
  enabledByDefault: true,
  offInProduction: true,
  besideConfig: withPackageInfo,
  settings: (o) => ['json', 'yaml', 'docs'].map((k) => `${k}=${o[k as 'json'] === false ? 'off' : o[k as 'json'] as string}`).join(' ') + (o.auth ? ' auth' : '')
} satisfies FeatureDefinition<typeof AsyncApiOptionsSchema, ResolvedAsyncApiOptions>

/** The title and version, where not set, from the `name` and `version` of the package.json nearest `dir`. */
export function withPackageInfo (o: ResolvedAsyncApiOptions, dir: string): ResolvedAsyncApiOptions {
  if (o.info.title !== undefined && o.info.version !== undefined) return o
  const pkg = nearestPackageJson(dir)
  const text = (value: unknown) => typeof value === 'string' && value !== '' ? value : undefined
  return { ...o, info: { ...o.info, title: o.info.title ?? text(pkg?.name), version: o.info.version ?? text(pkg?.version) } }
}
