/**
 * What spikard knows about a route, written into its OpenAPI operation: the security it
 * accepts, the problems it may answer with (each feature says which, through its entry in
 * the features table), the headers every response carries. @fastify/swagger turns the
 * route schemas into operations; these functions are its `transform` (which route is
 * which operation, its operationId, hidden routes) and `transformObject` (the rest, once
 * every operation exists). No Fastify runtime import.
 */
import type { RouteOptions } from 'fastify'
import { errorDefinitions, PROBLEM_TYPE_BASE, SpikardConfigError, type SpikardErrorCode } from '../../src/errors.js'
import { features, type FeatureName, type ResolvedSpikardOptions } from '../../src/options.js'
import type { FeatureDefinition, HeaderDoc, OperationDoc } from '../../src/feature.js'
import type { RouterOptions } from '../../src/path-table.js'
import { unique } from '../../src/unique.js'
import { takesBody } from '../body-limit/options.js'
import { sseRoute, type SseRoute } from '../sse/events.js'
import { documented } from './options.js'

type Json = Record<string, any>

const PROBLEM = 'application/problem+json'
const ROUTE_KEY = 'x-spikard-route'
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
/** The fields of an OpenAPI 3.1 path item besides its operations. */
const PATH_ITEM_FIELDS = new Set(['$ref', 'summary', 'description', 'servers', 'parameters'])
/**
 * find-my-way's optional last parameter (`/posts/:id?`, `/posts/:id?/`): the router registers
 * the route twice, with the parameter (`$1$2`) and without it (`$2`, or `/`).
 */
const OPTIONAL_PARAM = /(\/:[^/()]*?)\?(\/?)/

/** spikard's schemas, `Problem` and `FieldError` unless the app's shared schemas have those names (then `SpikardProblem`, `SpikardFieldError`), referencing each other by `names`. */
function problemSchemas (names: SchemaNames): Json {
  return {
    [names.Problem]: problemSchema(names),
    [names.FieldError]: fieldErrorSchema
  }
}

/** The component names of spikard's schemas in one document. */
interface SchemaNames { Problem: string, FieldError: string }

const problemSchema = (names: SchemaNames): Json => ({
  type: 'object',
  description: 'RFC 9457 problem details: the body of every error response.',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string', format: 'uri', description: `What went wrong, as a URI (${PROBLEM_TYPE_BASE}<slug>).`, examples: [`${PROBLEM_TYPE_BASE}validation-failed`] },
    title: { type: 'string', description: 'The HTTP reason phrase of the status.' },
    status: { type: 'integer', minimum: 400, maximum: 599, description: 'The HTTP status, repeated.' },
    detail: { type: 'string', description: 'What happened to this request, for a human. 5xx details never carry internal messages.' },
    instance: { type: 'string', description: 'The request path.' },
    requestId: { type: 'string', description: 'The request id, as in the access log.' },
    errors: { type: 'array', items: { $ref: `#/components/schemas/${names.FieldError}` }, description: 'On a 422: each field that failed validation.' }
  }
})

const fieldErrorSchema = {
  type: 'object',
  required: ['location', 'field', 'message'],
  properties: {
    location: { type: 'string', enum: ['body', 'querystring', 'params', 'headers'], description: 'Where the field is.' },
    field: { type: 'string', description: 'The field as a dotted path (`items.0.name`); empty for the whole value.' },
    message: { type: 'string', description: 'What was expected.' }
  }
}

/** The errors every route may answer with, whatever the features: spikard's problem-details handler. */
function coreDoc (route: RouteOptions): OperationDoc {
  const schema = route.schema as Json | undefined
  const validated = ['body', 'querystring', 'params', 'headers'].some((part) => schema?.[part] !== undefined)
  const errors: NonNullable<OperationDoc['errors']> = [{ code: 'SPK_ERR_BAD_REQUEST' }]
  if (takesBody(route)) errors.push({ code: 'SPK_ERR_MALFORMED_BODY' }, { code: 'SPK_ERR_UNSUPPORTED_MEDIA_TYPE' })
  if (validated) errors.push({ code: 'SPK_ERR_VALIDATION' })
  errors.push({ code: 'SPK_ERR_INTERNAL' })
  return { errors }
}

