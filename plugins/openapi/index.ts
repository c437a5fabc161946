/**
 * The OpenAPI 3.1 document, built by @fastify/swagger (dynamic mode) from the route schemas
 * and completed with what spikard knows of each route (plugins/openapi/document.ts), served
 * from memory with an ETag; Swagger UI (@fastify/swagger-ui) and Redoc (the `redoc`
 * package's bundle), both from local files.
 *
 * Registered first of the features: @fastify/swagger sees only the routes registered after
 * its onRoute hook, and the health probes come later in the list. The docs routes are added
 * here too, before the other features' onRoute hooks exist: they are decided on their first
 * request (src/route-decision.ts), from the config this plugin gives them.
 */
import { createRequire } from 'node:module'
import { readFile } from 'node:fs/promises'
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { resolveOpenApiOptions, withPackageInfo, type OpenApiOptions, type ResolvedOpenApiOptions } from './options.js'
import { completeDocument, featureSecurity, markRoute } from './document.js'
import { redocPage, REDOC_CSP, REDOC_LOGO } from './redoc.js'
import { serve, send, type Served } from './served.js'
import { refuseLaterRoutes, refuseTakenPaths, type OwnPath } from '../../src/own-paths.js'
import { routerOptions } from '../../src/path-table.js'
import type { Encoding } from '../compression/negotiate.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** `false` leaves the route out of the OpenAPI document (as `schema.hide: true` does). */
    openapi?: boolean
    /** The operation's operationId; default: derived from the method and path (`getUsersById`). */
    operationId?: string
  }
}

/** Swagger UI's pages load everything from this server, and send nothing elsewhere. */
const SWAGGER_UI_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"

