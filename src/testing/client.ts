/**
 * `createTestClient`: an app built as `spikard start` builds it, without listening, and a
 * client for it. HTTP goes through `inject()` (light-my-request): no socket, no port. A
 * WebSocket, an event stream or a streamed body needs a real socket: the app listens on
 * an ephemeral port of 127.0.0.1 the first time one is asked for.
 *
 * No test framework is assumed: failures are thrown Errors whose message says what came
 * back, so node:test, vitest and jest report them alike.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, HTTPMethods, InjectOptions } from 'fastify'
import { createServer, type CreateServerConfig } from '../server.js'
import { loadConfig } from '../config/load.js'
import { testResponse, type TestResponse } from './response.js'
import { openEventStream, openStream, openWebSocket, type Opened, type ReadOptions, type TestEventStream, type TestStream, type TestWebSocket, type WsOptions } from './sockets.js'
import { mintJwt, configuredApiKey, type JwtOptions } from './credentials.js'

export interface RequestOptions {
  query?: Record<string, string | string[]>
  headers?: Record<string, string>
  /** Sent as JSON, with `Content-Type: application/json`. Not with `body`. */
  json?: unknown
  /** Sent as it is (set the Content-Type in `headers`). Not with `json`. */
  body?: string | Buffer
  cookies?: Record<string, string>
}

export interface TestClient {
  /** The app under test. */
  app: FastifyInstance
  get: (path: string, options?: RequestOptions) => Promise<TestResponse>
  post: (path: string, options?: RequestOptions) => Promise<TestResponse>
  put: (path: string, options?: RequestOptions) => Promise<TestResponse>
  patch: (path: string, options?: RequestOptions) => Promise<TestResponse>
  delete: (path: string, options?: RequestOptions) => Promise<TestResponse>
  head: (path: string, options?: RequestOptions) => Promise<TestResponse>
  options: (path: string, options?: RequestOptions) => Promise<TestResponse>
  /** Any method. */
  request: (method: HTTPMethods, path: string, options?: RequestOptions) => Promise<TestResponse>
  /** A client sending `Authorization: Bearer <token>`, a token minted for these claims that the app accepts. */
  withJwt: (claims?: Record<string, unknown>, options?: JwtOptions) => TestClient
  /** A client sending this API key (by default the first configured key) in the configured header. */
  withApiKey: (key?: string) => TestClient
  /** A client sending these headers on every request (and upgrade). */
  withHeaders: (headers: Record<string, string>) => TestClient
  /** A WebSocket over a real socket. */
  ws: (path: string, options?: WsOptions) => Promise<TestWebSocket>
  /** An event stream over a real socket, parsed as EventSource parses it. */
  sse: (path: string, options?: ReadOptions & { headers?: Record<string, string> }) => Promise<TestEventStream>
  /** A response body over a real socket, chunk by chunk. */
  stream: (path: string, options?: { headers?: Record<string, string>, timeout?: number }) => Promise<TestStream>
  tasks: {
    /** Resolves once no background task is queued or running (within `timeout` ms, default 5000). */
    drain: (options?: { timeout?: number }) => Promise<void>
  }
  /** Closes the app; fails, naming them, when sockets this client opened are still open (they are closed first). A request still in flight fails; every method throws afterwards. */
  close: () => Promise<void>
}

/** An app to test: a Fastify instance (spikard registered on it), spikard's config (as createServer takes it), or a config file's path. */
export type TestClientSource = FastifyInstance | CreateServerConfig | string

export interface TestClientOptions {
  /** The app's log level: `silent` unless set (a Fastify instance keeps its own logger). */
  logLevel?: string
  /** Where relative paths in spikard's config (a static mount's root, the app module) start: by default the config file's directory, else the working directory. */
  baseDir?: string
}

/** Builds the app and a client for it. */
export async function createTestClient (source: TestClientSource = {}, options: TestClientOptions = {}): Promise<TestClient> {
  checkArguments(source, options)
  const app = await build(source, options.logLevel ?? 'silent', options.baseDir)
  await app.ready()
  return client(new Shared(app), {})
}