/**
 * @fastify/swagger's `transform`: hidden routes stay out; every other route is marked with
 * its index in `routes` (an `x-` key, which @fastify/swagger copies to the operation) so
 * `transformObject` finds it, and gets the operationId it asks for (`config.operationId`,
 * else `schema.operationId`); `transformObject` derives the others, per method.
 * A route's `schema.security` is kept away from @fastify/swagger, which looks up each scheme it
 * names in `components.securitySchemes` before spikard has put any there, and throws a
 * TypeError for any route that has one; `transformObject` writes it instead.
 */
export function markRoute (routes: RouteOptions[], router: RouterOptions = {}, bases: string[] = []) {
  return ({ schema, url, route }: { schema: Json | undefined, url: string, route: RouteOptions }): { schema: Json, url: string } => {
    if (!documented(route)) return { schema: { ...schema, hide: true }, url }
    const configured = (route.config as { operationId?: unknown } | undefined)?.operationId
    routes.push(route)
    const { security: _security, ...rest } = schema ?? {}
    return {
      schema: {
        ...rest,
        ...(typeof configured === 'string' ? { operationId: configured } : {}),
        [ROUTE_KEY]: routes.length - 1
      },
      // `/posts/:id?` is documented at `/posts/{id}` here, and at `/posts` by completeDocument
      // (@fastify/swagger would write `/posts/{id}?`, a path no request has).
      url: underServer(routerPath((prefixRoot(route) ?? url).replace(OPTIONAL_PARAM, '$1$2'), router), bases)
    }
  }
}

/**
 * The path relative to the first server whose base path (`bases`: `/v1` of
 * `https://api.example.com/v1/`) it is under: `/v1/items` is `/items`, `/v1` is `/`; `/v10`
 * is not under `/v1`. (@fastify/swagger's stripBasePath, which spikard turns off, cut
 * any string prefix: `/v10/x` became `0/x` and `/v1` an empty path, both invalid.)
 */
function underServer (path: string, bases: string[]): string {
  const base = bases.find((b) => path === b || path.startsWith(`${b}/`))
  return base === undefined ? path : path.slice(base.length) === '' ? '/' : path.slice(base.length)
}

/**
 * The prefix, for a prefix's `/` route that Fastify registers at both `/v2` and `/v2/`
 * (`prefixTrailingSlash: 'both'`, the default): it calls onRoute with the first, then reuses
 * the route object for the second, so route.url says `/v2/` (`/v2//` for the prefix `/v2/`).
 * Documented at the path onRoute saw, where a POST `/v2` of another plugin is too.
 */
function prefixRoot (route: RouteOptions): string | undefined {
  const { routePath, prefix, prefixTrailingSlash } = route as RouteOptions & { routePath?: string, prefix?: string }
  return routePath === '/' && prefix !== undefined && prefix !== '' && (prefixTrailingSlash ?? 'both') === 'both' ? prefix : undefined
}

/**
 * The path the router registers `url` at (find-my-way's on()): with `ignoreTrailingSlash`,
 * `/v1/` is `/v1`, so a GET `/v1/` and a POST `/v1` are one path item, as they are one path
 * to the router; with `ignoreDuplicateSlashes`, `/a//b` is `/a/b`.
 */
function routerPath (url: string, router: RouterOptions): string {
  let path = router.ignoreDuplicateSlashes === true ? url.replace(/\/\/+/g, '/') : url
  if (router.ignoreTrailingSlash === true && path.length > 1 && path.endsWith('/')) path = path.slice(0, -1)
  return path
}

/** `GET /users/:id/posts` → `getUsersByIdPosts`: stable, from the method and the path. */
export function operationId (method: string, url: string): string {
  const words = url.split('/').filter((s) => s !== '').flatMap((segment) => {
    const param = segment.startsWith(':') || segment.startsWith('{')
    const name = segment.replace(/^[:{]|}$/g, '').replace(/\(.*\)$/, '')
    const parts = name.split(/[^A-Za-z0-9]+/).filter((p) => p !== '')
    return param ? ['by', ...parts] : parts
  })
  return [method.toLowerCase(), ...words.map((w) => w[0].toUpperCase() + w.slice(1))].join('')
}

