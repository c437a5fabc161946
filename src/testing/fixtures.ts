/**
 * The fixture runner: JSON files, each one test, validated against `fixtureSchema` and run
 * through the test client: HTTP exchanges over inject(), streamed bodies, event streams and
 * WebSocket sessions over a real socket, and state checked once background tasks drain.
 *
 *     await runFixtures(client, 'testing_data')          // all, or one error naming each failure
 *
 *     for (const fixture of await loadFixtures('testing_data')) {
 *       test(`${fixture.name}: ${fixture.description}`, async () => { await runFixture(client, fixture) })
 *     }
 *
 * A fixture with `options` or `routes` gets an app of its own (createTestClient, closed after
 * it); one without runs against the app of the client given.
 */
import { loadAjv, type AjvError, type AjvValidator } from '../ajv.js'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { HTTPMethods } from 'fastify'
import { createTestClient, type TestClient } from './client.js'
import { fixtureSchema } from './fixture-schema.js'
import { fixtureRoutes, bytesOf, type FixtureChunk, type FixtureClose, type FixtureRoute } from './fixture-routes.js'
import { expectMatch, valueAt } from './match.js'
import { within } from './sockets.js'
import type { TestResponse } from './response.js'

type Headers = Record<string, string>

interface ExchangeCommon {
  name?: string
  /** Wait for the background tasks to drain first. */
  afterTasks?: true
}

/** An HTTP request through inject() and the response expected. */
export interface HttpExchange extends ExchangeCommon {
  request: { method: string, url: string, headers?: Headers, body?: unknown, payload?: string }
  expect: { status: number, headers?: Headers, body?: unknown, bodyBase64?: string, select?: Record<string, unknown> }
}

/** A GET over a real socket, its body expected as chunks (compared joined). */
export interface StreamExchange extends ExchangeCommon {
  stream: { url: string, headers?: Headers }
  expect: { status: number, headers?: Headers, chunks: FixtureChunk[] }
}

/** An event stream and the first events expected, in order. */
export interface SseExchange extends ExchangeCommon {
  sse: { url: string, headers?: Headers }
  expect: { headers?: Headers, events: Array<{ event?: string, data: unknown, id?: string, retry?: number }>, ended?: boolean }
}

/** One step of a WebSocket session (exactly one key). */
export interface WsStep {
  send?: unknown
  sendBinary?: string
  receive?: unknown
  receiveBinary?: string
  ping?: string
  close?: FixtureClose
  closed?: FixtureClose
}

/** A WebSocket session: the upgrade, then steps. */
export interface WsExchange extends ExchangeCommon {
  ws: { url: string, headers?: Headers, protocols?: string[] }
  expect?: { status?: 101, headers?: Headers }
  steps: WsStep[]
}

export type FixtureExchange = HttpExchange | StreamExchange | SseExchange | WsExchange

/** A fixture file's content. */
export interface Fixture {
  description: string
  options?: Record<string, unknown>
  routes?: FixtureRoute[]
  requests: FixtureExchange[]
}

/** A fixture file, read and validated. */
export interface LoadedFixture {
  path: string
  /** The path relative to the directory loaded, with `/`. */
  name: string
  /** The fixture's description, or why it could not be read. */
  description: string
  fixture?: Fixture
  /** Why the file is not a valid fixture; runFixture fails with it. */
  invalid?: string
}

export interface FixtureResult {
  name: string
  path: string
  description: string
  exchanges: number
  durationMs: number
}

export interface FixtureOptions {
  /** How long one read (a response, an event, a message, a close) may take, in ms. Default: 5000. */
  timeout?: number
}

/** runFixtures' rejection: every failing fixture, with why. */
export class FixtureFailures extends Error {
  constructor (readonly failures: Array<{ name: string, error: Error }>, readonly results: FixtureResult[], dir: string) {
    super(`runFixtures(${dir}): ${failures.length} of ${failures.length + results.length} fixtures failed\n${failures.map((f) => `- ${f.name}: ${f.error.message}`).join('\n')}`)
    this.name = 'FixtureFailures'
  }
}

let validator: Promise<AjvValidator> | undefined