/** Refuses what createTestClient cannot use, before anything is built: a number, a list or a Map would otherwise pass for an empty config. */
function checkArguments (source: unknown, options: unknown): void {
  if (typeof source !== 'string' && !isFastify(source) && !isPlainObject(source)) {
    throw new TypeError(`createTestClient(source): expected a config file path (a string), spikard's options (an object) or a Fastify instance, found ${found(source)}`)
  }
  if (!isObject(options)) throw new TypeError(`createTestClient(source, options): expected an object ({ logLevel, baseDir }), found ${found(options)}`)
  for (const key of ['logLevel', 'baseDir']) {
    if (options[key] !== undefined && typeof options[key] !== 'string') throw new TypeError(`createTestClient(source, options): options.${key}: expected a string, found ${found(options[key])}`)
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Options as an object literal or JSON.parse makes them (a null prototype too), not a Map or a class instance. */
function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (!isObject(value)) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** A wrong argument, for a TypeError: a number or boolean as it is, anything else by its kind. */
function found (value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value)
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  // A Map, a Date, a class instance: by its constructor's name.
  const made = typeof value === 'object' ? (value as { constructor?: { name?: unknown } }).constructor?.name : undefined
  return typeof made === 'string' && made !== 'Object' && made !== '' ? `a ${made}` : `a${typeof value === 'object' ? 'n' : ''} ${typeof value}`
}

/**
 * The config as a test builds it: its log level set, and the shutdown's signal handling
 * off (`shutdown.signals: false`): the app is one of many in the test process, closed by
 * `client.close()`; its SIGTERM and uncaught-exception handlers would end the whole test
 * run at the first stray error in any test, and pile up one set per client.
 */
export function forTests (config: CreateServerConfig, level: string): CreateServerConfig {
  const shutdown = config.shutdown
  return {
    ...config,
    server: { ...config.server, logger: { ...config.server?.logger, level } },
    ...(shutdown === false
      ? {}
      : { shutdown: { ...(typeof shutdown === 'object' ? shutdown : shutdown === true || shutdown === undefined ? {} : { timeout: shutdown }), signals: false } })
  } as CreateServerConfig
}

async function build (source: TestClientSource, level: string, baseDir: string | undefined): Promise<FastifyInstance> {
  if (typeof source === 'string') {
    const { file, config } = loadConfig({ file: source })
    return await createServer(forTests(config, level), { baseDir: baseDir ?? dirname(file) })
  }
  if (isFastify(source)) return source
  return await createServer(forTests(source, level), { baseDir })
}

function isFastify (value: unknown): value is FastifyInstance {
  return isObject(value) && typeof value.inject === 'function' && typeof value.register === 'function'
}

/** What every client derived from one `createTestClient` shares: the app, its address, what was opened. */
class Shared {
  readonly opened = new Set<Opened>()
  /** Requests sent through inject() and not answered yet: close() fails them, naming them. */
  readonly inFlight = new Set<{ what: string, fail: (error: Error) => void }>()
  closed = false
  #origin: Promise<string> | undefined

  constructor (readonly app: FastifyInstance) {}

  /** Throws once close() has been called: the app is gone, and listening again would keep the process alive. */
  assertOpen (what: string): void {
    if (this.closed) throw new Error(`${what}: the client is closed (client.close() was called)`)
  }

  /** `http://127.0.0.1:<port>`, listening on first use (or where the app already listens). */
  async origin (what: string): Promise<string> {
    this.assertOpen(what)
    this.#origin ??= (async () => {
      const address = this.app.server.address()
      if (address !== null && typeof address === 'object') return `http://127.0.0.1:${address.port}`
      await this.app.listen({ host: '127.0.0.1', port: 0 })
      return `http://127.0.0.1:${(this.app.server.address() as { port: number } | null)?.port ?? 0}`
    })()
    const origin = await this.#origin
    // close() may have been called while the app started listening.
    this.assertOpen(what)
    return origin
  }

  track<T extends Opened>(opened: T): T {
    this.opened.add(opened)
    return opened
  }
}