/** The security schemes each enabled feature documents (auth's), with the document's requirement for them. */
export function featureSecurity (options: ResolvedSpikardOptions): Array<{ feature: FeatureName, schemes: Record<string, Record<string, unknown>>, requirement: Array<Record<string, string[]>> }> {
  return (Object.entries(features) as Array<[FeatureName, FeatureDefinition]>).flatMap(([feature, definition]) => {
    const security = options[feature] === false ? undefined : definition.openapi?.security?.(options[feature])
    return security === undefined || Object.keys(security.schemes).length === 0 ? [] : [{ feature, ...security }]
  })
}

/** @fastify/swagger's `transformObject`: the security schemes, the Problem schema, and each operation's share of spikard. */
export function completeDocument (routes: RouteOptions[], options: ResolvedSpikardOptions) {
  return ({ openapiObject: doc }: { openapiObject: Json }): Json => {
    doc.components ??= {}
    // A shared schema of the app (app.addSchema) keeps its name; spikard's take the next free one.
    const taken = new Set(Object.keys(doc.components.schemas ?? {}))
    const names: SchemaNames = { Problem: unique('Problem', taken, 'Spikard'), FieldError: unique('FieldError', taken, 'Spikard') }
    const problem = `#/components/schemas/${names.Problem}`
    doc.components.schemas = { ...problemSchemas(names), ...doc.components.schemas }
    // Answers to requests no operation matches: an unknown path, a method the path does not serve.
    doc.components.responses = {
      NotFound: problemResponse('SPK_ERR_NOT_FOUND', problem),
      MethodNotAllowed: { ...problemResponse('SPK_ERR_METHOD_NOT_ALLOWED', problem), headers: { Allow: { description: 'The methods the path serves.', schema: { type: 'string' } } } },
      ...doc.components.responses
    }
    const enabled = (Object.entries(features) as Array<[FeatureName, FeatureDefinition]>)
      .filter(([name]) => options[name] !== false)
      .map(([name, feature]) => ({ feature, options: options[name] }))
    // The features' schemes first, then the app's own (openapi.components.securitySchemes,
    // which @fastify/swagger put in the document; a name of the features' was refused at startup).
    const ownSchemes = Object.keys(doc.components.securitySchemes ?? {})
    const featureSchemes: Record<string, unknown> = {}
    for (const security of featureSecurity(options)) {
      Object.assign(featureSchemes, security.schemes)
      doc.security = security.requirement
    }
    if (Object.keys(featureSchemes).length > 0) doc.components.securitySchemes = { ...featureSchemes, ...doc.components.securitySchemes }

    // A method added with app.addHttpMethod (SEARCH, PROPFIND...): @fastify/swagger writes it
    // as a key of the path item, which OpenAPI 3.1 does not allow (the document would not
    // validate): left out, as HEAD routes are.
    for (const [path, item] of Object.entries(doc.paths ?? {}) as Array<[string, Json]>) {
      for (const key of Object.keys(item)) if (!METHODS.includes(key) && !PATH_ITEM_FIELDS.has(key)) delete item[key]
      if (Object.keys(item).length === 0) delete doc.paths[path]
    }
    const withoutParam = new Set<Json>()
    if (doc.paths !== undefined) doc.paths = withOptionalParams(doc.paths, routes, withoutParam)

    // Every operation, each its own object: @fastify/swagger gives the methods of one route
    // (`method: ['GET', 'POST']`) the same one.
    const operations: Array<{ operation: Json, method: string, path: string, route: RouteOptions | undefined }> = []
    const seen = new Set<Json>()
    for (const [path, item] of Object.entries(doc.paths ?? {}) as Array<[string, Json]>) {
      for (const method of METHODS) {
        if (item[method] === undefined) continue
        if (seen.has(item[method])) item[method] = structuredClone(item[method])
        const operation = item[method] as Json
        seen.add(operation)
        operations.push({ operation, method, path, route: routes[operation[ROUTE_KEY]] })
      }
    }
    // Removed once every method has found its route: the methods of one route share one
    // object until cloned above, so removing it from the first would lose the others' route.
    for (const { operation } of operations) delete operation[ROUTE_KEY]
    // The operationIds routes ask for first, so a derived one never takes theirs (the path
    // with a route's optional parameter first: the path without it gets `<id>2`).
    const ids = new Set<string>()
    const asked = operations.filter(({ operation }) => operation.operationId !== undefined)
      .sort((a, b) => Number(withoutParam.has(a.operation)) - Number(withoutParam.has(b.operation)))
    for (const { operation } of asked) operation.operationId = unique(operation.operationId, ids)
    for (const { operation, method, path, route } of operations) {
      const url = route === undefined ? path : withoutParam.has(operation) ? route.url.replace(OPTIONAL_PARAM, '$2') : route.url
      operation.operationId ??= unique(operationId(method, url), ids)
    }

    const usedTags = new Set<string>()
    const unknownSchemes: string[] = []
    for (const { operation, method, path, route: declared } of operations) {
      for (const tag of operation.tags ?? []) usedTags.add(tag)
      if (declared === undefined) continue
      // The route as this method's requests meet it: a GET of a GET and POST route reads no body.
      const route = { ...declared, method: method.toUpperCase() } as RouteOptions
      const own = (declared.schema as Json | undefined)?.security as Array<Record<string, string[]>> | undefined
      if (own !== undefined) operation.security = structuredClone(own)
      const docs = [coreDoc(route), ...enabled.map(({ feature, options: o }) => feature.openapi?.operation?.(route, o))]
      apply(operation, docs.filter((d): d is OperationDoc => d !== undefined), doc.components, problem)
      // A scheme the document does not define would make it invalid: only a route's own
      // schema.security can name one (kept as written, or with auth's schemes).
      if (own !== undefined) {
        const schemes = Object.keys(doc.components.securitySchemes ?? {})
        const spikards = Object.keys(featureSchemes)
        for (const name of new Set((operation.security as Array<Record<string, string[]>>).flatMap((requirement) => Object.keys(requirement)))) {
          if (schemes.includes(name)) continue
          unknownSchemes.push(`${method.toUpperCase()} ${path}: schema.security names ${JSON.stringify(name)}, a security scheme the OpenAPI document does not define ` +
            `(its schemes come from the auth feature${spikards.length === 0 ? ', which is off' : `: ${spikards.join(', ')}`}, ` +
            `and from openapi.components.securitySchemes${ownSchemes.length === 0 ? ', which has none' : `: ${ownSchemes.join(', ')}`}); ` +
            `declare it in openapi.components.securitySchemes${schemes.length === 0 ? '' : ', name one of those'} or remove schema.security (config.auth chooses the schemes spikard checks)`)
        }
      }
      // The app's own default requirement (openapi.security, auth off): a route that says it
      // needs no credentials (config.auth: false, the health probes) is public, as with auth on.
      if (own === undefined && operation.security === undefined && doc.security !== undefined && (declared.config as { auth?: unknown } | undefined)?.auth === false) operation.security = []
      const stream = options.sse === false ? undefined : sseRoute(route as { sse?: unknown, schema?: unknown })
      if (stream !== undefined) eventStream(operation, stream)
    }
    if (unknownSchemes.length > 0) throw new SpikardConfigError(unknownSchemes)
    if (usedTags.has('health') && !(doc.tags as Json[] | undefined)?.some((t) => t.name === 'health')) {
      doc.tags = [...(doc.tags ?? []), { name: 'health', description: 'Liveness and readiness probes (spikard).' }]
    }
    return doc
  }
}