/** The schema compiled with Ajv (src/ajv.ts). */
async function validate (): Promise<AjvValidator> {
  validator ??= loadAjv().then((ajv) => {
    if (ajv === undefined) throw new Error('runFixtures needs ajv (installed with fastify), which cannot be loaded')
    return ajv.compile(fixtureSchema)
  })
  return await validator
}

/** Ajv's errors as a reader wants them: where and what, the `oneOf` branches summed up. */
function schemaErrors (errors: AjvError[]): string {
  const lines = new Set<string>()
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf')
  for (const error of errors) {
    const at = error.instancePath === '' ? '/' : error.instancePath
    if (error.keyword === 'if') continue
    if (error.keyword === 'required' && oneOfs.some((o) => o.instancePath === error.instancePath && error.schemaPath.startsWith(`${o.schemaPath}/`))) continue
    if (error.keyword === 'oneOf') {
      const branches = errors.filter((e) => e.keyword === 'required' && e.instancePath === error.instancePath && e.schemaPath.startsWith(`${error.schemaPath}/`))
      const names = branches.map((e) => String(e.params.missingProperty))
      lines.add(error.params.passingSchemas === null ? `${at}: needs one of ${names.join(', ')}` : `${at}: has more than one of the keys that pick what it is`)
      continue
    }
    const extra = error.params.additionalProperty === undefined ? '' : ` (${String(error.params.additionalProperty)})`
    lines.add(`${at}: ${error.message ?? error.keyword}${extra}`)
  }
  return [...lines].join('; ')
}

/** Every `*.json` under `dir`, recursively (`*.schema.json` excepted), read and validated, by path. */
export async function loadFixtures (dir: string): Promise<LoadedFixture[]> {
  const check = await validate()
  const files = (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile() && entry.name.endsWith('.json') && !entry.name.endsWith('.schema.json'))
    .map((entry) => join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name)) // parentPath: Node 20.12
    .sort()
  return await Promise.all(files.map(async (path): Promise<LoadedFixture> => {
    const name = relative(dir, path).split(sep).join('/')
    let content: unknown
    try {
      content = JSON.parse(await readFile(path, 'utf8'))
    } catch (error) {
      return { path, name, description: 'not JSON', invalid: `not JSON: ${(error as Error).message}` }
    }
    const description = String((content as { description?: unknown } | null)?.description ?? '(no description)')
    if (!check(content)) return { path, name, description, invalid: `does not match the fixture schema: ${schemaErrors(check.errors ?? [])}` }
    return { path, name, description, fixture: content as Fixture }
  }))
}

/** Runs one fixture; throws an Error saying which exchange failed and why. `client` may be undefined when the fixture has options or routes. */
export async function runFixture (client: TestClient | undefined, loaded: LoadedFixture, options: FixtureOptions = {}): Promise<FixtureResult> {
  const { fixture } = loaded
  if (fixture === undefined) throw new Error(loaded.invalid ?? 'not loaded')
  const started = performance.now()
  const own = fixture.options !== undefined || fixture.routes !== undefined
  if (!own && client === undefined) throw new Error('the fixture has no options or routes, and no client was given to run it against')
  // Relative paths in the options are relative to the fixture, as a config file's are to its directory.
  const target = own
    ? await createTestClient({ ...fixture.options, app: fixtureRoutes(fixture.routes ?? []) }, { baseDir: dirname(resolve(loaded.path)) })
    : client as TestClient
  let failure: unknown
  try {
    for (const [i, exchange] of fixture.requests.entries()) {
      const where = `requests[${i}]${exchange.name === undefined ? '' : ` (${exchange.name})`}`
      if (exchange.afterTasks === true) await target.tasks.drain({ timeout: options.timeout ?? 5000 })
      await runExchange(target, exchange, where, options.timeout ?? 5000)
    }
  } catch (error) {
    failure = error
  }
  if (own) {
    try {
      await target.close()
    } catch (error) {
      failure ??= error
    }
  }
  if (failure !== undefined) throw failure
  return { name: loaded.name, path: loaded.path, description: loaded.description, exchanges: fixture.requests.length, durationMs: performance.now() - started }
}

/**
 * Runs every fixture under `dir` (recursively), one after another. Resolves with the results
 * when all pass; rejects with a `FixtureFailures` naming each failing fixture and why (an
 * invalid file, a fixture that failed), and when `dir` holds none.
 */