function client (shared: Shared, defaults: Record<string, string>): TestClient {
  const { app } = shared
  const request = async (method: HTTPMethods, path: string, options: RequestOptions = {}): Promise<TestResponse> => {
    // One body: a test that passes both means one of them, and would otherwise send the JSON without a word.
    if (options.json !== undefined && options.body !== undefined) {
      throw new TypeError(`${method} ${path}: options.json and options.body are both set; pass one (json is sent as JSON, body as it is)`)
    }
    const headers: Record<string, string> = { ...defaults, ...options.headers }
    // inject() sends any header; a real client refuses, with these errors (ERR_INVALID_HTTP_TOKEN,
    // ERR_INVALID_CHAR), a name that is not a token and a value holding CR, LF, another control character or one beyond Latin-1.
    for (const [name, value] of Object.entries(headers)) {
      validateHeaderName(name)
      validateHeaderValue(name, value)
    }
    const inject: InjectOptions = { method, url: path, headers, query: options.query, cookies: options.cookies }
    if (options.json !== undefined) {
      inject.payload = JSON.stringify(options.json)
      // Header names are case-insensitive: a `Content-Type` of the test's own is kept.
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json'
    } else if (options.body !== undefined) {
      inject.payload = options.body
    }
    const what = `${method} ${path}`
    shared.assertOpen(what)
    return await new Promise<TestResponse>((resolve, reject) => {
      const entry = { what, fail: reject }
      shared.inFlight.add(entry)
      app.inject(inject).then((response) => { resolve(testResponse(response, what)) }).catch(reject).finally(() => shared.inFlight.delete(entry))
    })
  }
  const http = (method: HTTPMethods) => async (path: string, options?: RequestOptions) => await request(method, path, options)
  const self: TestClient = {
    app,
    get: http('GET'),
    post: http('POST'),
    put: http('PUT'),
    patch: http('PATCH'),
    delete: http('DELETE'),
    head: http('HEAD'),
    options: http('OPTIONS'),
    request,
    withJwt: (claims = {}, options) => client(shared, { ...defaults, authorization: `Bearer ${mintJwt(app, claims, options)}` }),
    withApiKey: (key) => {
      const { header, key: chosen } = configuredApiKey(app, key)
      return client(shared, { ...defaults, [header]: chosen })
    },
    withHeaders: (headers) => client(shared, { ...defaults, ...headers }),
    ws: async (path, options = {}) => {
      const url = (await shared.origin(`ws ${path}`)).replace(/^http/, 'ws') + path
      return shared.track(await openWebSocket(url, { ...options, headers: { ...defaults, ...options.headers } }))
    },
    sse: async (path, options = {}) => shared.track(await openEventStream((await shared.origin(`sse ${path}`)) + path, { ...options, headers: { ...defaults, ...options.headers } })),
    stream: async (path, options = {}) => shared.track(await openStream((await shared.origin(`stream ${path}`)) + path, { ...defaults, ...options.headers }, options.timeout)),
    tasks: {
      drain: async ({ timeout = 5000 } = {}) => {
        shared.assertOpen('client.tasks.drain()')
        const tasks = (app as Partial<Pick<FastifyInstance, 'tasks'>>).tasks
        if (tasks === undefined) throw new Error('client.tasks.drain(): the app has no background tasks (the tasks feature is off)')
        const timer = new AbortController()
        const late = sleep(timeout, undefined, { signal: timer.signal }).then(() => {
          const { queued, running } = tasks.stats()
          throw new Error(`client.tasks.drain(): ${running} running and ${queued} queued after ${timeout} ms`)
        }, () => {})
        try {
          await Promise.race([tasks.idle(), late])
        } finally {
          timer.abort()
        }
      }
    },
    close: async () => {
      if (shared.closed) return
      shared.closed = true
      for (const request of shared.inFlight) request.fail(new Error(`${request.what}: client.close() was called before it was answered`))
      const left = [...shared.opened].filter((o) => o.isOpen())
      for (const opened of left) opened.destroy()
      await app.close()
      if (left.length > 0) throw new Error(`client.close(): still open, closed now: ${left.map((o) => o.what).join(', ')}; close them in the test`)
    }
  }
  return self
}
