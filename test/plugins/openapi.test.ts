/**
 * The OpenAPI document: valid OpenAPI 3.1 (@seriousme/openapi-schema-validator against the 3.1
 * schema, every Schema Object checked as JSON Schema 2020-12, path templates naming each path
 * parameter, unique operationIds) for the demo
 * app, an app using every feature and three realistic APIs, each listing every operation,
 * parameter and schema property its routes declare (found by walking the route definitions);
 * what spikard documents unasked (security, problems, headers, health); the documented problems
 * matching what the server really sends; paths as the router serves them (optional parameters,
 * trailing slashes); the app's own security schemes;
 * operationIds; hidden routes; serving (ETag, 304, YAML,
 * paths, off, production, openapi.auth); info, servers, tags and externalDocs.
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { Writable } from 'node:stream'
import swagger from '@fastify/swagger'
import { Validator } from '@seriousme/openapi-schema-validator'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { Type } from '@sinclair/typebox'
import { parse as parseYaml } from 'yaml'
import Fastify, { type FastifyInstance, type HTTPMethods, type LightMyRequestResponse, type RouteShorthandOptions } from 'fastify'
import { assertOptionsRefused, build } from '../helpers.js'
import { createServer, type CreateServerConfig } from '../../src/server.js'
import { loadConfig } from '../../src/config/load.js'
import spikard from '../../src/spikard.js'
import { documented } from '../../plugins/openapi/options.js'
import { routeColumns } from '../../src/cli/routes.js'
import { errorDefinitions, PROBLEM_TYPE_BASE, SpikardConfigError, type SpikardErrorCode } from '../../src/errors.js'
import { newSecret, secretKey, sign } from './auth-helpers.js'

type Json = Record<string, any>

const ROOT = join(import.meta.dirname, '..', '..')
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string }
const PROBLEM = 'application/problem+json'
const SECRET = newSecret(64)
const API_KEY = 'openapi-test-key-' + newSecret(32)
const AUTH = { jwt: { secret: SECRET }, apiKey: { keys: [{ name: 'client', key: API_KEY }], query: 'api_key' } }
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const ref = (kind: string, name: string): Json => ({ $ref: `#/components/${kind}/${name}` })
/** A problem's line in a response description, as src/errors.ts defines it; `note` for the route's own setting. */
const line = (code: SpikardErrorCode, note?: string): string => `\`${PROBLEM_TYPE_BASE}${errorDefinitions[code].type}\`: ${errorDefinitions[code].when}${note === undefined ? '' : ` Here: ${note}.`}`

// ---------------------------------------------------------------------------------------------
// Building apps and reading their documents

/** A route as data, so the assertions can walk what the routes declare. */
interface RouteDef { method: HTTPMethods, url: string, options?: RouteShorthandOptions }

/** createServer (logs silenced) with the given routes, closed when the test ends. */
async function appWith (t: { after: (fn: () => Promise<void>) => void }, config: Partial<CreateServerConfig>, routes: RouteDef[] = [], setup?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const { app } = await build({ server: { logger: { level: 'silent' } }, ...config }, async (instance) => {
    setup?.(instance)
    for (const r of routes) instance.route({ ...r.options, method: r.method, url: r.url, handler: async (_request, reply) => reply.code(200).send({}) })
  })
  t.after(() => app.close())
  return app
}

/** GET the document: 200, JSON, parsed. */
async function documentOf (app: FastifyInstance, url = '/openapi.json'): Promise<Json> {
  const response = await app.inject({ url })
  assert.equal(response.statusCode, 200, response.body)
  assert.equal(response.headers['content-type'], 'application/json; charset=utf-8')
  return response.json()
}

/** Every operation of the document with its path and method. */
function operations (doc: Json): Array<{ path: string, method: string, operation: Json }> {
  return Object.entries(doc.paths ?? {}).flatMap(([path, item]) => METHODS.filter((m) => (item as Json)[m] !== undefined).map((method) => ({ path, method, operation: (item as Json)[method] })))
}

function operation (doc: Json, method: string, path: string): Json {
  const op = doc.paths?.[path]?.[method.toLowerCase()]
  assert.ok(op !== undefined, `${method} ${path} is in the document (paths: ${Object.keys(doc.paths ?? {}).join(', ')})`)
  return op
}

/** A Fastify URL as an OpenAPI path: `/pets/:id` is `/pets/{id}`. */
const openapiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')

// ---------------------------------------------------------------------------------------------
// Validity

const metaAjv = new Ajv2020({ strict: false, validateFormats: false })

/** Every Schema Object of the document, with where it is. */
function schemaObjects (doc: Json): Array<[string, unknown]> {
  const found: Array<[string, unknown]> = []
  const content = (where: string, c: Json | undefined) => { for (const [type, media] of Object.entries(c ?? {})) if ((media as Json).schema !== undefined) found.push([`${where} ${type}`, (media as Json).schema]) }
  const headers = (where: string, h: Json | undefined) => { for (const [name, header] of Object.entries(h ?? {})) if ((header as Json).schema !== undefined) found.push([`${where} header ${name}`, (header as Json).schema]) }
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) found.push([`components.schemas.${name}`, schema])
  headers('components.headers', doc.components?.headers)
  for (const [name, r] of Object.entries(doc.components?.responses ?? {})) { content(`components.responses.${name}`, (r as Json).content); headers(`components.responses.${name}`, (r as Json).headers) }
  for (const { path, method, operation: op } of operations(doc)) {
    const where = `${method} ${path}`
    for (const p of op.parameters ?? []) found.push([`${where} ${p.in} parameter ${p.name}`, p.schema])
    content(`${where} requestBody`, op.requestBody?.content)
    for (const [status, r] of Object.entries(op.responses ?? {})) { content(`${where} ${status}`, (r as Json).content); headers(`${where} ${status}`, (r as Json).headers) }
  }
  return found
}

/** OpenAPI 3.0's way of saying "or null", which 3.1 replaced with `type: [..., 'null']`. */
function hasNullable (schema: unknown): boolean {
  if (schema === null || typeof schema !== 'object') return false
  if (!Array.isArray(schema) && 'nullable' in schema) return true
  return Object.values(schema).some(hasNullable)
}

/** Valid OpenAPI 3.1: the validator (against its 3.1 schema), each Schema Object a 2020-12 schema, unique operationIds. */
async function assertValid (doc: Json): Promise<void> {
  const validator = new Validator()
  const result = await validator.validate(structuredClone(doc))
  assert.deepEqual(result, { valid: true }, `not valid OpenAPI: ${JSON.stringify(result.errors, null, 2)}`)
  assert.equal(validator.version, '3.1', 'validated as OpenAPI 3.1')
  assert.equal(doc.openapi, '3.1.0')
  // The validator's 3.1 schema leaves Schema Objects unchecked: each must be JSON Schema 2020-12.
  for (const [where, schema] of schemaObjects(doc)) {
    assert.ok(metaAjv.validateSchema(schema as object), `${where} is not a JSON Schema 2020-12: ${metaAjv.errorsText()}`)
    assert.ok(!hasNullable(schema), `${where}: OpenAPI 3.0's "nullable" in a 3.1 document`)
  }
  // What the validator's schema leaves unchecked (OpenAPI 3.1, Paths and Parameter Objects): a
  // path is a template with no query or fragment, naming each of its operation's path
  // parameters once, each `required: true`.
  for (const { path, method, operation: op } of operations(doc)) {
    assert.match(path, /^\/[^?#]*$/, `${method} ${path}: a path template, without "?" or "#"`)
    const inPath = [...path.matchAll(/\{([^{}]+)\}/g)].map((m) => m[1]).sort()
    const params = [...doc.paths[path].parameters ?? [], ...op.parameters ?? []].filter((p: Json) => p.in === 'path')
    assert.deepEqual(params.map((p: Json) => p.name).sort(), inPath, `${method} ${path}: its path parameters are the names in its path`)
    for (const p of params) assert.equal(p.required, true, `${method} ${path}: path parameter ${String(p.name)} is required`)
  }
  const ids = operations(doc).map(({ operation: op }) => op.operationId)
  assert.ok(ids.every((id) => typeof id === 'string' && id !== ''), 'every operation has an operationId')
  assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], 'operationIds are unique')
}

/** Every route the app documents (spikard's record of them, as registered) has its operation. */
function assertEveryRouteDocumented (app: FastifyInstance, doc: Json): void {
  const routes = app.spikard.routes.filter((r) => documented(r))
  assert.ok(routes.length > 0)
  for (const route of routes) for (const method of [route.method].flat()) operation(doc, method, openapiPath(route.url))
}

// ---------------------------------------------------------------------------------------------
// Route definitions against the document

/**
 * The shape of a schema: for each property path (`$.owner.address.city`, `$.lines[].sku`),
 * its types, allowed values, whether required, and its constraints. `$ref`s are followed:
 * on the route side to the app's shared schemas (`Pet#`, `Pet`), on the document side to
 * components.schemas.
 */
type Shape = Map<string, Json>
const FACETS = ['format', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'uniqueItems', 'default', 'description', 'additionalProperties']

function shape (schema: unknown, resolve: (ref: string) => { name: string, schema: Json }): Shape {
  const out: Shape = new Map()
  const visit = (node: unknown, path: string, required: boolean, chain: string[]): void => {
    if (node === null || typeof node !== 'object') return
    let s = node as Json
    if (typeof s.$ref === 'string') {
      const { name, schema: target } = resolve(s.$ref)
      if (chain.includes(name)) { entry(path, required).ref = name; return }
      chain = [...chain, name]
      s = target
    }
    const e = entry(path, required)
    for (const t of [s.type ?? []].flat()) e.types.add(t)
    for (const v of s.enum ?? []) e.values.add(JSON.stringify(v))
    if ('const' in s) e.values.add(JSON.stringify(s.const))
    for (const f of FACETS) if (s[f] !== undefined && typeof s[f] !== 'object') e.facets[f] = s[f]
    for (const branch of [...s.anyOf ?? [], ...s.oneOf ?? [], ...s.allOf ?? []]) visit(branch, path, required, chain)
    for (const [name, prop] of Object.entries(s.properties ?? {})) visit(prop, `${path}.${name}`, (s.required ?? []).includes(name), chain)
    if (s.items !== undefined) visit(s.items, `${path}[]`, false, chain)
    if (typeof s.additionalProperties === 'object') visit(s.additionalProperties, `${path}{}`, false, chain)
  }
  const entry = (path: string, required: boolean): Json => {
    const e = out.get(path) ?? { types: new Set(), values: new Set(), required, facets: {} }
    out.set(path, e)
    return e
  }
  visit(schema, '$', true, [])
  // Comparable: sets sorted into arrays.
  for (const [path, e] of out) out.set(path, { ...e, types: [...e.types].sort(), values: [...e.values].sort() })
  return out
}

/** What the route declares, as plain JSON (TypeBox's symbols dropped). */
const plain = (value: unknown): Json => JSON.parse(JSON.stringify(value ?? {}))

/**
 * The document lists every operation, parameter and schema property the routes declare,
 * with the same types, values and constraints; a shared schema (`$ref: 'Pet#'`) is a `$ref`
 * to its component, never inlined.
 */