export async function runFixtures (client: TestClient | undefined, dir: string, options: FixtureOptions = {}): Promise<FixtureResult[]> {
  const loaded = await loadFixtures(dir)
  if (loaded.length === 0) throw new Error(`runFixtures(${dir}): no *.json fixtures there`)
  const results: FixtureResult[] = []
  const failures: Array<{ name: string, error: Error }> = []
  for (const fixture of loaded) {
    try {
      results.push(await runFixture(client, fixture, options))
    } catch (error) {
      failures.push({ name: fixture.name, error: error instanceof Error ? error : new Error(String(error)) })
    }
  }
  if (failures.length > 0) throw new FixtureFailures(failures, results, dir)
  return results
}

async function runExchange (client: TestClient, exchange: FixtureExchange, where: string, timeout: number): Promise<void> {
  if ('request' in exchange) return await http(client, exchange, where)
  if ('stream' in exchange) return await stream(client, exchange, where, timeout)
  if ('sse' in exchange) return await sse(client, exchange, where, timeout)
  return await ws(client, exchange, where, timeout)
}

/** Expected headers are strings: a list (set-cookie, as a real client reads it) is compared by its values joined, as fetch's `headers.get()` gives them. */
function expectHeaders (actual: Record<string, unknown>, expected: Headers | undefined, where: string): void {
  for (const [name, value] of Object.entries(expected ?? {})) {
    const got = actual[name.toLowerCase()]
    expectMatch(Array.isArray(got) ? got.join(', ') : got, value, `${where} header ${name}`, actual)
  }
}

function expectStatus (status: number, expected: number, where: string, body: () => string): void {
  if (status !== expected) throw new Error(`${where}: status: expected ${expected}, got ${status} (body: ${body().slice(0, 500)})`)
}

/** The body as fixtures compare it: JSON, the values of NDJSON lines, or text. */
function parsedBody (response: TestResponse): unknown {
  const type = String(response.headers['content-type'])
  if (/ndjson/.test(type)) return response.text().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as unknown)
  return /json/.test(type) ? response.json() : response.text()
}

async function http (client: TestClient, { request, expect }: HttpExchange, where: string): Promise<void> {
  const response = await client.request(request.method as HTTPMethods, request.url, { headers: request.headers, json: request.body, body: request.payload })
  expectStatus(response.status, expect.status, where, () => response.text())
  expectHeaders(response.headers, expect.headers, where)
  if (expect.bodyBase64 !== undefined && response.rawBody.toString('base64') !== expect.bodyBase64) {
    throw new Error(`${where}: body bytes: expected (base64) ${expect.bodyBase64}, got ${response.rawBody.toString('base64')}`)
  }
  if (expect.body === undefined && expect.select === undefined) return
  const body = parsedBody(response)
  if (expect.body !== undefined) expectMatch(body, expect.body, `${where} body`, response.headers)
  for (const [pointer, value] of Object.entries(expect.select ?? {})) expectMatch(valueAt(body, pointer), value, `${where} body at ${pointer}`, response.headers)
}

/** Bytes for a message: text when they are UTF-8 text, else base64. */
function showBytes (bytes: Buffer): string {
  const text = bytes.toString('utf8')
  // eslint-disable-next-line no-control-regex
  return Buffer.from(text, 'utf8').equals(bytes) && !/[\x00-\x08\x0e-\x1f]/.test(text) ? JSON.stringify(text) : `(base64) ${bytes.toString('base64')}`
}

async function stream (client: TestClient, { stream: request, expect }: StreamExchange, where: string, timeout: number): Promise<void> {
  const response = await client.stream(request.url, { headers: request.headers })
  try {
    const read = async (): Promise<Buffer> => {
      const chunks: Buffer[] = []
      for await (const chunk of response) chunks.push(chunk)
      return Buffer.concat(chunks)
    }
    const body = await within(read(), timeout, `${where}: the end of the body`)
    expectStatus(response.status, expect.status, where, () => body.toString())
    expectHeaders(response.headers, expect.headers, where)
    const expected = Buffer.concat(expect.chunks.map((c) => Buffer.from(bytesOf(c))))
    if (!body.equals(expected)) throw new Error(`${where}: body: expected ${showBytes(expected)}, got ${showBytes(body)}`)
  } finally {
    response.close()
  }
}

