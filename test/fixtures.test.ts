/**
 * The fixture runner: every testing_data/<feature>/*.json file becomes one test,
 * validated against testing_data/fixture.schema.json and run through inject().
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { Ajv } from 'ajv'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import { createServer } from '../src/server.js'
import { UUID } from './helpers.js'
import { ndjson } from '../src/index.js'

const root = join(import.meta.dirname, '..', 'testing_data')
const validateFixture = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(join(root, 'fixture.schema.json'), 'utf8')))

interface Handler {
  sleep?: number
  reply?: { status?: number, headers?: Record<string, string>, body?: unknown }
  throw?: { message: string, status?: number }
  stream?: { chunks: Array<string | { base64: string }>, contentType?: string, headers?: Record<string, string>, source?: 'readable' | 'generator' | 'web' }
  ndjson?: unknown[]
  echo?: true
  /** Background tasks (request.tasks.add) recording the request body, after `sleep` ms each. */
  task?: { count?: number, sleep?: number }
  /** Reply with what the tasks recorded so far. */
  recorded?: true
}

interface Fixture {
  description: string
  options: Record<string, unknown>
  routes?: Array<{ method: HTTPMethods, url: string, options?: Record<string, unknown>, handler: Handler }>
  requests: Array<{
    name?: string
    afterTasks?: true
    request: { method: string, url: string, headers?: Record<string, string>, body?: unknown, payload?: string }
    expect: { status: number, headers?: Record<string, string>, body?: unknown, bodyBase64?: string, select?: Record<string, unknown> }
  }>
}

function handlerFor (h: Handler, recorded: unknown[]) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (h.sleep !== undefined) await sleep(h.sleep)
    for (let i = 0; i < (h.task?.count ?? (h.task === undefined ? 0 : 1)); i++) {
      request.tasks.add(async function record () { await sleep(h.task?.sleep ?? 0); recorded.push(request.body ?? null) })
    }
    if (h.recorded === true) return recorded
    if (h.throw !== undefined) throw Object.assign(new Error(h.throw.message), h.throw.status === undefined ? {} : { statusCode: h.throw.status })
    if (h.stream !== undefined) {
      if (h.stream.headers !== undefined) reply.headers(h.stream.headers)
      return reply.type(h.stream.contentType ?? 'text/plain').send(streamOf(h.stream.chunks.map((c) => typeof c === 'string' ? c : Buffer.from(c.base64, 'base64')), h.stream.source))
    }
    if (h.ndjson !== undefined) return ndjson(generate(h.ndjson))
    if (h.echo === true) return { method: request.method, params: request.params, query: request.query, body: request.body ?? null }
    if (h.reply?.headers !== undefined) reply.headers(h.reply.headers)
    return reply.code(h.reply?.status ?? 200).send(h.reply?.body ?? null)
  }
}

async function * generate<T> (items: T[]): AsyncGenerator<T> {
  yield * items
}

/** The chunks as the handler returns them: a Node Readable, an async generator or a web ReadableStream. */
function streamOf (chunks: Array<string | Buffer>, source: 'readable' | 'generator' | 'web' = 'readable'): unknown {
  if (source === 'generator') return generate(chunks)
  if (source === 'readable') return Readable.from(chunks)
  return new ReadableStream<Uint8Array>({
    start (controller) {
      for (const chunk of chunks) controller.enqueue(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk))
      controller.close()
    }
  })
}