function assertDocumentsRoutes (doc: Json, routes: RouteDef[], shared: Record<string, Json>): void {
  const component = (ref: string) => {
    assert.match(ref, /^#\/components\/schemas\//, `a document $ref into components.schemas: ${ref}`)
    const name = ref.slice('#/components/schemas/'.length)
    assert.ok(doc.components.schemas[name] !== undefined, `${ref} resolves`)
    return { name, schema: doc.components.schemas[name] }
  }
  const sharedSchema = (ref: string) => {
    const name = ref.replace(/#$/, '')
    assert.ok(shared[name] !== undefined, `the app's shared schema ${name}`)
    return { name, schema: plain(shared[name]) }
  }
  /** Where the route uses a shared schema by reference, the document references its component. */
  const sameRefs = (declared: unknown, written: unknown, where: string): void => {
    if (declared === null || typeof declared !== 'object' || written === null || typeof written !== 'object') return
    const d = declared as Json
    const w = written as Json
    if (typeof d.$ref === 'string') {
      assert.deepEqual(w, { $ref: `#/components/schemas/${d.$ref.replace(/#$/, '')}` }, `${where}: the shared schema is referenced, not inlined`)
      return
    }
    for (const key of ['items', 'additionalProperties']) sameRefs(d[key], w[key], `${where}.${key}`)
    for (const [name, prop] of Object.entries(d.properties ?? {})) sameRefs(prop, w.properties?.[name], `${where}.${name}`)
    for (const key of ['anyOf', 'oneOf', 'allOf']) (d[key] as unknown[] | undefined)?.forEach((b, i) => sameRefs(b, w[key]?.[i], `${where}.${key}[${i}]`))
  }
  const same = (declared: unknown, written: unknown, where: string, { root = true } = {}) => {
    assert.ok(written !== undefined, `${where} is documented`)
    const expected = shape(declared, sharedSchema)
    const actual = shape(written, component)
    // A response's or parameter's own description moves to the response or parameter object.
    if (!root) { expected.get('$')!.facets.description = undefined; actual.get('$')!.facets.description = undefined }
    assert.deepEqual(Object.fromEntries(actual), Object.fromEntries(expected), `${where}: the document's schema has every declared property, as declared`)
    sameRefs(declared, written, where)
  }

  for (const def of routes) {
    const schema = plain(def.options?.schema)
    const where = `${def.method} ${def.url}`
    const op = operation(doc, def.method, openapiPath(def.url))
    for (const [part, location] of [['params', 'path'], ['querystring', 'query'], ['headers', 'header']] as const) {
      const declared = schema[part] as Json | undefined
      if (declared === undefined) continue
      const resolved = typeof declared.$ref === 'string' ? sharedSchema(declared.$ref).schema : declared
      const names = Object.keys(resolved.properties ?? {})
      assert.ok(names.length > 0, `${where}: the test declares ${part}`)
      for (const name of names) {
        const p = (op.parameters as Json[] | undefined)?.find((x) => x.name === name && x.in === location)
        assert.ok(p !== undefined, `${where}: ${location} parameter ${name} is documented`)
        assert.equal(p.required ?? false, location === 'path' || (resolved.required ?? []).includes(name), `${where}: ${name} required`)
        const prop = resolved.properties[name]
        if (prop.description !== undefined) assert.equal(p.description ?? p.schema.description, prop.description, `${where}: ${name} description`)
        same(prop, p.schema, `${where} ${location} ${name}`, { root: false })
      }
      assert.equal((op.parameters as Json[]).filter((x) => x.in === location).length, names.length, `${where}: no other ${location} parameters`)
    }
    if (schema.body !== undefined) {
      assert.deepEqual(Object.keys(op.requestBody.content), ['application/json'])
      same(schema.body, op.requestBody.content['application/json'].schema, `${where} body`)
    } else {
      assert.equal(op.requestBody, undefined, `${where}: no request body documented`)
    }
    for (const [status, declared] of Object.entries(schema.response ?? {}) as Array<[string, Json]>) {
      const response = op.responses[status]
      assert.ok(response !== undefined, `${where}: response ${status} is documented`)
      if (declared.description !== undefined) assert.equal(response.description, declared.description, `${where} ${status}: description`)
      if (declared.type === 'null') {
        assert.equal(response.content, undefined, `${where} ${status}: no body`)
        continue
      }
      same(declared, response.content?.['application/json']?.schema, `${where} ${status}`, { root: false })
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The realistic apps

/** A pet store: CRUD, enums, nullable fields (3.1's type arrays), shared schemas referring to each other. Plain JSON Schema. */
const petStoreSchemas: Json[] = [
  { $id: 'Category', type: 'object', required: ['id', 'name'], properties: { id: { type: 'integer', minimum: 1 }, name: { type: 'string', minLength: 1 } } },
  { $id: 'Tag', type: 'object', required: ['name'], properties: { name: { type: 'string', maxLength: 32 }, color: { type: ['string', 'null'], pattern: '^#[0-9a-f]{6}$' } } },
  {
    $id: 'NewPet',
    type: 'object',
    required: ['name', 'status'],
    additionalProperties: false,
    properties: {
      name: { type: 'string', minLength: 1, description: 'What the pet answers to.' },
      status: { type: 'string', enum: ['available', 'pending', 'sold'] },
      birthDate: { type: ['string', 'null'], format: 'date' },
      weightKg: { type: ['number', 'null'], exclusiveMinimum: 0 },
      category: { $ref: 'Category#' },
      tags: { type: 'array', items: { $ref: 'Tag#' }, uniqueItems: true },
      photoUrls: { type: 'array', items: { type: 'string', format: 'uri' }, maxItems: 10 }
    }
  },
  {
    $id: 'Pet',
    type: 'object',
    required: ['id', 'name', 'status'],
    properties: {
      id: { type: 'integer' },
      name: { type: 'string' },
      status: { type: 'string', enum: ['available', 'pending', 'sold'] },
      birthDate: { type: ['string', 'null'], format: 'date' },
      category: { anyOf: [{ $ref: 'Category#' }, { type: 'null' }] },
      tags: { type: 'array', items: { $ref: 'Tag#' } }
    }
  },
  { $id: 'PetPage', type: 'object', required: ['items', 'total'], properties: { items: { type: 'array', items: { $ref: 'Pet#' } }, total: { type: 'integer' }, next: { type: ['string', 'null'] } } }
]
const petId = { type: 'object', required: ['petId'], properties: { petId: { type: 'integer', minimum: 1, description: 'The pet\'s id.' } } }
const petStoreRoutes: RouteDef[] = [
  {
    method: 'GET',
    url: '/pets',
    options: {
      schema: {
        summary: 'List pets',
        tags: ['pets'],
        querystring: {
          type: 'object',
          properties: {
            status: { type: 'string', enum: ['available', 'pending', 'sold'], description: 'Only pets with this status.' },
            limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            cursor: { type: ['string', 'null'] }
          }
        },
        response: { 200: { $ref: 'PetPage#' } }
      }
    }
  },
  { method: 'POST', url: '/pets', options: { schema: { summary: 'Add a pet', tags: ['pets'], body: { $ref: 'NewPet#' }, response: { 201: { $ref: 'Pet#' } } } } },
  { method: 'GET', url: '/pets/:petId', options: { schema: { tags: ['pets'], params: petId, response: { 200: { $ref: 'Pet#' }, 404: { description: 'No such pet.', type: 'object', properties: { message: { type: 'string' } } } } } } },
  { method: 'PUT', url: '/pets/:petId', options: { schema: { tags: ['pets'], params: petId, body: { $ref: 'NewPet#' }, response: { 200: { $ref: 'Pet#' } } } } },
  {
    method: 'PATCH',
    url: '/pets/:petId',
    options: {
      schema: {
        tags: ['pets'],
        params: petId,
        body: { type: 'object', minProperties: 1, properties: { name: { type: 'string' }, status: { type: 'string', enum: ['available', 'pending', 'sold'] }, tags: { type: ['array', 'null'], items: { $ref: 'Tag#' } } } },
        response: { 200: { $ref: 'Pet#' } }
      }
    }
  },
  { method: 'DELETE', url: '/pets/:petId', options: { schema: { tags: ['pets'], params: petId, response: { 204: { type: 'null', description: 'Deleted.' } } } } },
  { method: 'GET', url: '/store/inventory', options: { schema: { tags: ['store'], response: { 200: { type: 'object', description: 'Pets per status.', additionalProperties: { type: 'integer', minimum: 0 } } } } } },
  {
    method: 'GET',
    url: '/categories/:categoryId/pets',
    options: {
      schema: {
        tags: ['store'],
        params: { type: 'object', properties: { categoryId: { type: 'integer' } } },
        headers: { type: 'object', required: ['x-tenant'], properties: { 'x-tenant': { type: 'string', minLength: 2 } } },
        response: { 200: { type: 'array', items: { $ref: 'Pet#' } } }
      }
    }
  }
]

/** A user-management API: bearer JWT and API keys, a public login. TypeBox. */
const Role = Type.Union([Type.Literal('admin'), Type.Literal('member'), Type.Literal('viewer')], { description: 'What the user may do.' })
const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String({ format: 'email' }),
  displayName: Type.Union([Type.String({ maxLength: 64 }), Type.Null()]),
  role: Role,
  createdAt: Type.String({ format: 'date-time' }),
  lastLoginAt: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()]))
}, { $id: 'User' })
const userId = Type.Object({ id: Type.String({ format: 'uuid', description: 'The user\'s id.' }) })
const userRoutes: RouteDef[] = [
  {
    method: 'POST',
    url: '/auth/login',
    options: {
      config: { auth: false },
      schema: {
        tags: ['auth'],
        body: Type.Object({ email: Type.String({ format: 'email' }), password: Type.String({ minLength: 8 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ token: Type.String(), expiresIn: Type.Integer({ description: 'Seconds.' }) }) }
      }
    }
  },
  {
    method: 'GET',
    url: '/users',
    options: {
      schema: {
        tags: ['users'],
        querystring: Type.Object({ page: Type.Optional(Type.Integer({ minimum: 1, default: 1 })), role: Type.Optional(Role), q: Type.Optional(Type.String()) }),
        response: { 200: Type.Object({ users: Type.Array(Type.Ref(User)), page: Type.Integer() }) }
      }
    }
  },
  {
    method: 'POST',
    url: '/users',
    options: {
      config: { auth: { claims: { role: 'admin' } } },
      schema: {
        tags: ['users'],
        body: Type.Object({ email: Type.String({ format: 'email' }), role: Role, displayName: Type.Optional(Type.Union([Type.String(), Type.Null()])) }),
        response: { 201: Type.Ref(User) }
      }
    }
  },
  { method: 'GET', url: '/users/me', options: { config: { auth: 'jwt' }, schema: { tags: ['users'], response: { 200: Type.Ref(User) } } } },
  { method: 'GET', url: '/users/:id', options: { schema: { tags: ['users'], params: userId, response: { 200: Type.Ref(User) } } } },
  {
    method: 'PATCH',
    url: '/users/:id',
    options: { schema: { tags: ['users'], params: userId, body: Type.Partial(Type.Object({ displayName: Type.Union([Type.String(), Type.Null()]), role: Role })), response: { 200: Type.Ref(User) } } }
  },
  { method: 'DELETE', url: '/users/:id', options: { config: { auth: { claims: { role: ['admin', 'owner'] } } }, schema: { tags: ['users'], params: userId, response: { 204: Type.Null() } } } },
  {
    method: 'GET',
    url: '/users/:id/api-keys',
    options: {
      config: { auth: 'apiKey' },
      schema: { tags: ['users'], params: userId, response: { 200: Type.Array(Type.Object({ name: Type.String(), fingerprint: Type.String(), lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]) })) } }
    }
  }
]

/** An orders API whose schemas nest objects in arrays in objects, 4 to 6 levels deep. Plain JSON Schema and TypeBox. */
const Money = Type.Object({ amount: Type.Integer({ description: 'In cents.' }), currency: Type.String({ pattern: '^[A-Z]{3}$' }) })
const OrderTB = Type.Object({
  id: Type.String(),
  customer: Type.Object({
    name: Type.String(),
    addresses: Type.Array(Type.Object({
      kind: Type.Union([Type.Literal('billing'), Type.Literal('shipping')]),
      lines: Type.Array(Type.String()),
      geo: Type.Optional(Type.Object({ lat: Type.Number({ minimum: -90, maximum: 90 }), lng: Type.Number({ minimum: -180, maximum: 180 }), accuracy: Type.Object({ meters: Type.Number(), source: Type.Union([Type.Literal('gps'), Type.Literal('ip')]) }) }))
    }))
  }),
  lines: Type.Array(Type.Object({
    sku: Type.String(),
    quantity: Type.Integer({ minimum: 1 }),
    price: Money,
    product: Type.Object({
      dimensions: Type.Object({ widthMm: Type.Integer(), heightMm: Type.Integer(), depthMm: Type.Integer() }),
      variants: Type.Array(Type.Object({
        code: Type.String(),
        attributes: Type.Array(Type.Object({ name: Type.String(), value: Type.Union([Type.String(), Type.Number(), Type.Boolean()]) }))
      }))
    })
  })),
  totals: Type.Object({ net: Money, tax: Money, gross: Money })
})
const shipmentJson = {
  type: 'object',
  required: ['carrier', 'parcels'],
  properties: {
    carrier: { type: 'string', enum: ['dhl', 'ups', 'postnl'] },
    parcels: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['items'],
        properties: {
          tracking: { type: ['string', 'null'] },
          items: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                sku: { type: 'string' },
                serials: { type: 'array', items: { type: 'object', properties: { value: { type: 'string' }, checks: { type: 'array', items: { type: 'object', properties: { at: { type: 'string', format: 'date-time' }, by: { type: 'object', properties: { name: { type: 'string' }, station: { type: 'integer' } } } } } } } } }
              }
            }
          }
        }
      }
    },
    events: { type: 'object', additionalProperties: { type: 'array', items: { type: 'object', properties: { at: { type: 'string' }, where: { type: 'object', properties: { city: { type: 'string' } } } } } } }
  }
}
const orderRoutes: RouteDef[] = [
  { method: 'POST', url: '/orders', options: { schema: { body: Type.Omit(OrderTB, ['id']), response: { 201: OrderTB } } } },
  { method: 'GET', url: '/orders/:orderId', options: { schema: { params: Type.Object({ orderId: Type.String() }), response: { 200: OrderTB } } } },
  { method: 'PUT', url: '/orders/:orderId/shipment', options: { schema: { params: { type: 'object', properties: { orderId: { type: 'string' } } }, body: shipmentJson, response: { 200: shipmentJson } } } },
  { method: 'GET', url: '/orders', options: { schema: { querystring: { type: 'object', properties: { status: { type: 'array', items: { type: 'string', enum: ['open', 'shipped'] } }, from: { type: 'string', format: 'date' } } }, response: { 200: Type.Array(OrderTB) } } } }
]

/** The depth of a schema's deepest property path (`$.a[].b` is 2). */
const depth = (s: Shape): number => Math.max(...[...s.keys()].map((p) => p.split('.').length - 1))