async function spikardOpenApi (app: FastifyInstance, options: OpenApiOptions): Promise<void> {
  const o = resolveOpenApiOptions(options)
  const auth = app.spikard.options.auth !== false
  if (o.auth && !auth) throw new SpikardConfigError(['openapi.auth: true protects the docs with the app\'s auth, and the auth feature is off; configure auth or remove openapi.auth'])
  // What OpenAPI 3.1 forbids that a schema of each key alone cannot say: the document would not validate.
  const problems: string[] = []
  if (o.info.license?.identifier !== undefined && o.info.license.url !== undefined) problems.push('openapi.info.license: identifier and url exclude each other in OpenAPI 3.1; give one')
  o.tags.forEach((tag, i) => { if (o.tags.findIndex((t) => t.name === tag.name) < i) problems.push(`openapi.tags[${i}].name: ${JSON.stringify(tag.name)} is listed already; each tag once`) })
  problems.push(...securityProblems(o, featureSecurity(app.spikard.options)))
  // The servers' base paths (`/v1` of `https://api.example.com/v1/`), which markRoute takes
  // off the paths under them. A URL the pattern lets through but WHATWG's parser refuses
  // (`https://api.example.com:99999`, `http://[::1`) would fail here with a TypeError naming no option.
  const bases: string[] = []
  o.servers.forEach(({ url }, i) => {
    let base: string
    try {
      base = new URL(url, 'http://localhost').pathname.replace(/\/+$/, '')
    } catch {
      problems.push(`openapi.servers[${i}].url: expected a URL, absolute or relative (/v1), found ${JSON.stringify(url)}, which does not parse as one`)
      return
    }
    if (base !== '') bases.push(base)
  })
  if (problems.length > 0) throw new SpikardConfigError(problems)

  const routes: RouteOptions[] = []
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: info(o),
      servers: o.servers,
      tags: o.tags,
      ...(o.externalDocs === undefined ? {} : { externalDocs: o.externalDocs }),
      // The app's own schemes: completeDocument adds the features' beside them. (Cast: the
      // OpenAPI types @fastify/swagger uses lack OpenAPI 3.1's mutualTLS.)
      ...(o.components?.securitySchemes === undefined ? {} : { components: { securitySchemes: structuredClone(o.components.securitySchemes) as never } }),
      ...(o.security === undefined ? {} : { security: structuredClone(o.security) })
    },
    // A shared schema (app.addSchema) is a component named by its $id (`Item`), not `def-0`.
    refResolver: { buildLocalReference: componentNames() },
    // The servers' base paths are taken off the paths by markRoute, as they should be.
    stripBasePath: false,
    transform: markRoute(routes, routerOptions(app), bases) as never,
    transformObject: completeDocument(routes, app.spikard.options) as never
  })

  const compression = app.spikard.options.compression
  const encodings = compression === false ? [] : compression.encodings
  const served: { json?: Served, yaml?: Served } = {}
  app.addHook('onReady', async function spikardOpenApiDocument () {
    served.json = await serve(JSON.stringify(app.swagger()), 'application/json; charset=utf-8', encodings)
    served.yaml = await serve(app.swagger({ yaml: true }), 'application/yaml; charset=utf-8', encodings)
  })

  // The paths of the docs routes: a route of yours at one is refused naming its option
  // (Swagger UI's, registered before spikard, are checked as it is registered, below).
  const own = (path: string | false, option: string, paths: (path: string) => string[] = (p) => [p]): OwnPath[] =>
    path === false ? [] : paths(path).map((p) => ({ path: p, option }))
  const documents = [...own(o.json, 'openapi.json'), ...own(o.yaml, 'openapi.yaml'), ...own(o.redoc, 'openapi.redoc', redocPaths)]
  refuseTakenPaths(app, documents)

  await app.register(async function docsRoutes (child: FastifyInstance) {
    // The docs routes: out of the document, public unless openapi.auth (while no other
    // feature's onRoute hook exists yet: they read this config on the first request).
    child.addHook('onRoute', (route) => {
      route.config = { ...route.config, openapi: false, ...(auth ? { auth: o.auth } : {}) }
    })
    const document = (which: 'json' | 'yaml') => (request: FastifyRequest, reply: FastifyReply) => send(request, reply, served[which] as Served)
    if (o.json !== false) child.get(o.json, document('json'))
    if (o.yaml !== false) child.get(o.yaml, document('yaml'))
    if (o.docs !== false) {
      // @fastify/swagger-ui declares its routes in a callback plugin, where Fastify's
      // duplicate-route error escapes ready() as an uncaught exception: refused here instead.
      // (Under spikard's prefix, where the router knows routes by their whole URL.)
      const clash = swaggerUiPaths(o.docs).find((url) => child.hasRoute({ method: 'GET', url: child.prefix + url }))
      if (clash !== undefined) {
        const owner = clash === o.json ? `openapi.json (${clash})` : clash === o.yaml ? `openapi.yaml (${clash})` : `your route GET ${clash} (registered before spikard)`
        throw new SpikardConfigError([`openapi.docs: Swagger UI at ${o.docs} needs GET ${clash}, and ${owner} is there already; set openapi.docs to another path (or false), or move that route`])
      }
      await child.register(swaggerUi, {
        routePrefix: o.docs,
        staticCSP: SWAGGER_UI_CSP,
        // Swagger UI would send the document to validator.swagger.io for its badge.
        validatorUrl: null,
        uiConfig: { persistAuthorization: false, tryItOutEnabled: false }
      } as never)
    }
    if (o.redoc !== false) await child.register(redocRoutes(o.redoc, served, encodings), { prefix: o.redoc })
  })
  refuseLaterRoutes(app, [...documents, ...own(o.docs, 'openapi.docs', (p) => [...swaggerUiPaths(p), `${p.replace(/\/$/, '')}/static/*`])])
}

/**
 * What the app's own schemes and requirement must not be: a scheme named as one a feature
 * documents (auth's `bearerAuth`, `apiKey`, `apiKeyQuery`, as configured), an HTTP scheme
 * with a `bearerFormat` but not `bearer` (OpenAPI 3.1 allows it on bearer only), a
 * requirement naming an undeclared scheme, or a document-wide requirement while a feature
 * writes every operation's own (it would apply to none).
 */