async function sse (client: TestClient, { sse: request, expect }: SseExchange, where: string, timeout: number): Promise<void> {
  const events = await client.sse(request.url, { headers: request.headers, timeout })
  let ended = false
  void events.ended.then(() => { ended = true })
  try {
    expectHeaders(events.headers, expect.headers, where)
    for (const [i, want] of expect.events.entries()) {
      const at = `${where} event ${i}`
      const got = await events.next()
      if (want.event !== undefined) expectMatch(got.event, want.event, `${at} event`)
      if (want.id !== undefined) expectMatch(got.id, want.id, `${at} id`)
      if (want.retry !== undefined) expectMatch(got.retry, want.retry, `${at} retry`)
      if (typeof want.data === 'string') {
        expectMatch(got.data, want.data, `${at} data`)
      } else {
        let data: unknown
        try {
          data = JSON.parse(got.data)
        } catch {
          throw new Error(`${at} data: expected JSON, got ${JSON.stringify(got.data)}`)
        }
        expectMatch(data, want.data, `${at} data`)
      }
    }
    if (expect.ended === true) {
      await within(events.ended, timeout, `${where}: the end of the stream`)
      const extra = await events.next({ timeout: 1 }).catch(() => undefined)
      if (extra !== undefined) throw new Error(`${where}: an event after the expected ones: ${JSON.stringify(extra)}`)
    } else if (expect.ended === false) {
      await new Promise((resolve) => setImmediate(resolve))
      if (ended) throw new Error(`${where}: the stream ended; expected it still open`)
    }
  } finally {
    events.close()
  }
}

async function ws (client: TestClient, exchange: WsExchange, where: string, timeout: number): Promise<void> {
  const socket = await client.ws(exchange.ws.url, { headers: exchange.ws.headers, protocols: exchange.ws.protocols, timeout })
  try {
    if (exchange.expect?.status !== undefined) expectMatch(socket.status, exchange.expect.status, `${where} upgrade status`)
    expectHeaders(socket.headers, exchange.expect?.headers, `${where} upgrade`)
    for (const [i, step] of exchange.steps.entries()) {
      const at = `${where} step ${i}`
      if ('send' in step) {
        socket.send(step.send)
      } else if (step.sendBinary !== undefined) {
        socket.send(Buffer.from(step.sendBinary, 'base64'))
      } else if ('receive' in step) {
        const got = await socket.next().catch((error: Error) => { throw new Error(`${at}: ${error.message}`) })
        if (Buffer.isBuffer(got)) throw new Error(`${at}: expected a text message, got a binary one: ${showBytes(got)}`)
        expectMatch(got, step.receive, `${at} message`)
      } else if (step.receiveBinary !== undefined) {
        const got = await socket.next().catch((error: Error) => { throw new Error(`${at}: ${error.message}`) })
        const want = Buffer.from(step.receiveBinary, 'base64')
        if (!Buffer.isBuffer(got) || !got.equals(want)) throw new Error(`${at}: expected the binary message ${showBytes(want)}, got ${Buffer.isBuffer(got) ? showBytes(got) : `the text message ${JSON.stringify(got)}`}`)
      } else if (step.ping !== undefined) {
        const pong = await socket.ping(step.ping).catch((error: Error) => { throw new Error(`${at}: ${error.message}`) })
        if (pong.toString() !== step.ping) throw new Error(`${at}: the pong's payload: expected ${JSON.stringify(step.ping)}, got ${showBytes(pong)}`)
      } else if (step.close !== undefined) {
        const code = step.close.code ?? 1000
        const closed = await within(socket.close(code, step.close.reason), timeout, `${at}: the close`)
        if (closed.code !== code) throw new Error(`${at}: the server answered the close ${code} with ${closed.code}${closed.reason === '' ? '' : ` (${closed.reason})`}`)
      } else if (step.closed !== undefined) {
        const closed = await within(socket.closed, timeout, `${at}: the server's close`)
        if (step.closed.code !== undefined) expectMatch(closed.code, step.closed.code, `${at} close code`)
        if (step.closed.reason !== undefined) expectMatch(closed.reason, step.closed.reason, `${at} close reason`)
      }
    }
  } finally {
    if (socket.socket.readyState !== socket.socket.CLOSED) await within(socket.close(1000), timeout, `${where}: closing the socket`).catch(() => socket.socket.terminate())
  }
}