// ---------------------------------------------------------------------------------------------
// Dereferencing and checking real responses against the document

/** A schema with every `#/components/schemas/...` reference replaced by the schema it names. */
function deref (schema: unknown, doc: Json, chain: string[] = []): unknown {
  if (Array.isArray(schema)) return schema.map((s) => deref(s, doc, chain))
  if (schema === null || typeof schema !== 'object') return schema
  const { $ref, ...rest } = schema as Json
  if (typeof $ref === 'string') {
    const name = $ref.replace('#/components/schemas/', '')
    assert.ok(doc.components.schemas[name] !== undefined, `${$ref} resolves`)
    assert.ok(!chain.includes(name), `${$ref} is not recursive`)
    const target = deref(doc.components.schemas[name], doc, [...chain, name])
    return Object.keys(rest).length === 0 ? target : { allOf: [target, deref(rest, doc, chain)] }
  }
  return Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, deref(v, doc, chain)]))
}

const responseAjv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, formats: { uri: (s: string) => URL.canParse(s) } })

/** The documented schema of a response's media type, resolved and compiled. */
function documentedValidator (doc: Json, response: Json, media = PROBLEM) {
  const resolved = response.$ref === undefined ? response : doc.components.responses[response.$ref.replace('#/components/responses/', '')]
  const schema = resolved?.content?.[media]?.schema
  assert.ok(schema !== undefined, `a ${media} schema is documented`)
  return { response: resolved as Json, validate: responseAjv.compile(deref(schema, doc) as object) }
}

/** The real response is what the document says: its status is documented, its body matches the schema, the documented headers are sent. */
function assertAsDocumented (doc: Json, responses: Json, real: LightMyRequestResponse, where: string): void {
  const documentedResponse = responses[String(real.statusCode)]
  assert.ok(documentedResponse !== undefined, `${where}: ${real.statusCode} is documented (${Object.keys(responses).join(', ')}); body ${real.body}`)
  const media = String(real.headers['content-type']).split(';')[0]
  const { response, validate } = documentedValidator(doc, documentedResponse, media)
  assert.ok(validate(real.json()), `${where}: ${real.body} does not match the documented schema: ${responseAjv.errorsText(validate.errors)}`)
  for (const name of Object.keys(response.headers ?? {})) assert.ok(real.headers[name.toLowerCase()] !== undefined, `${where}: documented header ${name} is sent`)
}

async function bearer (claims: Record<string, unknown> = {}): Promise<Record<string, string>> {
  return { authorization: `Bearer ${await sign(secretKey(SECRET), { alg: 'HS256' }, claims)}` }
}

/** A Fastify instance set up by `setup` fails at ready() with exactly `problem`, and is closed. */
async function assertReadyRefused (setup: (app: FastifyInstance) => void, problem: string): Promise<void> {
  const app = Fastify({ logger: false })
  try {
    setup(app)
    await assert.rejects(async () => { await app.ready() }, (error: Error) => {
      assert.ok(error instanceof SpikardConfigError, error.message)
      assert.deepEqual(error.problems, [problem])
      return true
    })
  } finally {
    await app.close()
  }
}

// =============================================================================================