/**
 * `paths` with, for each operation of a route whose last parameter is optional (`/posts/:id?`,
 * documented at `/posts/{id}`), its copy at the path without that parameter (`/posts`), which
 * the router serves too: OpenAPI has no optional path parameter (each is `required: true`, and
 * its path names it). The copy is placed before the path with the parameter, merged into the
 * path's item where other routes have one; a route declared at that path for the same method
 * keeps its operation. The copies are added to `copies`.
 */
function withOptionalParams (paths: Json, routes: RouteOptions[], copies: Set<Json>): Json {
  const result: Json = {}
  for (const [path, item] of Object.entries(paths) as Array<[string, Json]>) {
    for (const method of METHODS) {
      const optional = item[method] === undefined ? null : OPTIONAL_PARAM.exec(routes[item[method][ROUTE_KEY]]?.url ?? '')
      if (optional === null) continue
      // The parameter is the path's last segment (find-my-way refuses it anywhere else).
      const short = path.replace(/\/[^/]*(\/?)$/, '$1') || '/'
      const name = optional[1].slice(2)
      const copy = structuredClone(item[method]) as Json
      copy.parameters = (copy.parameters as Json[] | undefined)?.filter((p) => !(p.in === 'path' && p.name === name))
      if (copy.parameters === undefined || copy.parameters.length === 0) delete copy.parameters
      copies.add(copy)
      result[short] ??= {}
      result[short][method] ??= copy
    }
    result[path] = { ...result[path], ...item }
  }
  return result
}