function securityProblems (o: ResolvedOpenApiOptions, features: ReturnType<typeof featureSecurity>): string[] {
  const problems: string[] = []
  const own = o.components?.securitySchemes ?? {}
  for (const [name, scheme] of Object.entries(own)) {
    const feature = features.find((f) => Object.hasOwn(f.schemes, name))?.feature
    if (feature !== undefined) problems.push(`openapi.components.securitySchemes.${name}: the ${feature} feature documents a scheme of that name, for what it checks; give yours another name`)
    if (scheme.type === 'http' && scheme.bearerFormat !== undefined && scheme.scheme.toLowerCase() !== 'bearer') problems.push(`openapi.components.securitySchemes.${name}.bearerFormat: OpenAPI 3.1 allows it with scheme "bearer" only, found scheme ${JSON.stringify(scheme.scheme)}; remove it`)
  }
  if (o.security === undefined) return problems
  if (features.length > 0) {
    problems.push(`openapi.security: the ${features.map((f) => f.feature).join(' and ')} feature states the security of every route, so a default would apply to none; ` +
      'name your schemes in schema.security on the routes your app checks them on, or remove openapi.security')
    return problems
  }
  o.security.forEach((requirement, i) => {
    for (const name of Object.keys(requirement)) {
      if (!Object.hasOwn(own, name)) problems.push(`openapi.security[${i}]: names ${JSON.stringify(name)}, which openapi.components.securitySchemes does not declare${Object.keys(own).length === 0 ? '' : ` (it has ${Object.keys(own).join(', ')})`}`)
    }
  })
  return problems
}

/** The GET routes @fastify/swagger-ui declares at once under `prefix` (its lib/routes.js; the static files are a wildcard). */
function swaggerUiPaths (prefix: string): string[] {
  const base = prefix.replace(/\/$/, '')
  return [base === '' ? '/' : base, `${base}/`, ...['/static/index.html', '/static/swagger-initializer.js', '/json', '/yaml'].map((path) => base + path)]
}

/** The routes of Redoc under `prefix` (./redoc.ts): its page, with and without the slash, its bundle and the document. */
function redocPaths (prefix: string): string[] {
  const base = prefix.replace(/\/$/, '')
  return [base === '' ? '/' : base, `${base}/`, `${base}/redoc.standalone.js`, `${base}/openapi.json`]
}

/**
 * Component names from the schemas' `$id`s (`http://example.com/pet.json` is `pet`), reduced to
 * the characters OpenAPI allows; `def-<i>` without one, and `<name>-<i>` when two `$id`s
 * reduce to the same name.
 */
function componentNames () {
  const owners = new Map<string, string>()
  return (json: { $id?: unknown }, _baseUri: unknown, _fragment: unknown, i: number): string => {
    if (typeof json.$id !== 'string') return `def-${i}`
    const name = json.$id.replace(/#$/, '').replace(/^.*\//, '').replace(/\.json$/, '').replace(/[^A-Za-z0-9._-]/g, '_')
    if (name === '') return `def-${i}`
    if ((owners.get(name) ?? json.$id) !== json.$id) return `${name}-${i}`
    owners.set(name, json.$id)
    return name
  }
}

/** The document's info: the options' fields; the title and version from package.json where absent (createServer looked beside the config file already). */
function info (o: ResolvedOpenApiOptions): ResolvedOpenApiOptions['info'] & { title: string, version: string } {
  const { info } = withPackageInfo(o, process.cwd())
  return { ...info, title: info.title ?? 'API', version: info.version ?? '0.0.0' }
}

/** Redoc: its page, its bundle (read from the `redoc` package once, on the first request) and the document it renders. */
function redocRoutes (prefix: string, served: { json?: Served }, encodings: readonly Encoding[]) {
  return async function redoc (child: FastifyInstance): Promise<void> {
    let page: Promise<Served> | undefined
    let bundle: Promise<Served> | undefined
    child.get('/', async (request, reply) => {
      page ??= serve(redocPage(prefix), 'text/html; charset=utf-8', encodings)
      reply.header('content-security-policy', REDOC_CSP)
      return send(request, reply, await page)
    })
    child.get('/redoc.standalone.js', async (request, reply) => {
      bundle ??= readFile(createRequire(import.meta.url).resolve('redoc/bundles/redoc.standalone.js'), 'utf8')
        .then((js) => serve(js.replace(REDOC_LOGO, ''), 'text/javascript; charset=utf-8', encodings))
      return send(request, reply, await bundle)
    })
    child.get('/openapi.json', (request, reply) => send(request, reply, served.json as Served))
  }
}

export default fp(spikardOpenApi, { name: 'spikard-openapi', fastify: '5.x' })