describe('valid OpenAPI 3.1', () => {
  test('the validator refuses what is not OpenAPI 3.1 (so passing means something)', async () => {
    const validator = new Validator()
    assert.equal((await validator.validate({ openapi: '3.1.0', info: { title: 'x' }, paths: {} })).valid, false)
    assert.equal((await validator.validate({ openapi: '3.1.0', info: { title: 'x', version: '1' }, paths: { '/x': { get: { responses: { 200: { content: {} } } } } } })).valid, false)
    assert.equal((await validator.validate({ openapi: '3.1.0', info: { title: 'x', version: '1' }, paths: { '/x': { get: { responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Missing' } } } } } } } } })).valid, false)
    await assert.rejects(assertValid({ openapi: '3.1.0', info: { title: 'x', version: '1' }, components: { schemas: { A: { type: 'string', nullable: true } } } }), /nullable/)
    await assert.rejects(assertValid({ openapi: '3.1.0', info: { title: 'x', version: '1' }, components: { schemas: { A: { type: 5 } } } }), /JSON Schema 2020-12/)
    const path = (p: string, parameters: Json[]): Json => ({ openapi: '3.1.0', info: { title: 'x', version: '1' }, paths: { [p]: { get: { operationId: 'x', parameters, responses: { 200: { description: 'ok' } } } } } })
    const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } }
    await assert.rejects(assertValid(path('/posts/{id}?', [id])), /without "\?"/)
    await assert.rejects(assertValid(path('/posts', [id])), /its path parameters are the names in its path/)
    await assert.rejects(assertValid(path('/posts/{id}', [])), /its path parameters are the names in its path/)
  })

  test('the demo app (examples/spikard.config.yaml and its routes module), built as the CLI builds it', async (t) => {
    const { file, config } = loadConfig({ file: join(ROOT, 'examples', 'spikard.config.yaml') })
    const sink = new Writable({ write (_chunk, _encoding, callback) { callback() } })
    const app = await createServer(config, { baseDir: dirname(file), logStream: sink })
    t.after(() => app.close())
    const doc = await documentOf(app)
    await assertValid(doc)
    assertEveryRouteDocumented(app, doc)
    // The title the demo's config gives, the version from the package.json beside it.
    assert.equal(doc.info.title, (config.openapi as Json | undefined)?.info?.title ?? PKG.name)
    assert.equal(doc.info.version, PKG.version)
    // The demo's auth: both schemes, and its public routes say so.
    assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['apiKey', 'bearerAuth'])
    assert.deepEqual(operation(doc, 'GET', '/hello').security, [])
    await assertValid(parseYaml((await app.inject({ url: '/openapi.yaml' })).body))
  })

  test('an app with every feature: auth (JWT, API key in the query too), rate limits, per-route body limits and timeouts, compression, health', async (t) => {
    const routes: RouteDef[] = [
      { method: 'GET', url: '/things', options: { schema: { querystring: { type: 'object', properties: { q: { type: 'string' } } }, response: { 200: { type: 'array', items: { type: 'string' } } } } } },
      { method: 'POST', url: '/things', options: { bodyLimit: 4096, config: { rateLimit: { max: 5, timeWindow: '10s' } }, schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } } },
      { method: 'PUT', url: '/things/:id', options: { handlerTimeout: 2000, config: { auth: { claims: { scope: ['write', 'admin'] } } } } },
      { method: 'GET', url: '/slow', options: { handlerTimeout: 90_000, config: { auth: 'apiKey', rateLimit: false } } },
      { method: 'GET', url: '/public', options: { config: { auth: false } } },
      { method: 'GET', url: '/archive.tar', options: { compress: false } as RouteShorthandOptions }
    ]
    const app = await appWith(t, { auth: AUTH, rateLimit: { max: 100, timeWindow: '1m' }, bodyLimit: { max: '256kb' }, timeout: { handler: '5s' }, compression: true, health: true }, routes)
    const doc = await documentOf(app)
    await assertValid(doc)
    assertEveryRouteDocumented(app, doc)
    assertDocumentsRoutes(doc, routes.filter((r) => r.options?.schema !== undefined), {})
    assert.deepEqual(Object.keys(doc.components.securitySchemes), ['bearerAuth', 'apiKey', 'apiKeyQuery'])
    assert.match(operation(doc, 'POST', '/things').responses['413'].description, /limit 4kb/)
    assert.match(operation(doc, 'POST', '/things').responses['429'].description, /limit 5\/10s/)
    assert.match(operation(doc, 'GET', '/things').responses['503'].description, /handler-timeout.*after 5s/s)
    assert.match(operation(doc, 'PUT', '/things/{id}').responses['403'].description, /`scope` one of `write`, `admin`/)
    assert.deepEqual(operation(doc, 'PUT', '/things/{id}').security, [{ bearerAuth: [] }])
    assert.equal(operation(doc, 'GET', '/slow').responses['429'], undefined)
    assert.deepEqual(operation(doc, 'GET', '/slow').security, [{ apiKey: [] }, { apiKeyQuery: [] }])
    assert.deepEqual(operation(doc, 'GET', '/livez').tags, ['health'])
    // The document itself is served compressed to a client that asks.
    const gz = await app.inject({ url: '/openapi.json', headers: { 'accept-encoding': 'gzip' } })
    assert.equal(gz.headers['content-encoding'], 'gzip')
  })

  // The timeout feature's onRoute hook clears route.handlerTimeout (spikard times the route, not
  // Fastify), and the route object is the one @fastify/swagger and spikard.routes keep; by the
  // time the document is built the route's own timeout is gone and timeout.handler is documented.
  test('a route\'s own handlerTimeout is documented', async (t) => {
    const app = await appWith(t, { timeout: { handler: '5s' } }, [
      { method: 'GET', url: '/default' },
      { method: 'PUT', url: '/quick', options: { handlerTimeout: 2000 } },
      { method: 'GET', url: '/slow', options: { handlerTimeout: 90_000 } }
    ])
    const doc = await documentOf(app)
    for (const [method, path, after] of [['GET', '/default', '5s'], ['PUT', '/quick', '2s'], ['GET', '/slow', '90s']]) {
      assert.equal(operation(doc, method, path).responses['503'].description, `- ${line('SPK_ERR_SHUTTING_DOWN')}\n- ${line('SPK_ERR_HANDLER_TIMEOUT', `after ${after}`)}`)
    }
  })

  test('the YAML document is valid too', async (t) => {
    const app = await appWith(t, { auth: AUTH, rateLimit: { max: 10 } }, petStoreRoutes, (a) => { for (const s of petStoreSchemas) a.addSchema(s) })
    await assertValid(parseYaml((await app.inject({ url: '/openapi.yaml' })).body))
  })
})

describe('paths as the router serves them', () => {
  test('a route whose last parameter is optional (/posts/:id?) is documented at both its paths: /posts without the parameter, /posts/{id} with it, required', async (t) => {
    const app = await appWith(t, {}, [
      { method: 'GET', url: '/posts/:id?', options: { schema: { params: { type: 'object', properties: { id: { type: 'integer' } } } } } },
      { method: 'POST', url: '/posts' },
      { method: ['PUT', 'DELETE'] as unknown as HTTPMethods, url: '/tags/:name?' },
      { method: 'GET', url: '/files/:dir/:name?/', options: { config: { operationId: 'getFile' } } },
      { method: 'GET', url: '/:lang?' }
    ])
    // The router serves each route at both paths.
    for (const [method, url] of [['GET', '/posts'], ['GET', '/posts/7'], ['PUT', '/tags'], ['DELETE', '/tags/x'], ['GET', '/files/a/'], ['GET', '/files/a/b/'], ['GET', '/'], ['GET', '/en']]) {
      assert.equal((await app.inject({ method: method as HTTPMethods, url })).statusCode, 200, `${method} ${url}`)
    }
    const doc = await documentOf(app)
    await assertValid(doc)
    const summary = Object.fromEntries(operations(doc).map(({ path, method, operation: op }) => [`${method} ${path}`, [op.operationId, ...(op.parameters ?? []).map((p: Json) => `${String(p.in)} ${String(p.name)}`)]]))
    assert.deepEqual(summary, {
      'get /livez': ['getLivez'],
      'get /readyz': ['getReadyz'],
      'get /posts': ['getPosts'],
      'post /posts': ['postPosts'],
      'get /posts/{id}': ['getPostsById', 'path id'],
      'put /tags': ['putTags'],
      'delete /tags': ['deleteTags'],
      'put /tags/{name}': ['putTagsByName', 'path name'],
      'delete /tags/{name}': ['deleteTagsByName', 'path name'],
      'get /files/{dir}/': ['getFile2', 'path dir'],
      'get /files/{dir}/{name}/': ['getFile', 'path dir', 'path name'],
      'get /': ['get'],
      'get /{lang}': ['getByLang', 'path lang']
    })
    // The path without the parameter comes first, beside the other routes at it.
    assert.deepEqual(Object.keys(doc.paths).slice(2, 4), ['/posts', '/posts/{id}'])
    assert.deepEqual(Object.keys(doc.paths['/posts']), ['get', 'post'])
    assert.deepEqual(operation(doc, 'GET', '/posts/{id}').parameters, [{ schema: { type: 'integer' }, in: 'path', name: 'id', required: true }])
    // Both are the route's operations, with spikard's share: its params schema validates both.
    for (const path of ['/posts', '/posts/{id}']) assert.deepEqual(Object.keys(operation(doc, 'GET', path).responses).sort(), ['200', '400', '422', '500', '503'], path)
    assert.equal(JSON.stringify(doc).includes('x-spikard-route'), false)
  })

  test('trailing slashes: /v1/ and /v1 are two paths to a router that tells them apart, one to a router that ignores the slash (routerOptions or the top-level option), each operation once', async (t) => {
    const ok = async () => ({})
    /** Fastify with `options`, spikard, and the routes; each operation as `method path: operationId`. */
    const documented = async (options: Json, routes: (app: FastifyInstance) => void): Promise<[FastifyInstance, string[]]> => {
      const app = Fastify({ logger: false, ...options })
      t.after(() => app.close())
      await app.register(spikard, { health: false })
      routes(app)
      const doc = await documentOf(app)
      await assertValid(doc)
      return [app, operations(doc).map(({ path, method, operation: op }) => `${method} ${path}: ${String(op.operationId)}`)]
    }
    // Apart: two routes, two paths. A prefix's '/' route, which Fastify serves at /v2 and /v2/,
    // is documented once, at /v2, beside another route there (/v3/ and /v3// for the prefix /v3/).
    const [apart, two] = await documented({}, (app) => {
      app.get('/v1/', async () => ({ slash: true }))
      app.get('/v1', async () => ({ slash: false }))
      app.post('/v1', ok)
      app.register(async (child) => { child.get('/', ok) }, { prefix: '/v2' })
      app.post('/v2', ok)
      app.register(async (child) => { child.get('/', ok) }, { prefix: '/v3/' })
    })
    assert.deepEqual(two, ['get /v1/: getV1', 'get /v1: getV12', 'post /v1: postV1', 'get /v2: getV2', 'post /v2: postV2', 'get /v3/: getV3'])
    for (const url of ['/v2', '/v2/', '/v3/', '/v3//']) assert.equal((await apart.inject({ url })).statusCode, 200, url)
    assert.deepEqual((await apart.inject({ url: '/v1/' })).json(), { slash: true })
    assert.deepEqual((await apart.inject({ url: '/v1' })).json(), { slash: false })
    // Ignored: GET /v1/ and POST /v1 are one path, as the router matches both at either;
    // with ignoreDuplicateSlashes, /a//b is /a/b.
    for (const options of [{ routerOptions: { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true } }, { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true }]) {
      const [ignoring, one] = await documented(options, (app) => {
        app.get('/v1/', ok)
        app.post('/v1', ok)
        app.get('/a//b/', ok)
        app.register(async (child) => { child.get('/', ok); child.get('/things/:id?/', ok) }, { prefix: '/v2/' })
      })
      assert.deepEqual(one, ['get /v1: getV1', 'post /v1: postV1', 'get /a/b: getAB', 'get /v2: getV2', 'get /v2/things: getV2Things', 'get /v2/things/{id}: getV2ThingsById'], JSON.stringify(options))
      for (const [method, url] of [['GET', '/v1'], ['GET', '/v1/'], ['POST', '/v1'], ['POST', '/v1/'], ['GET', '/a/b'], ['GET', '/v2'], ['GET', '/v2/things'], ['GET', '/v2/things/7/']]) {
        assert.equal((await ignoring.inject({ method: method as HTTPMethods, url })).statusCode, 200, `${JSON.stringify(options)} ${method} ${url}`)
      }
    }
  })
})

describe('realistic apps: every operation, parameter and property the routes declare', () => {
  test('a pet store: CRUD, enums, nullable fields as type arrays, shared schemas as referenced components', async (t) => {
    const app = await appWith(t, {}, petStoreRoutes, (a) => { for (const s of petStoreSchemas) a.addSchema(s) })
    const doc = await documentOf(app)
    await assertValid(doc)
    assertEveryRouteDocumented(app, doc)
    const shared = Object.fromEntries(petStoreSchemas.map((s) => [s.$id, s]))
    assertDocumentsRoutes(doc, petStoreRoutes, shared)
    // Each shared schema is a component under its $id, with every property, and refers to the others by $ref.
    for (const s of petStoreSchemas) {
      const component = doc.components.schemas[s.$id]
      assert.ok(component !== undefined, `components.schemas.${s.$id}`)
      assert.equal(component.$id, undefined, 'no $id left to change the base URI of the references inside it')
      assert.deepEqual(Object.fromEntries(shape(component, (r) => ({ name: r, schema: doc.components.schemas[r.replace('#/components/schemas/', '')] }))),
        Object.fromEntries(shape(s, (r) => ({ name: r, schema: shared[r.replace(/#$/, '')] }))), `components.schemas.${s.$id}`)
    }
    assert.deepEqual(doc.components.schemas.NewPet.properties.category, ref('schemas', 'Category'))
    assert.deepEqual(doc.components.schemas.NewPet.properties.tags.items, ref('schemas', 'Tag'))
    assert.deepEqual(doc.components.schemas.PetPage.properties.items.items, ref('schemas', 'Pet'))
    assert.deepEqual(doc.components.schemas.Pet.properties.category, { anyOf: [ref('schemas', 'Category'), { type: 'null' }] })
    // Nullable the 3.1 way.
    assert.deepEqual(doc.components.schemas.Pet.properties.birthDate, { type: ['string', 'null'], format: 'date' })
    assert.deepEqual(operation(doc, 'GET', '/pets').parameters.find((p: Json) => p.name === 'cursor').schema, { type: ['string', 'null'] })
    // Enums.
    assert.deepEqual(operation(doc, 'GET', '/pets').parameters.find((p: Json) => p.name === 'status').schema.enum, ['available', 'pending', 'sold'])
    assert.deepEqual(doc.components.schemas.Pet.properties.status.enum, ['available', 'pending', 'sold'])
    // CRUD: each method on its path.
    assert.deepEqual(Object.keys(doc.paths['/pets/{petId}']).sort(), ['delete', 'get', 'patch', 'put'])
    assert.deepEqual(Object.keys(doc.paths['/pets']).sort(), ['get', 'post'])
  })

  test('a user-management API: bearer JWT and API keys, a public login', async (t) => {
    const app = await appWith(t, { auth: { jwt: { secret: SECRET }, apiKey: { keys: [API_KEY] } } }, userRoutes, (a) => { a.addSchema(User) })
    const doc = await documentOf(app)
    await assertValid(doc)
    assertEveryRouteDocumented(app, doc)
    assertDocumentsRoutes(doc, userRoutes, { User })
    assert.deepEqual(doc.components.securitySchemes, {
      bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT signed with HS256, in `Authorization: Bearer <token>`.' },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An API key in the `x-api-key` header.' }
    })
    assert.deepEqual(doc.security, [{ bearerAuth: [] }, { apiKey: [] }])
    const login = operation(doc, 'POST', '/auth/login')
    assert.deepEqual(login.security, [], 'the login is public')
    assert.equal(login.responses['401'], undefined, 'no 401 on the login')
    assert.equal(login.responses['403'], undefined)
    for (const def of userRoutes.filter((r) => (r.options?.config as Json | undefined)?.auth !== false)) {
      const op = operation(doc, def.method, openapiPath(def.url))
      const where = `${def.method} ${def.url}`
      assert.ok(op.security.length > 0, `${where}: protected`)
      for (const requirement of op.security) for (const name of Object.keys(requirement)) assert.ok(doc.components.securitySchemes[name] !== undefined, `${where}: ${name} is a scheme`)
      assert.match(op.responses['401'].description, /unauthorized/, `${where}: 401 documented`)
      assert.deepEqual(op.responses['401'].headers['WWW-Authenticate'], ref('headers', 'WWW-Authenticate'))
      assert.deepEqual(op.responses['401'].content, { [PROBLEM]: { schema: ref('schemas', 'Problem') } })
    }
    assert.deepEqual(operation(doc, 'GET', '/users').security, [{ bearerAuth: [] }, { apiKey: [] }])
    assert.deepEqual(operation(doc, 'GET', '/users/me').security, [{ bearerAuth: [] }])
    assert.deepEqual(operation(doc, 'GET', '/users/{id}/api-keys').security, [{ apiKey: [] }])
    assert.deepEqual(operation(doc, 'POST', '/users').security, [{ bearerAuth: [] }], 'claims need a JWT')
    assert.match(operation(doc, 'DELETE', '/users/{id}').responses['403'].description, /`role` one of `admin`, `owner`/)
    assert.equal(operation(doc, 'GET', '/users').responses['403'], undefined)
  })

  test('an orders API whose schemas nest objects in arrays in objects, 4 levels and more', async (t) => {
    const app = await appWith(t, {}, orderRoutes)
    const doc = await documentOf(app)
    await assertValid(doc)
    assertEveryRouteDocumented(app, doc)
    assertDocumentsRoutes(doc, orderRoutes, {})
    const order = operation(doc, 'GET', '/orders/{orderId}').responses['200'].content['application/json'].schema
    const deepest = shape(order, () => assert.fail('no references here'))
    assert.ok(depth(deepest) >= 5, `nested ${depth(deepest)} levels`)
    assert.ok(deepest.has('$.lines[].product.variants[].attributes[].value'))
    assert.deepEqual(deepest.get('$.customer.addresses[].geo.accuracy.source')?.values, ['"gps"', '"ip"'])
    const shipment = shape(operation(doc, 'PUT', '/orders/{orderId}/shipment').requestBody.content['application/json'].schema, () => assert.fail('no references here'))
    assert.deepEqual(shipment.get('$.parcels[].items[].serials[].checks[].by.station')?.types, ['integer'])
    assert.deepEqual(shipment.get('$.events{}[].where.city')?.types, ['string'])
  })

  test('the walk sees a property missing from the document (so passing means something)', () => {
    const doc = {
      components: { schemas: {} },
      paths: { '/x': { post: { requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { a: { type: 'object', properties: {} } } } } } }, responses: {} } } }
    }
    assert.throws(() => assertDocumentsRoutes(doc, [{ method: 'POST', url: '/x', options: { schema: { body: { type: 'object', properties: { a: { type: 'object', properties: { b: { type: 'string' } } } } } } } }], {}), /\$\.a\.b/)
  })
})

describe('what spikard documents unasked', () => {
  const only200 = { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }
  const routes: RouteDef[] = [
    { method: 'GET', url: '/public', options: { config: { auth: false }, schema: only200 } },
    { method: 'GET', url: '/any', options: { schema: only200 } },
    { method: 'GET', url: '/jwt-only', options: { config: { auth: 'jwt' }, schema: only200 } },
    { method: 'DELETE', url: '/admin/:id', options: { config: { auth: { claims: { role: 'admin' } } }, schema: { ...only200, params: { type: 'object', properties: { id: { type: 'string' } } } } } },
    { method: 'GET', url: '/unlimited', options: { config: { rateLimit: false }, schema: only200 } },
    { method: 'POST', url: '/upload', options: { bodyLimit: 2048, schema: { ...only200, body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } } },
    { method: 'POST', url: '/raw', options: { schema: only200 } },
    {
      method: 'GET',
      url: '/mine',
      options: {
        schema: {
          querystring: { type: 'object', properties: { q: { type: 'string' } } },
          response: { 200: only200.response[200], 404: { description: 'Their own not-found.', type: 'object', properties: { reason: { type: 'string' } } }, 422: { description: 'Their own validation answer.', type: 'object', properties: { why: { type: 'string' } } } }
        }
      }
    }
  ]
  const config: Partial<CreateServerConfig> = { auth: AUTH, rateLimit: { max: 100, timeWindow: '1m' } }

  test('security schemes, the global requirement and each route\'s own', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    await assertValid(doc)
    assert.deepEqual(doc.components.securitySchemes, {
      bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'A JWT signed with HS256, in `Authorization: Bearer <token>`.' },
      apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'An API key in the `x-api-key` header.' },
      apiKeyQuery: { type: 'apiKey', in: 'query', name: 'api_key', description: 'An API key in the `api_key` query parameter (for clients that cannot set headers).' }
    })
    assert.deepEqual(doc.security, [{ bearerAuth: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
    assert.deepEqual(operation(doc, 'GET', '/public').security, [])
    assert.match(operation(doc, 'GET', '/public').description, /Public: no credentials needed\./)
    assert.deepEqual(operation(doc, 'GET', '/any').security, [{ bearerAuth: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
    assert.deepEqual(operation(doc, 'GET', '/jwt-only').security, [{ bearerAuth: [] }])
    assert.deepEqual(operation(doc, 'DELETE', '/admin/{id}').security, [{ bearerAuth: [] }])
    for (const path of ['/any', '/jwt-only']) {
      const r = operation(doc, 'GET', path).responses
      assert.equal(r['401'].description, line('SPK_ERR_UNAUTHORIZED'))
      assert.equal(r['403'], undefined, `${path}: no claims, no 403`)
    }
    assert.equal(operation(doc, 'GET', '/public').responses['401'], undefined)
    const admin = operation(doc, 'DELETE', '/admin/{id}')
    assert.equal(admin.responses['403'].description, line('SPK_ERR_FORBIDDEN', 'the token lacks a required claim: `role` equal to `admin`'))
    assert.match(admin.description, /Requires a JWT with the claims `role` equal to `admin`\./)
    assert.deepEqual(doc.components.headers['WWW-Authenticate'], { description: 'The challenge: the schemes this route accepts.', schema: { type: 'string' } })
  })

  test('a route with several methods: each method\'s operation gets its security, problems and headers, not only the first', async (t) => {
    const doc = await documentOf(await appWith(t, config, [
      { method: ['GET', 'DELETE'] as unknown as HTTPMethods, url: '/public-pair', options: { config: { auth: false }, schema: only200 } },
      { method: ['PUT', 'POST'] as unknown as HTTPMethods, url: '/pair', options: { config: { auth: 'jwt' }, schema: { ...only200, body: { type: 'object' } } } }
    ]))
    await assertValid(doc)
    const [get, del] = [operation(doc, 'GET', '/public-pair'), operation(doc, 'DELETE', '/public-pair')]
    assert.deepEqual(del.security, [], 'the public route\'s DELETE is public too, not under the global requirement')
    assert.deepEqual(Object.keys(del.responses), Object.keys(get.responses))
    assert.equal(del.description, get.description)
    assert.deepEqual(del.responses['200'].headers, get.responses['200'].headers)
    const [put, post] = [operation(doc, 'PUT', '/pair'), operation(doc, 'POST', '/pair')]
    for (const op of [put, post]) {
      assert.deepEqual(op.security, [{ bearerAuth: [] }], op.operationId)
      assert.deepEqual(Object.keys(op.responses).sort(), ['200', '400', '401', '413', '415', '422', '429', '500', '503'], op.operationId)
      assert.equal(op['x-spikard-route'], undefined, 'the marker is removed from every operation')
    }
    assert.notEqual(put, post)
  })

  test('a GET and POST route: only the POST documents the body problems (Fastify reads no body on a GET)', async (t) => {
    const app = await appWith(t, { ...config, bodyLimit: { max: 10 } }, [
      { method: ['GET', 'POST'] as unknown as HTTPMethods, url: '/both', options: { schema: only200 } }
    ])
    const doc = await documentOf(app)
    await assertValid(doc)
    const [get, post] = [operation(doc, 'GET', '/both'), operation(doc, 'POST', '/both')]
    assert.deepEqual(Object.keys(post.responses).sort(), ['200', '400', '401', '413', '415', '429', '500', '503'])
    assert.deepEqual(Object.keys(get.responses).sort(), ['200', '400', '401', '429', '500', '503'])
    assert.doesNotMatch(get.description ?? '', /body limit/i)
    // What the server does: a GET's body is not read, so neither a 413 nor a 415.
    const sent = await app.inject({ method: 'GET', url: '/both', headers: { ...await bearer({ sub: 'u' }), 'content-type': 'application/x-unknown' }, payload: 'x'.repeat(100) })
    assert.equal(sent.statusCode, 200, sent.body)
  })

  test('no auth feature: no schemes, no security, no 401', async (t) => {
    const doc = await documentOf(await appWith(t, {}, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    await assertValid(doc)
    assert.equal(doc.components.securitySchemes, undefined)
    assert.equal(doc.security, undefined)
    assert.equal(operation(doc, 'GET', '/any').security, undefined)
    assert.equal(operation(doc, 'GET', '/any').responses['401'], undefined)
  })

  test('a method added with addHttpMethod (SEARCH) is left out, so the document stays valid OpenAPI 3.1; the route\'s other methods stay', async (t) => {
    const doc = await documentOf(await appWith(t, {}, [], (app) => {
      app.addHttpMethod('SEARCH', { hasBody: true })
      app.route({ method: 'SEARCH', url: '/search', handler: async () => ({}) })
      app.route({ method: ['GET', 'SEARCH'], url: '/both', handler: async () => ({}) })
    }))
    await assertValid(doc)
    assert.equal(doc.paths['/search'], undefined)
    assert.deepEqual(Object.keys(doc.paths['/both']), ['get'])
    // spikard check's DOCS column says the same.
    assert.equal(documented({ method: 'SEARCH' }), false)
    assert.equal(documented({ method: ['GET', 'SEARCH'] }), true)
  })

  test('a route\'s schema.security: the auth feature writes what it enforces; without auth a scheme the document lacks fails at ready(), naming the route (no TypeError)', async (t) => {
    const own = { schema: { ...only200, security: [{ apiKey: [] }] } as RouteShorthandOptions['schema'] }
    const doc = await documentOf(await appWith(t, { auth: AUTH }, [{ method: 'GET', url: '/own', options: own }]))
    await assertValid(doc)
    assert.deepEqual(operation(doc, 'GET', '/own').security, [{ bearerAuth: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
    // A public route of the app's: an empty requirement names no scheme.
    const open = await documentOf(await appWith(t, {}, [{ method: 'GET', url: '/open', options: { schema: { ...only200, security: [] } as RouteShorthandOptions['schema'] } }]))
    assert.deepEqual(operation(open, 'GET', '/open').security, [])
    const refused = await appWith(t, {}, [{ method: 'GET', url: '/own', options: own }])
    await assert.rejects(async () => { await refused.ready() }, (error: Error) => {
      assert.ok(error instanceof SpikardConfigError, error.stack)
      assert.deepEqual(error.problems, ['GET /own: schema.security names "apiKey", a security scheme the OpenAPI document does not define (its schemes come from the auth feature, which is off, and from openapi.components.securitySchemes, which has none); declare it in openapi.components.securitySchemes or remove schema.security (config.auth chooses the schemes spikard checks)'])
      return true
    })
  })

  test('429 with Retry-After and X-RateLimit-* on limited routes, those headers on the 200 too; none on config.rateLimit false', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    const limited = operation(doc, 'GET', '/any').responses
    assert.deepEqual(limited['429'], {
      description: line('SPK_ERR_RATE_LIMITED', 'limit 100/1m'),
      headers: {
        'x-request-id': ref('headers', 'x-request-id'),
        'X-RateLimit-Limit': ref('headers', 'X-RateLimit-Limit'),
        'X-RateLimit-Remaining': ref('headers', 'X-RateLimit-Remaining'),
        'X-RateLimit-Reset': ref('headers', 'X-RateLimit-Reset'),
        'Retry-After': ref('headers', 'Retry-After')
      },
      content: { [PROBLEM]: { schema: ref('schemas', 'Problem') } }
    })
    for (const [status, response] of Object.entries(limited) as Array<[string, Json]>) {
      for (const h of ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']) assert.deepEqual(response.headers?.[h], ref('headers', h), `${status}: ${h}`)
    }
    assert.deepEqual(doc.components.headers['Retry-After'], { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } })
    assert.deepEqual(doc.components.headers['X-RateLimit-Limit'], { description: 'Requests allowed in the window.', schema: { type: 'integer' } })
    const unlimited = operation(doc, 'GET', '/unlimited')
    assert.equal(unlimited.responses['429'], undefined)
    assert.deepEqual(Object.keys(unlimited.responses['200'].headers), ['x-request-id'])
    assert.doesNotMatch(unlimited.description ?? '', /Rate limit/)
  })

  test('rateLimit.headers ietf documents RateLimit and RateLimit-Policy instead', async (t) => {
    const doc = await documentOf(await appWith(t, { rateLimit: { max: 3, headers: 'ietf' } }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    await assertValid(doc)
    assert.deepEqual(Object.keys(operation(doc, 'GET', '/any').responses['200'].headers).sort(), ['RateLimit', 'RateLimit-Policy', 'x-request-id'])
    assert.deepEqual(Object.keys(operation(doc, 'GET', '/any').responses['429'].headers).sort(), ['RateLimit', 'RateLimit-Policy', 'Retry-After', 'x-request-id'])
  })

  test('413 with the route\'s own body limit and 415 for media types on body routes; none on GET', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    assert.equal(operation(doc, 'POST', '/upload').responses['413'].description, line('SPK_ERR_BODY_TOO_LARGE', 'limit 2kb, after decoding'))
    assert.equal(operation(doc, 'POST', '/raw').responses['413'].description, line('SPK_ERR_BODY_TOO_LARGE', 'limit 1mb, after decoding'))
    assert.match(operation(doc, 'POST', '/upload').description, /Request body limit: 2kb/)
    for (const path of ['/upload', '/raw']) {
      assert.equal(operation(doc, 'POST', path).responses['415'].description, line('SPK_ERR_UNSUPPORTED_MEDIA_TYPE'), 'decode on: only the media type')
    }
    for (const path of ['/any', '/public']) for (const status of ['413', '415']) assert.equal(operation(doc, 'GET', path).responses[status], undefined, `GET ${path}: no ${status}`)
  })

  test('bodyLimit.decode false: the 415 also says encoded bodies are refused', async (t) => {
    const doc = await documentOf(await appWith(t, { bodyLimit: { decode: false } }, routes.filter((r) => r.url === '/upload' || r.url === '/any').map((r) => ({ ...r, options: { ...r.options, config: {} } }))))
    await assertValid(doc)
    const upload = operation(doc, 'POST', '/upload').responses
    assert.equal(upload['415'].description, [
      `- ${line('SPK_ERR_UNSUPPORTED_MEDIA_TYPE')}`,
      `- ${line('SPK_ERR_UNSUPPORTED_ENCODING', 'bodies with a Content-Encoding are refused')}`
    ].join('\n'))
    assert.equal(upload['413'].description, line('SPK_ERR_BODY_TOO_LARGE', 'limit 2kb'))
    assert.equal(operation(doc, 'GET', '/any').responses['415'], undefined)
  })

  test('503 for the handler timeout, beside the shutdown\'s; timeout.status 504 documents it under 504', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    assert.equal(operation(doc, 'GET', '/any').responses['503'].description, [
      `- ${line('SPK_ERR_SHUTTING_DOWN')}`,
      `- ${line('SPK_ERR_HANDLER_TIMEOUT', 'after 30s')}`
    ].join('\n'))
    const other = await documentOf(await appWith(t, { timeout: { status: 504 } }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    const r = operation(other, 'GET', '/any').responses
    assert.equal(r['504'].description, line('SPK_ERR_HANDLER_TIMEOUT', 'after 30s'))
    assert.equal(r['503'].description, line('SPK_ERR_SHUTTING_DOWN'))
    const none = await documentOf(await appWith(t, { timeout: false }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    assert.equal(operation(none, 'GET', '/any').responses['503'].description, line('SPK_ERR_SHUTTING_DOWN'))
  })

  test('400, 422 with its errors (only where a schema validates the request), 500 and 503 on every route', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    const validation = {
      description: line('SPK_ERR_VALIDATION'),
      content: { [PROBLEM]: { schema: { allOf: [ref('schemas', 'Problem'), { required: ['errors'] }] } } }
    }
    for (const { path, method, operation: op } of operations(doc)) {
      const where = `${method} ${path}`
      for (const status of ['400', '500', '503']) {
        assert.ok(op.responses[status] !== undefined, `${where}: ${status}`)
        assert.deepEqual(op.responses[status].content, { [PROBLEM]: { schema: ref('schemas', 'Problem') } }, `${where}: ${status} is a problem`)
      }
      assert.match(op.responses['500'].description, /internal-error/)
      if (path !== '/livez') assert.match(op.responses['503'].description, /shutting-down/)
    }
    // Liveness answers during a shutdown: its only 503 is the handler timeout's.
    assert.equal(operation(doc, 'GET', '/livez').responses['503'].description, line('SPK_ERR_HANDLER_TIMEOUT', 'after 30s'))
    for (const [method, path] of [['DELETE', '/admin/{id}'], ['POST', '/upload']]) {
      const { headers, ...rest } = operation(doc, method, path).responses['422']
      assert.deepEqual(rest, validation, `${method} ${path}`)
      assert.deepEqual(headers['x-request-id'], ref('headers', 'x-request-id'))
    }
    for (const [method, path] of [['GET', '/any'], ['POST', '/raw'], ['GET', '/public']]) assert.equal(operation(doc, method, path).responses['422'], undefined, `${method} ${path}: nothing validated, no 422`)
    assert.match(operation(doc, 'POST', '/upload').responses['400'].description, /malformed-body/, 'a body route may send a malformed-body 400')
    assert.doesNotMatch(operation(doc, 'GET', '/any').responses['400'].description, /malformed-body/)
    assert.deepEqual(doc.components.schemas.FieldError.required, ['location', 'field', 'message'])
    assert.deepEqual(doc.components.schemas.Problem.properties.errors, { type: 'array', items: ref('schemas', 'FieldError'), description: 'On a 422: each field that failed validation.' })
    assert.deepEqual(doc.components.responses.NotFound.content, { [PROBLEM]: { schema: ref('schemas', 'Problem') } })
    assert.deepEqual(doc.components.responses.MethodNotAllowed.headers.Allow, { description: 'The methods the path serves.', schema: { type: 'string' } })
  })

  test('the request id header on every response of every operation', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    assert.deepEqual(doc.components.headers['x-request-id'], { description: 'The request\'s id (the one the client sent, when well-formed); also in the access line and in every problem\'s `requestId`.', schema: { type: 'string' } })
    for (const { path, method, operation: op } of operations(doc)) {
      for (const [status, response] of Object.entries(op.responses) as Array<[string, Json]>) assert.deepEqual(response.headers?.['x-request-id'], ref('headers', 'x-request-id'), `${method} ${path} ${status}`)
    }
    const custom = await documentOf(await appWith(t, { requestId: { header: 'x-correlation-id' } }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    await assertValid(custom)
    assert.deepEqual(operation(custom, 'GET', '/any').responses['200'].headers, { 'x-correlation-id': ref('headers', 'x-correlation-id') })
    const off = await documentOf(await appWith(t, { requestId: false }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    assert.equal(operation(off, 'GET', '/any').responses['200'].headers, undefined)
    assert.equal(off.components.headers, undefined)
  })

  test('the health probes under the health tag, public, readiness with its shutdown 503', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    for (const path of ['/livez', '/readyz']) {
      const op = operation(doc, 'GET', path)
      assert.deepEqual(op.tags, ['health'])
      assert.deepEqual(op.security, [])
      assert.equal(op.responses['429'], undefined, 'the probes are not rate limited')
    }
    assert.deepEqual(doc.tags, [{ name: 'health', description: 'Liveness and readiness probes (spikard).' }])
    const own = await documentOf(await appWith(t, { openapi: { tags: [{ name: 'health', description: 'Ours.' }] } }))
    assert.deepEqual(own.tags, [{ name: 'health', description: 'Ours.' }], 'a health tag the user describes is kept, not repeated')
    const none = await documentOf(await appWith(t, { health: false }, [{ method: 'GET', url: '/any', options: { schema: only200 } }]))
    assert.deepEqual(none.tags, [], 'no health routes, no health tag')
    assert.equal(none.paths['/livez'], undefined)
  })

  test('a response the route declares is left as written', async (t) => {
    const doc = await documentOf(await appWith(t, config, routes))
    // As @fastify/swagger alone writes it.
    const bare = Fastify({ logger: false })
    t.after(() => bare.close())
    await bare.register(swagger, { openapi: { openapi: '3.1.0', info: { title: 'bare', version: '1' } } })
    const mine = routes.find((r) => r.url === '/mine') as RouteDef
    bare.route({ ...mine.options, method: mine.method, url: mine.url, handler: async () => ({}) })
    await bare.ready()
    const theirs = (bare.swagger() as Json).paths['/mine'].get.responses
    const responses = operation(doc, 'GET', '/mine').responses
    for (const status of ['404', '422']) {
      const { headers, ...own } = responses[status]
      assert.deepEqual(own, theirs[status], `${status} as written`)
      assert.match(own.description, /^Their own/)
      // What spikard adds to it is only the headers every response of the route carries.
      assert.deepEqual(Object.keys(headers).sort(), ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset', 'x-request-id'], status)
    }
  })

  test('shared schemas of the app named Problem and FieldError keep their names; spikard\'s own are SpikardProblem and SpikardFieldError', async (t) => {
    const Mine = { $id: 'Problem', type: 'object', properties: { reason: { type: 'string' } } }
    const MineField = { $id: 'https://example.com/FieldError.json', type: 'object', properties: { path: { type: 'string' } } }
    const app = await appWith(t, {}, [{
      method: 'GET',
      url: '/mine',
      options: { schema: { querystring: { type: 'object', properties: { q: { type: 'string' } } }, response: { 200: { $ref: 'https://example.com/FieldError.json#' }, 418: { $ref: 'Problem#' } } } }
    }], (a) => { a.addSchema(Mine); a.addSchema(MineField) })
    const doc = await documentOf(app)
    await assertValid(doc)
    const schemas = doc.components.schemas
    assert.deepEqual(schemas.Problem, { type: 'object', properties: { reason: { type: 'string' } } }, 'the app\'s Problem, as added')
    assert.deepEqual(schemas.FieldError, { type: 'object', properties: { path: { type: 'string' } } }, 'the app\'s FieldError, as added')
    assert.deepEqual(schemas.SpikardProblem.required, ['type', 'title', 'status', 'detail'])
    assert.deepEqual(schemas.SpikardProblem.properties.errors.items, ref('schemas', 'SpikardFieldError'))
    assert.deepEqual(schemas.SpikardFieldError.required, ['location', 'field', 'message'])
    const responses = operation(doc, 'GET', '/mine').responses
    assert.deepEqual(responses['418'].content['application/json'].schema, ref('schemas', 'Problem'))
    assert.deepEqual(responses['200'].content['application/json'].schema, ref('schemas', 'FieldError'))
    assert.deepEqual(responses['400'].content[PROBLEM].schema, ref('schemas', 'SpikardProblem'))
    assert.deepEqual(responses['422'].content[PROBLEM].schema, { allOf: [ref('schemas', 'SpikardProblem'), { required: ['errors'] }] })
    assert.deepEqual(doc.components.responses.NotFound.content[PROBLEM].schema, ref('schemas', 'SpikardProblem'))
    assert.deepEqual(doc.components.responses.MethodNotAllowed.content[PROBLEM].schema, ref('schemas', 'SpikardProblem'))
  })
})

describe('the app\'s own security schemes (openapi.components.securitySchemes, openapi.security)', () => {
  const only200 = { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } }
  const session = { type: 'apiKey', in: 'cookie', name: 'sid', description: 'The session cookie the app sets at login.' } as const
  const oauth = {
    type: 'oauth2',
    flows: {
      authorizationCode: { authorizationUrl: 'https://id.example.com/authorize', tokenUrl: '/oauth/token', scopes: { read: 'Read your data.', admin: 'Everything.' } },
      clientCredentials: { tokenUrl: '/oauth/token', refreshUrl: '/oauth/refresh', scopes: {} }
    }
  } as const
  const others = {
    oidc: { type: 'openIdConnect', openIdConnectUrl: 'https://id.example.com/.well-known/openid-configuration' },
    basic: { type: 'http', scheme: 'basic' },
    partner: { type: 'http', scheme: 'Bearer', bearerFormat: 'opaque' },
    mtls: { type: 'mutualTLS', description: 'A client certificate.' }
  } as const

  test('auth off: the schemes and the default requirement as written, each route\'s schema.security, the health probes public', async (t) => {
    const doc = await documentOf(await appWith(t, { openapi: { components: { securitySchemes: { session, oauth, ...others } }, security: [{ oauth: ['read'] }] } }, [
      { method: 'GET', url: '/me', options: { schema: only200 } },
      { method: 'GET', url: '/open', options: { schema: { ...only200, security: [] } as RouteShorthandOptions['schema'] } },
      { method: 'DELETE', url: '/users/:id', options: { schema: { ...only200, security: [{ oauth: ['admin'] }, { session: [], basic: [] }] } as RouteShorthandOptions['schema'] } },
      { method: 'GET', url: '/status', options: { config: { auth: false }, schema: only200 } }
    ]))
    await assertValid(doc)
    assert.deepEqual(doc.components.securitySchemes, { session, oauth, ...others })
    assert.deepEqual(doc.security, [{ oauth: ['read'] }])
    assert.equal(operation(doc, 'GET', '/me').security, undefined, 'the default applies')
    assert.deepEqual(operation(doc, 'GET', '/open').security, [])
    assert.deepEqual(operation(doc, 'DELETE', '/users/{id}').security, [{ oauth: ['admin'] }, { session: [], basic: [] }])
    // A route that needs no credentials says so (spikard's probes; config.auth: false, as with auth on).
    for (const path of ['/livez', '/readyz', '/status']) assert.deepEqual(operation(doc, 'GET', path).security, [], path)
    assert.equal(operation(doc, 'GET', '/me').responses['401'], undefined, 'the app\'s own 401, if any, is the app\'s to document')
  })

  test('auth on: the app\'s schemes after auth\'s; a route left to the app keeps its schema.security, a route auth protects needs both; one naming auth\'s schemes gives way to auth', async (t) => {
    const doc = await documentOf(await appWith(t, { auth: AUTH, openapi: { components: { securitySchemes: { session, oauth } } } }, [
      { method: 'GET', url: '/session', options: { config: { auth: false }, schema: { ...only200, security: [{ session: [] }] } as RouteShorthandOptions['schema'] } },
      { method: 'GET', url: '/public', options: { config: { auth: false }, schema: only200 } },
      { method: 'GET', url: '/any', options: { schema: only200 } },
      { method: 'GET', url: '/both', options: { config: { auth: 'jwt' }, schema: { ...only200, security: [{ session: [] }, { oauth: ['read'] }] } as RouteShorthandOptions['schema'] } },
      { method: 'GET', url: '/stale', options: { config: { auth: false }, schema: { ...only200, security: [{ apiKey: [] }] } as RouteShorthandOptions['schema'] } }
    ]))
    await assertValid(doc)
    assert.deepEqual(Object.keys(doc.components.securitySchemes), ['bearerAuth', 'apiKey', 'apiKeyQuery', 'session', 'oauth'])
    assert.deepEqual(doc.components.securitySchemes.session, session)
    assert.deepEqual(doc.security, [{ bearerAuth: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
    const session200 = operation(doc, 'GET', '/session')
    assert.deepEqual(session200.security, [{ session: [] }])
    assert.doesNotMatch(session200.description ?? '', /Public/)
    assert.deepEqual(operation(doc, 'GET', '/public').security, [])
    assert.match(operation(doc, 'GET', '/public').description, /Public: no credentials needed\./)
    assert.deepEqual(operation(doc, 'GET', '/any').security, [{ bearerAuth: [] }, { apiKey: [] }, { apiKeyQuery: [] }])
    assert.deepEqual(operation(doc, 'GET', '/both').security, [{ bearerAuth: [], session: [] }, { bearerAuth: [], oauth: ['read'] }])
    assert.equal(operation(doc, 'GET', '/both').responses['401'].description, line('SPK_ERR_UNAUTHORIZED'))
    assert.deepEqual(operation(doc, 'GET', '/stale').security, [])
  })

  test('refused at startup: a name of auth\'s schemes, a default requirement with auth on or naming an undeclared scheme, bearerFormat without bearer, malformed schemes; a route naming an undeclared one', async (t) => {
    const refused = async (config: Partial<CreateServerConfig>, problems: string[]): Promise<void> => {
      await assert.rejects(createServer({ ...config, server: { logger: { level: 'silent' } } } as CreateServerConfig), (error: Error) => {
        assert.ok(error instanceof SpikardConfigError, error.stack)
        assert.deepEqual(error.problems, problems)
        return true
      })
    }
    await refused({ auth: AUTH, openapi: { components: { securitySchemes: { session, apiKeyQuery: { type: 'apiKey', in: 'query', name: 'key' } } }, security: [{ session: [] }] } }, [
      'openapi.components.securitySchemes.apiKeyQuery: the auth feature documents a scheme of that name, for what it checks; give yours another name',
      'openapi.security: the auth feature states the security of every route, so a default would apply to none; name your schemes in schema.security on the routes your app checks them on, or remove openapi.security'
    ])
    // Without auth (or with its query key off), auth's names are free.
    await documentOf(await appWith(t, { auth: { apiKey: { keys: AUTH.apiKey.keys } }, openapi: { components: { securitySchemes: { apiKeyQuery: session } } } }))
    await documentOf(await appWith(t, { openapi: { components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } }, security: [{ bearerAuth: [] }] } }))
    await refused({ openapi: { components: { securitySchemes: { session, basic: { type: 'http', scheme: 'basic', bearerFormat: 'JWT' } } }, security: [{ session: [], cookie: [] }, { oauth: [] }] } }, [
      'openapi.components.securitySchemes.basic.bearerFormat: OpenAPI 3.1 allows it with scheme "bearer" only, found scheme "basic"; remove it',
      'openapi.security[0]: names "cookie", which openapi.components.securitySchemes does not declare (it has session, basic)',
      'openapi.security[1]: names "oauth", which openapi.components.securitySchemes does not declare (it has session, basic)'
    ])
    await assertOptionsRefused('openapi', {
      components: {
        schemas: {},
        securitySchemes: {
          'my session': session,
          cookie: { type: 'apiKey', in: 'body', name: 'sid' },
          oauth: { type: 'oauth2', flows: { implicit: { authorizationUrl: 'the login page', scopes: { read: 1 } } } },
          token: { type: 'oauth2' },
          kerberos: { type: 'negotiate' },
          basic: { type: 'http', scheme: 'basic', realm: 'api' }
        }
      },
      security: { session: [] }
    }, [
      'openapi.components.schemas: unknown key',
      'openapi.components.securitySchemes."my session": expected a scheme name (letters, digits, ".", "-" and "_") as the key',
      'openapi.components.securitySchemes.cookie.in: expected "header", "query" or "cookie", found "body"',
      'openapi.components.securitySchemes.oauth.flows.implicit.authorizationUrl: expected an absolute URL (https://...) or a path (/terms), found "the login page"',
      'openapi.components.securitySchemes.oauth.flows.implicit.scopes.read: expected a string, found 1',
      'openapi.components.securitySchemes.token.flows: required, expected an object',
      'openapi.components.securitySchemes.kerberos: expected a security scheme: { type: apiKey, name, in }, { type: http, scheme }, { type: oauth2, flows }, { type: openIdConnect, openIdConnectUrl } or { type: mutualTLS }, found {"type":"negotiate"}',
      'openapi.components.securitySchemes.basic.realm: unknown key',
      'openapi.security: expected a list of requirements ({ scheme: [scopes] }), found {"session":[]}'
    ])
    // A route's schema.security naming a scheme no one declares, with auth on or off.
    for (const auth of [undefined, AUTH]) {
      const app = await appWith(t, { auth, openapi: { components: { securitySchemes: { session } } } }, [{ method: 'GET', url: '/x', options: { config: { auth: false }, schema: { security: [{ sesion: [] }] } as RouteShorthandOptions['schema'] } }])
      await assert.rejects(async () => { await app.ready() }, (error: Error) => {
        assert.ok(error instanceof SpikardConfigError, error.stack)
        assert.deepEqual(error.problems, [`GET /x: schema.security names "sesion", a security scheme the OpenAPI document does not define (its schemes come from the auth feature${auth === undefined ? ', which is off' : ': bearerAuth, apiKey, apiKeyQuery'}, and from openapi.components.securitySchemes: session); declare it in openapi.components.securitySchemes, name one of those or remove schema.security (config.auth chooses the schemes spikard checks)`])
        return true
      })
    }
  })
})

describe('the document says what the server sends', () => {
  test('the 422 the error handler sends matches the documented schema', async (t) => {
    const routes: RouteDef[] = [{
      method: 'POST',
      url: '/widgets/:id',
      options: {
        schema: {
          params: { type: 'object', properties: { id: { type: 'integer' } } },
          body: { type: 'object', required: ['name', 'parts'], properties: { name: { type: 'string', minLength: 2 }, parts: { type: 'array', items: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } } } }
        }
      }
    }]
    const app = await appWith(t, {}, routes)
    const doc = await documentOf(app)
    const responses = operation(doc, 'POST', '/widgets/{id}').responses
    const { validate } = documentedValidator(doc, responses['422'])
    const real = await app.inject({ method: 'POST', url: '/widgets/7', payload: { name: 'x', parts: [{ sku: 'a' }, {}] } })
    assert.equal(real.statusCode, 422, real.body)
    assert.equal(real.headers['content-type'], 'application/problem+json; charset=utf-8')
    const body: Json = real.json()
    assert.deepEqual(body.errors.map((e: Json) => e.field).sort(), ['name', 'parts.1.sku'], real.body)
    assert.ok(validate(body), `${real.body}: ${responseAjv.errorsText(validate.errors)}`)
    assertAsDocumented(doc, responses, real, 'invalid body')
    // The schema is not a pushover: a 422 without its errors, or with a malformed one, fails it.
    assert.equal(validate({ ...body, errors: undefined }), false)
    assert.equal(validate({ ...body, errors: [{ location: 'cookie', field: 'x', message: 'y' }] }), false)
    assert.equal(validate({ ...body, status: '422' }), false)
    assertAsDocumented(doc, responses, await app.inject({ method: 'POST', url: '/widgets/abc', payload: { name: 'xx', parts: [] } }), 'invalid params')
  })

  test('each problem a limited, protected body route can send: the status is documented, the body matches its schema, the documented headers are sent', async (t) => {
    const routes: RouteDef[] = [
      { method: 'POST', url: '/notes', options: { bodyLimit: 64, config: { auth: { claims: { role: 'editor' } }, rateLimit: { max: 5, timeWindow: '1m', keyBy: 'ip' } }, schema: { body: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } } } } }
    ]
    const app = await appWith(t, { auth: AUTH, rateLimit: { max: 100 } }, routes)
    const doc = await documentOf(app)
    const responses = operation(doc, 'POST', '/notes').responses
    const editor = await bearer({ role: 'editor' })
    const post = async (headers: Record<string, string>, payload: string, contentType = 'application/json') =>
      await app.inject({ method: 'POST', url: '/notes', headers: { 'content-type': contentType, ...headers }, payload })
    const cases: Array<[number, LightMyRequestResponse]> = [
      [401, await post({}, '{"text":"a"}')],
      [403, await post(await bearer({ role: 'viewer' }), '{"text":"a"}')]
    ]
    // The sixth request from this address is one too many.
    cases.push([413, await post(editor, JSON.stringify({ text: 'x'.repeat(100) }))])
    cases.push([415, await post(editor, '<text/>', 'application/xml')])
    cases.push([422, await post(editor, '{}')])
    cases.push([429, await post(editor, '{"text":"a"}')])
    for (const [status, real] of cases) {
      assert.equal(real.statusCode, status, real.body)
      assertAsDocumented(doc, responses, real, `POST /notes ${status}`)
    }
    // Unknown paths and methods: the document's NotFound and MethodNotAllowed responses.
    const notFound = await app.inject({ url: '/nowhere', headers: editor })
    assert.equal(notFound.statusCode, 404)
    assertAsDocumented(doc, { 404: ref('responses', 'NotFound') }, notFound, 'GET /nowhere')
    const notAllowed = await app.inject({ method: 'PATCH', url: '/notes', headers: editor })
    assert.equal(notAllowed.statusCode, 405, notAllowed.body)
    assertAsDocumented(doc, { 405: ref('responses', 'MethodNotAllowed') }, notAllowed, 'PATCH /notes')
  })
})

describe('operationId', () => {
  test('config.operationId wins over schema.operationId and over a derived one; derived ids from the method and path', async (t) => {
    const doc = await documentOf(await appWith(t, {}, [
      { method: 'GET', url: '/users', options: {} },
      { method: 'GET', url: '/people', options: { config: { operationId: 'getUsers' } } },
      { method: 'GET', url: '/users/:id', options: { config: { operationId: 'fetchUser' }, schema: { operationId: 'ignored' } } },
      { method: 'GET', url: '/users/:id/posts', options: {} },
      { method: 'POST', url: '/orders/:orderId/items/:itemId', options: { schema: { operationId: 'addOrderItem' } } },
      { method: 'DELETE', url: '/users/:id', options: {} }
    ], (app) => { app.register(async (child) => { child.get('/things', async () => ({})) }, { prefix: '/v1' }) }))
    await assertValid(doc)
    assert.equal(operation(doc, 'GET', '/people').operationId, 'getUsers', 'config.operationId keeps its id though GET /users derives the same')
    assert.equal(operation(doc, 'GET', '/users').operationId, 'getUsers2')
    assert.equal(operation(doc, 'GET', '/users/{id}').operationId, 'fetchUser')
    assert.equal(operation(doc, 'GET', '/users/{id}/posts').operationId, 'getUsersByIdPosts')
    assert.equal(operation(doc, 'POST', '/orders/{orderId}/items/{itemId}').operationId, 'addOrderItem')
    assert.equal(operation(doc, 'DELETE', '/users/{id}').operationId, 'deleteUsersById')
    assert.equal(operation(doc, 'GET', '/v1/things').operationId, 'getV1Things')
    assert.equal(operation(doc, 'GET', '/livez').operationId, 'getLivez')
  })

  test('derived ids are unique and stable: routes deriving the same id, and one route with several methods', async (t) => {
    const routes: RouteDef[] = [
      { method: 'GET', url: '/user-list' },
      { method: 'GET', url: '/user_list' },
      { method: 'GET', url: '/user.list' },
      { method: ['GET', 'POST'] as unknown as HTTPMethods, url: '/search' }
    ]
    const ids = async () => {
      const doc = await documentOf(await appWith(t, {}, routes))
      await assertValid(doc)
      return Object.fromEntries(operations(doc).map(({ path, method, operation: op }) => [`${method} ${path}`, op.operationId]))
    }
    const first = await ids()
    assert.deepEqual(first, {
      'get /livez': 'getLivez',
      'get /readyz': 'getReadyz',
      'get /user-list': 'getUserList',
      'get /user_list': 'getUserList2',
      'get /user.list': 'getUserList3',
      'get /search': 'getSearch',
      'post /search': 'postSearch'
    })
    assert.deepEqual(await ids(), first, 'the same on every build')
  })
})

describe('hidden routes', () => {
  test('schema.hide, config.openapi false and the docs routes are left out', async (t) => {
    const app = await appWith(t, { openapi: { json: '/spec.json', docs: '/api-docs' } }, [
      { method: 'GET', url: '/shown' },
      { method: 'GET', url: '/hidden-by-schema', options: { schema: { hide: true } } },
      { method: 'GET', url: '/hidden-by-config', options: { config: { openapi: false } } },
      { method: 'GET', url: '/shown-explicitly', options: { config: { openapi: true } } }
    ])
    const doc = await documentOf(app, '/spec.json')
    await assertValid(doc)
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/livez', '/readyz', '/shown', '/shown-explicitly'])
    assert.equal((await app.inject({ url: '/hidden-by-config' })).statusCode, 200, 'hidden from the document, still served')
    for (const url of ['/spec.json', '/openapi.yaml', '/api-docs', '/api-docs/', '/redoc', '/redoc/']) assert.notEqual((await app.inject({ url })).statusCode, 404, `${url} is served`)
    assert.equal(doc.components.schemas.Problem !== undefined, true)
  })

  test('WebSocket routes are out of the document, and the DOCS column of spikard check says hidden, with or without a schema', async (t) => {
    const app = await appWith(t, {}, [], (a) => {
      a.route({ method: 'GET', url: '/ws-bare', websocket: true, handler: () => {} } as never)
      a.route({ method: 'GET', url: '/ws-schema', websocket: true, schema: { querystring: { type: 'object', properties: { n: { type: 'string' } } } }, handler: () => {} } as never)
    })
    const doc = await documentOf(app)
    await assertValid(doc)
    assert.deepEqual(Object.keys(doc.paths).sort(), ['/livez', '/readyz'])
    const docs = routeColumns(app.spikard.options).find(([title]) => title === 'DOCS')?.[1]
    assert.ok(docs !== undefined)
    for (const url of ['/ws-bare', '/ws-schema']) {
      const route = app.spikard.routes.find((r) => r.url === url && r.method === 'GET')
      assert.ok(route !== undefined, url)
      assert.equal(docs(route), 'hidden', url)
    }
  })
})

describe('serving', () => {
  test('ETag and Cache-Control; If-None-Match with it gives 304 and no body', async (t) => {
    const app = await appWith(t, {})
    const first = await app.inject({ url: '/openapi.json' })
    const etag = first.headers.etag as string
    assert.match(etag, /^"[A-Za-z0-9_-]{32}"$/)
    assert.equal(first.headers['cache-control'], 'no-cache')
    for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`]) {
      const again = await app.inject({ url: '/openapi.json', headers: { 'if-none-match': ifNoneMatch } })
      assert.equal(again.statusCode, 304, ifNoneMatch)
      assert.equal(again.body, '')
      assert.equal(again.headers.etag, etag)
    }
    const any = await app.inject({ url: '/openapi.json', headers: { 'if-none-match': '*' } })
    assert.equal(any.statusCode, 304, 'If-None-Match: * matches the document (RFC 9110)')
    assert.equal(any.headers.etag, etag)
    const stale = await app.inject({ url: '/openapi.json', headers: { 'if-none-match': '"something-else"' } })
    assert.equal(stale.statusCode, 200)
    assert.equal(stale.body, first.body)
    const yaml = await app.inject({ url: '/openapi.yaml' })
    assert.notEqual(yaml.headers.etag, etag, 'the YAML has its own ETag')
    assert.equal((await app.inject({ url: '/openapi.yaml', headers: { 'if-none-match': yaml.headers.etag as string } })).statusCode, 304)
  })

  test('/openapi.yaml parses to the same object as /openapi.json', async (t) => {
    const app = await appWith(t, { auth: AUTH, rateLimit: { max: 5 } }, petStoreRoutes, (a) => { for (const s of petStoreSchemas) a.addSchema(s) })
    const yaml = await app.inject({ url: '/openapi.yaml' })
    assert.equal(yaml.statusCode, 200)
    assert.equal(yaml.headers['content-type'], 'application/yaml; charset=utf-8')
    assert.deepEqual(parseYaml(yaml.body), await documentOf(app))
    // Plain YAML for every reader: no anchors and aliases for the objects repeated in it.
    assert.doesNotMatch(yaml.body, /[&*]a\d+\b/)
  })

  test('custom paths; the defaults are then not found', async (t) => {
    const app = await appWith(t, { openapi: { json: '/api/spec.json', yaml: '/api/spec.yaml', docs: '/api/docs', redoc: '/api/reference' } })
    const doc = await documentOf(app, '/api/spec.json')
    await assertValid(doc)
    assert.deepEqual(parseYaml((await app.inject({ url: '/api/spec.yaml' })).body), doc)
    assert.match((await app.inject({ url: '/api/docs/' })).body, /swagger/i)
    assert.match((await app.inject({ url: '/api/reference/' })).body, /redoc/i)
    for (const url of ['/openapi.json', '/openapi.yaml', '/docs/', '/redoc/']) assert.equal((await app.inject({ url })).statusCode, 404, url)
  })

  test('each path option false removes that route only', async (t) => {
    const all = { '/openapi.json': 'json', '/openapi.yaml': 'yaml', '/docs/': 'docs', '/redoc/': 'redoc' } as const
    for (const [url, key] of Object.entries(all)) {
      const app = await appWith(t, { openapi: { [key]: false } })
      assert.equal((await app.inject({ url })).statusCode, 404, `${key}: false`)
      for (const other of Object.keys(all).filter((u) => u !== url)) assert.equal((await app.inject({ url: other })).statusCode, 200, `${key}: false leaves ${other}`)
    }
  })

  test('openapi: false turns it all off', async (t) => {
    const app = await appWith(t, { openapi: false }, [{ method: 'GET', url: '/x' }])
    for (const url of ['/openapi.json', '/openapi.yaml', '/docs', '/docs/', '/redoc', '/redoc/']) {
      const response = await app.inject({ url })
      assert.equal(response.statusCode, 404, url)
      assert.equal(response.headers['content-type'], 'application/problem+json; charset=utf-8')
    }
    assert.equal(app.hasDecorator('swagger'), false)
  })

  test('NODE_ENV=production: off unless the key is set', async (t) => {
    const before = process.env.NODE_ENV
    process.env.NODE_ENV = 'production'
    try {
      const off = await appWith(t, {})
      assert.equal((await off.inject({ url: '/openapi.json' })).statusCode, 404)
      assert.equal((await off.inject({ url: '/docs/' })).statusCode, 404)
      const on = await appWith(t, { openapi: true })
      await assertValid(await documentOf(on))
    } finally {
      if (before === undefined) delete process.env.NODE_ENV
      else process.env.NODE_ENV = before
    }
  })

  test('openapi.auth: true with auth on: the document and the UIs need credentials', async (t) => {
    const app = await appWith(t, { auth: AUTH, openapi: { auth: true } }, [{ method: 'GET', url: '/x' }])
    for (const url of ['/openapi.json', '/openapi.yaml', '/docs/', '/redoc/']) {
      const refused = await app.inject({ url })
      assert.equal(refused.statusCode, 401, url)
      assert.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8')
      assert.equal(refused.json().type, 'https://spikard.dev/errors/unauthorized')
      assert.equal((await app.inject({ url, headers: { 'x-api-key': API_KEY } })).statusCode, 200, `${url} with an API key`)
    }
    const doc = (await app.inject({ url: '/openapi.json', headers: await bearer() })).json()
    await assertValid(doc)
    assert.equal(doc.paths['/openapi.json'], undefined)
    // By default the document is public even with auth on.
    const open = await appWith(t, { auth: AUTH })
    assert.equal((await open.inject({ url: '/openapi.json' })).statusCode, 200)
  })

  test('openapi.auth: true with auth off fails at ready(), naming openapi.auth', async () => {
    const app = Fastify({ logger: false })
    try {
      app.register(spikard, { openapi: { auth: true } })
      await assert.rejects(async () => { await app.ready() }, (error: Error) => {
        assert.match(error.message, /openapi\.auth/)
        return true
      })
    } finally {
      await app.close()
    }
  })

  test('a Swagger UI path already taken (a route before spikard, openapi.json) fails at ready(), naming openapi.docs: no uncaught exception', async () => {
    const cases: Array<{ before?: string, openapi?: Json, problem: string }> = [
      { before: '/docs', problem: 'openapi.docs: Swagger UI at /docs needs GET /docs, and your route GET /docs (registered before spikard) is there already; set openapi.docs to another path (or false), or move that route' },
      { before: '/docs/json', problem: 'openapi.docs: Swagger UI at /docs needs GET /docs/json, and your route GET /docs/json (registered before spikard) is there already; set openapi.docs to another path (or false), or move that route' },
      { openapi: { json: '/api', docs: '/api' }, problem: 'openapi.docs: /api is openapi.json already; give each its own path' },
      { openapi: { yaml: '/docs/yaml' }, problem: 'openapi.docs: Swagger UI at /docs needs GET /docs/yaml, and openapi.yaml (/docs/yaml) is there already; set openapi.docs to another path (or false), or move that route' }
    ]
    for (const { before, openapi, problem } of cases) {
      await assertReadyRefused((app) => {
        if (before !== undefined) app.get(before, async () => 'mine')
        app.register(spikard, openapi === undefined ? {} : { openapi })
      }, problem)
    }
    // Paths beside Swagger UI's own are fine.
    const app = Fastify({ logger: false })
    try {
      app.register(spikard, { openapi: { json: '/docs/openapi.json' } })
      await app.ready()
      assert.equal((await app.inject({ url: '/docs/openapi.json' })).statusCode, 200)
      assert.equal((await app.inject({ url: '/docs' })).statusCode, 200)
    } finally {
      await app.close()
    }
  })

  test('a route of yours at a path of the document, Redoc or Swagger UI fails at startup naming the option, registered before spikard or after (as a config file\'s app is)', async () => {
    const problem = (option: string, path: string, route: string): string =>
      `${option}: ${path} is a route of spikard's, and ${route} is registered there too; move that route, or set ${option} to another path (or false)`
    const cases: Array<{ before?: string, after?: [string, string], openapi: Json, problem: string }> = [
      { before: '/api.json', openapi: { json: '/api.json' }, problem: problem('openapi.json', '/api.json', 'your route GET /api.json (registered before spikard)') },
      { before: '/redoc/openapi.json', openapi: {}, problem: problem('openapi.redoc', '/redoc/openapi.json', 'your route GET /redoc/openapi.json (registered before spikard)') },
      { after: ['GET', '/api.yaml'], openapi: { yaml: '/api.yaml' }, problem: problem('openapi.yaml', '/api.yaml', 'your route GET /api.yaml') },
      { after: ['HEAD', '/redoc'], openapi: {}, problem: problem('openapi.redoc', '/redoc', 'your route HEAD /redoc') },
      { after: ['GET', '/docs/json'], openapi: {}, problem: problem('openapi.docs', '/docs/json', 'your route GET /docs/json') }
    ]
    for (const { before, after, openapi, problem } of cases) {
      await assertReadyRefused((app) => {
        if (before !== undefined) app.get(before, async () => 'mine')
        app.register(spikard, { openapi, shutdown: { signals: false } })
        if (after !== undefined) app.register(async (child) => { child.route({ method: after[0] as HTTPMethods, url: after[1], handler: async () => 'mine' }) })
      }, problem)
    }
    // Another method at a document's path, and a path beside the UIs' own, are yours.
    const app = Fastify({ logger: false })
    try {
      await app.register(spikard, { shutdown: { signals: false } })
      app.post('/openapi.json', async () => 'mine')
      app.get('/redoc/other', async () => 'mine')
      await app.ready()
      assert.equal((await app.inject({ method: 'POST', url: '/openapi.json' })).body, 'mine')
      assert.equal((await app.inject({ url: '/openapi.json' })).statusCode, 200)
    } finally {
      await app.close()
    }
  })

  test('spikard in a prefixed plugin: a route of yours at the unprefixed docs paths is not in the way; one under the prefix is refused', async () => {
    const app = Fastify({ logger: false })
    try {
      app.get('/openapi.json', async () => 'mine, at the root')
      app.get('/redoc', async () => 'mine, at the root')
      app.get('/docs', async () => 'mine, at the root')
      await app.register(async (api) => {
        await api.register(spikard, { shutdown: { signals: false } })
        assert.throws(() => api.get('/openapi.yaml', async () => 'mine'), (error: Error) => {
          assert.ok(error instanceof SpikardConfigError, error.message)
          assert.deepEqual(error.problems, ['openapi.yaml: /api/openapi.yaml is a route of spikard\'s, and your route GET /api/openapi.yaml is registered there too; move that route, or set openapi.yaml to another path (or false)'])
          return true
        })
      }, { prefix: '/api' })
      await app.ready()
      assert.equal((await app.inject({ url: '/openapi.json' })).body, 'mine, at the root')
      assert.equal((await app.inject({ url: '/redoc' })).body, 'mine, at the root')
      assert.equal((await app.inject({ url: '/docs' })).body, 'mine, at the root')
      assert.equal((await app.inject({ url: '/api/openapi.json' })).json().openapi, '3.1.0')
      assert.equal((await app.inject({ url: '/api/docs/' })).statusCode, 200)
    } finally {
      await app.close()
    }
  })

  test('the document is generated once: the same object and the same bytes on every request', async (t) => {
    const app = await appWith(t, { auth: AUTH }, userRoutes, (a) => { a.addSchema(User) })
    const a = await app.inject({ url: '/openapi.json' })
    const b = await app.inject({ url: '/openapi.json' })
    assert.equal(a.body, b.body)
    assert.equal(a.headers.etag, b.headers.etag)
    assert.equal(app.swagger(), app.swagger(), 'app.swagger() returns one object')
    assert.equal(a.body, JSON.stringify(app.swagger()))
  })
})

describe('info, servers, tags, externalDocs', () => {
  test('title and version default to the package.json nearest the working directory', async (t) => {
    const doc = await documentOf(await appWith(t, {}))
    assert.equal(PKG.name, 'spikard')
    assert.deepEqual(doc.info, { title: PKG.name, version: PKG.version })
    assert.deepEqual(doc.servers, [])
    const partial = await documentOf(await appWith(t, { openapi: { info: { description: 'Only this.' } } }))
    assert.deepEqual(partial.info, { title: PKG.name, version: PKG.version, description: 'Only this.' })
  })

  test('info fields, servers, tags and externalDocs pass through', async (t) => {
    const info = {
      title: 'Pet Store',
      version: '2.3.1',
      description: 'Pets, **in Markdown**.',
      termsOfService: 'https://example.com/terms',
      contact: { name: 'API team', url: 'https://example.com/support', email: 'api@example.com' },
      license: { name: 'Apache 2.0', identifier: 'Apache-2.0' }
    }
    const servers = [{ url: 'https://api.example.com', description: 'Production' }, { url: 'http://localhost:8000' }]
    const tags = [{ name: 'pets', description: 'Everything about pets.' }, { name: 'store' }]
    const externalDocs = { url: 'https://example.com/docs', description: 'The guide.' }
    const doc = await documentOf(await appWith(t, { openapi: { info, servers, tags, externalDocs } }, petStoreRoutes, (a) => { for (const s of petStoreSchemas) a.addSchema(s) }))
    await assertValid(doc)
    assert.deepEqual(doc.info, info)
    assert.deepEqual(doc.servers, servers)
    assert.deepEqual(doc.tags, [...tags, { name: 'health', description: 'Liveness and readiness probes (spikard).' }])
    assert.deepEqual(doc.externalDocs, externalDocs)
  })

  test('a server URL with a path: the paths under it are relative to it, the others as they are (no path cut mid-segment)', async (t) => {
    for (const url of ['https://api.example.com/v1/', '/v1']) {
      const doc = await documentOf(await appWith(t, { openapi: { servers: [{ url }] } }, [
        { method: 'GET', url: '/v1' },
        { method: 'GET', url: '/v1/items/:id?' },
        { method: 'GET', url: '/v10/x' },
        { method: 'GET', url: '/v1x' }
      ]))
      await assertValid(doc)
      assert.deepEqual(Object.fromEntries(operations(doc).map(({ path, operation: op }) => [path, op.operationId])), {
        '/livez': 'getLivez',
        '/readyz': 'getReadyz',
        '/': 'getV1',
        '/items': 'getV1Items',
        '/items/{id}': 'getV1ItemsById',
        '/v10/x': 'getV10X',
        '/v1x': 'getV1x'
      }, url)
    }
  })

  test('a path for the URLs of info and externalDocs (OpenAPI 3.1 takes a URI reference) is accepted, and the document is valid', async (t) => {
    const info = { termsOfService: '/terms', contact: { url: '/support' }, license: { name: 'Proprietary', url: '/LICENSE' } }
    const externalDocs = { url: '/guide' }
    const doc = await documentOf(await appWith(t, { openapi: { info, externalDocs } }))
    await assertValid(doc)
    assert.deepEqual(doc.info, { title: PKG.name, version: PKG.version, ...info })
    assert.deepEqual(doc.externalDocs, externalDocs)
  })

  test('URLs and an email the OpenAPI schema would refuse, a server URL with {variables}, a license with identifier and url, a tag twice: refused at startup naming the key', async () => {
    await assertOptionsRefused('openapi', {
      info: { termsOfService: 'our terms', contact: { url: 'example.com/support', email: 'the api team' }, license: { name: 'MIT', url: 'MIT' } },
      servers: [{ url: 'https://{region}.example.com' }, { url: '/v1' }],
      externalDocs: { url: 'the wiki' }
    }, [
      'openapi.info.termsOfService: expected an absolute URL (https://...) or a path (/terms), found "our terms"',
      'openapi.info.contact.url: expected an absolute URL (https://...) or a path (/terms), found "example.com/support"',
      'openapi.info.contact.email: expected an email address, found "the api team"',
      'openapi.info.license.url: expected an absolute URL (https://...) or a path (/terms), found "MIT"',
      'openapi.servers[0].url: expected a URL, absolute or relative (/v1), without spaces or {variables}, found "https://{region}.example.com"',
      'openapi.externalDocs.url: expected an absolute URL (https://...) or a path (/terms), found "the wiki"'
    ])
    await assertOptionsRefused('openapi', {
      info: { license: { name: 'MIT', identifier: 'MIT', url: 'https://opensource.org/licenses/MIT' } },
      tags: [{ name: 'pets' }, { name: 'store' }, { name: 'pets', description: 'Again.' }]
    }, [
      'openapi.info.license: identifier and url exclude each other in OpenAPI 3.1; give one',
      'openapi.tags[2].name: "pets" is listed already; each tag once'
    ])
    // What the pattern lets through and a URL parser refuses (the base path is read from it).
    await assertOptionsRefused('openapi', { servers: [{ url: '/v1' }, { url: 'https://api.example.com:99999/v2' }, { url: 'http://[::1/v3' }] }, [
      'openapi.servers[1].url: expected a URL, absolute or relative (/v1), found "https://api.example.com:99999/v2", which does not parse as one',
      'openapi.servers[2].url: expected a URL, absolute or relative (/v1), found "http://[::1/v3", which does not parse as one'
    ])
  })
})