/**
 * An event-stream route (its `sse` option) answers `text/event-stream`: beside the JSON a
 * dual or manual route may also answer, or instead of any other content for `sse: 'only'`.
 * (An OperationDoc cannot say it: it has no field for a success response's content.)
 */
function eventStream (operation: Json, stream: SseRoute): void {
  const responses = operation.responses as Json
  const status = Object.keys(responses).find((s) => /^2\d\d$/.test(s)) ?? '200'
  const response = responses[status] ??= { description: 'Default Response' }
  const names = stream.events === undefined ? [] : Object.keys(stream.events).filter((n) => n !== '*')
  const schema = { type: 'string', description: `Server-Sent Events${names.length === 0 ? '' : `: ${names.map((n) => `\`${n}\``).join(', ')}`}.` }
  response.content = { ...(stream.kind === 'only' ? {} : response.content), 'text/event-stream': { schema } }
}

/**
 * Writes the features' share into one operation; a response the route declares itself is
 * left as it is. Headers are defined once, in `components.headers`, and referenced.
 */
function apply (operation: Json, docs: OperationDoc[], components: Json, problem: string): void {
  const refs = (headers: Record<string, HeaderDoc>): Json => Object.fromEntries(Object.entries(headers).map(([name, header]) => {
    components.headers = { ...components.headers, [name]: header }
    return [name, { $ref: `#/components/headers/${name}` }]
  }))
  const notes: string[] = []
  const headers: Record<string, HeaderDoc> = {}
  const byStatus = new Map<string, { lines: string[], headers: Record<string, HeaderDoc>, validation: boolean }>()
  for (const doc of docs) {
    if (doc.security !== undefined) operation.security = doc.security
    notes.push(...doc.notes ?? [])
    Object.assign(headers, doc.headers)
    for (const error of doc.errors ?? []) {
      const d = errorDefinitions[error.code as SpikardErrorCode]
      const status = String(error.status ?? d.status)
      const entry = byStatus.get(status) ?? { lines: [], headers: {}, validation: false }
      entry.lines.push(`${problemResponse(error.code, problem).description as string}${error.note === undefined ? '' : ` Here: ${error.note}.`}`)
      Object.assign(entry.headers, error.headers)
      entry.validation ||= error.code === 'SPK_ERR_VALIDATION'
      byStatus.set(status, entry)
    }
  }
  if (notes.length > 0) operation.description = [operation.description, notes.join(' ')].filter((s) => s !== undefined && s !== '').join('\n\n')
  const responses = operation.responses as Json
  for (const [status, entry] of [...byStatus].sort(([a], [b]) => Number(a) - Number(b))) {
    if (responses[status] !== undefined) continue
    const schema = entry.validation ? { allOf: [{ $ref: problem }, { required: ['errors'] }] } : { $ref: problem }
    responses[status] = {
      description: entry.lines.length === 1 ? entry.lines[0] : entry.lines.map((l) => `- ${l}`).join('\n'),
      ...(Object.keys(entry.headers).length > 0 ? { headers: refs(entry.headers) } : {}),
      content: { [PROBLEM]: { schema } }
    }
  }
  if (Object.keys(headers).length === 0) return
  for (const response of Object.values(responses) as Json[]) {
    // Objects of their own: shared ones would be YAML anchors and aliases in /openapi.yaml.
    if (response.$ref === undefined) response.headers = { ...refs(headers), ...response.headers }
  }
}

/** A problem response, its schema the `$ref` `problem`. */
function problemResponse (code: SpikardErrorCode, problem: string): Json {
  const d = errorDefinitions[code]
  return { description: `\`${PROBLEM_TYPE_BASE}${d.type}\`: ${d.when}`, content: { [PROBLEM]: { schema: { $ref: problem } } } }
}