/** Compares actual against expected, where expected strings may be markers. */
function match (actual: unknown, expected: unknown, headers: Record<string, unknown>, where: string): void {
  if (typeof expected === 'string' && expected.startsWith('$')) {
    if (expected === '$absent') return assert.equal(actual, undefined, `${where}: expected absent`)
    if (expected === '$present') return assert.notEqual(actual, undefined, `${where}: expected present`)
    if (expected === '$any-uuid') return assert.match(String(actual), UUID, `${where}: expected a UUID v4`)
    if (expected === '$any-string') return assert.equal(typeof actual, 'string', `${where}: expected a string`)
    if (expected === '$any-number') return assert.equal(typeof actual, 'number', `${where}: expected a number`)
    if (expected.startsWith('$header:')) return assert.equal(actual, headers[expected.slice(8)], `${where}: expected the ${expected.slice(8)} header`)
    throw new Error(`${where}: unknown marker ${expected}`)
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${where}: expected an array`)
    assert.equal(actual.length, expected.length, `${where}: expected ${expected.length} items`)
    expected.forEach((e, i) => match(actual[i], e, headers, `${where}[${i}]`))
    return
  }
  if (expected !== null && typeof expected === 'object') {
    assert.ok(actual !== null && typeof actual === 'object', `${where}: expected an object`)
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${where}: keys`)
    for (const [k, e] of Object.entries(expected)) match((actual as Record<string, unknown>)[k], e, headers, `${where}.${k}`)
    return
  }
  assert.equal(actual, expected, where)
}

/** The value at an RFC 6901 JSON Pointer (`/paths/~1users~1{id}/get`; "" is the whole value); undefined where there is none. */
function at (value: unknown, pointer: string): unknown {
  if (pointer === '') return value
  assert.ok(pointer.startsWith('/'), `${JSON.stringify(pointer)}: a JSON Pointer starts with "/"`)
  for (const token of pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, token)) return undefined
    value = (value as Record<string, unknown>)[token]
  }
  return value
}

async function run (fixture: Fixture): Promise<void> {
  const recorded: unknown[] = []
  const routes = async (app: FastifyInstance): Promise<void> => {
    for (const r of fixture.routes ?? []) app.route({ ...r.options, method: r.method, url: r.url, handler: handlerFor(r.handler, recorded) })
  }
  // Relative paths in the options (a static mount's root) are relative to the repository, as
  // a config file's are to its directory, whatever the working directory.
  const app = await createServer({ ...fixture.options, server: { logger: { level: 'silent' }, ...(fixture.options.server as object) }, app: routes }, { baseDir: join(root, '..') })
  try {
    for (const [i, { name, afterTasks, request, expect }] of fixture.requests.entries()) {
      const where = `request ${name ?? i}`
      if (afterTasks === true) await app.tasks.idle()
      const response = await app.inject({
        method: request.method as HTTPMethods,
        url: request.url,
        headers: request.body === undefined ? request.headers : { 'content-type': 'application/json', ...request.headers },
        payload: request.payload ?? (request.body === undefined ? undefined : JSON.stringify(request.body))
      })
      assert.equal(response.statusCode, expect.status, `${where}: status (body: ${response.body})`)
      for (const [name, value] of Object.entries(expect.headers ?? {})) match(response.headers[name.toLowerCase()], value, response.headers, `${where} header ${name}`)
      if (expect.bodyBase64 !== undefined) assert.equal(response.rawPayload.toString('base64'), expect.bodyBase64, `${where}: body bytes`)
      if (expect.body === undefined && expect.select === undefined) continue
      const type = String(response.headers['content-type'])
      const body: unknown = /ndjson/.test(type)
        ? response.body.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown)
        : /json/.test(type) ? response.json() : response.body
      if (expect.body !== undefined) match(body, expect.body, response.headers, `${where} body`)
      for (const [pointer, value] of Object.entries(expect.select ?? {})) match(at(body, pointer), value, response.headers, `${where} body at ${pointer}`)
    }
  } finally {
    await app.close()
  }
}

for (const feature of readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory())) {
  const dir = join(root, feature.name)
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json')).sort()) {
    const path = join(dir, file)
    const fixture = JSON.parse(readFileSync(path, 'utf8')) as Fixture
    test(`${relative(root, path)}: ${fixture.description}`, async () => {
      assert.ok(validateFixture(fixture), `${file} does not match fixture.schema.json: ${JSON.stringify(validateFixture.errors)}`)
      await run(fixture)
    })
  }
}
