/**
 * What every benchmark server shares: the payloads, the POST schema, the JWT parameters,
 * the 1 GB stream source, the log destination, and `serve()`, which reports readiness to
 * the harness over IPC and closes the server cleanly when told to (or when the harness
 * goes away). Each bench/servers/<name>.ts is one server, started in its own process by
 * bench/run.ts; run one by hand with `node --import tsx bench/servers/<name>.ts`.
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { Ajv } from 'ajv'
import pino from 'pino'

export const HOST = '127.0.0.1'

/** The small JSON response of every GET route (74 bytes serialized). */
export const PAYLOAD = { hello: 'world', id: 42, tags: ['fast', 'safe'], active: true, score: 0.5 }

/** The POST body, echoed back after validation. */
export const ITEM = { name: 'widget', price: 9.5, tags: ['a', 'b'] }

export const ITEM_SCHEMA = {
  type: 'object',
  required: ['name', 'price'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    price: { type: 'number', minimum: 0 },
    tags: { type: 'array', maxItems: 10, items: { type: 'string', maxLength: 20 } }
  }
} as const

/** For the servers that are not Fastify (raw, Express, Hono): one compiled validator. */
export function itemValidator (): (body: unknown) => boolean {
  const validate = new Ajv().compile(ITEM_SCHEMA)
  return (body) => validate(body)
}

/** HS256 parameters: the harness mints the token with jose, the servers verify it. */
export const JWT = {
  secret: 'spikard-bench-only-hs256-secret-0123456789abcdef',
  issuer: 'https://bench.spikard.dev',
  audience: 'spikard-bench',
  subject: 'user-42'
} as const

/** The routes, the same on every server. */
export const ROUTES = { json: '/json', post: '/items', jwt: '/jwt', limited: '/limited', stream: '/stream', streamGen: '/stream-gen', streamFile: '/stream-file', task: '/task' } as const

export const STREAM_CHUNK_BYTES = 64 * 1024
/** Bytes of the streamed response: 1 GiB unless the harness says otherwise. */
export const STREAM_BYTES = Number(process.env.BENCH_STREAM_BYTES ?? 1024 ** 3)

const CHUNK = Buffer.alloc(STREAM_CHUNK_BYTES, 'spikard streams ')

/** The streamed body: the same 64 KB buffer pushed until STREAM_BYTES are out (no disk, no allocation per chunk). */
export function streamSource (total = STREAM_BYTES): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= total) {
        this.push(null)
        return
      }
      const chunk = total - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - sent)
      sent += chunk.length
      this.push(chunk)
    }
  })
}

/**
 * The same bytes from an async generator (issue 17's streaming line): the 64 KB buffer
 * yielded until `total` bytes are out. `GET /stream-gen?bytes=N` asks for fewer (the gzip
 * case); anything else is the whole STREAM_BYTES.
 */
export async function * generatorSource (total = STREAM_BYTES): AsyncGenerator<Buffer> {
  for (let sent = 0; sent < total; sent += CHUNK.length) {
    yield total - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - sent)
  }
}

/** The byte count a generator route was asked for (`?bytes=N`, at most STREAM_BYTES), from a request URL. */
export function requestedBytes (url: string | undefined): number {
  const n = Number(new URL(url ?? '/', 'http://x').searchParams.get('bytes') ?? STREAM_BYTES)
  return Number.isSafeInteger(n) && n >= 0 ? Math.min(n, STREAM_BYTES) : STREAM_BYTES
}

/**
 * The file of `GET /stream-file`: written by the harness into its temporary directory for
 * the run (BENCH_STREAM_FILE, STREAM_BYTES of the same pattern) and removed afterwards.
 */
export function streamFile (): string {
  const file = process.env.BENCH_STREAM_FILE
  if (file === undefined || file === '') throw new Error('GET /stream-file: BENCH_STREAM_FILE is not set (the harness creates the file)')
  return file
}

/**
 * The log file of a server. The harness reads its size (log bytes per request) and
 * truncates it between runs.
 */
export function logPath (name: string): string {
  const dir = process.env.BENCH_LOG_DIR ?? join(tmpdir(), 'spikard-bench-logs')
  mkdirSync(dir, { recursive: true })
  // The harness names each server process (several may run one file, as --ablate does).
  const file = (process.env.BENCH_SERVER_NAME ?? name).replace(/[^A-Za-z0-9._-]+/g, '_')
  return join(dir, `${file}.log`)
}

/**
 * The log file of a server and a destination writing to it: pino.destination, which is
 * what Fastify's `logger: { file }` uses (SonicBoom writing in the background, a write as
 * soon as the previous one has finished), so the logging servers write through the same
 * kind of sink as spikard's default.
 */
export function logDestination (name: string): { path: string, stream: NodeJS.WritableStream } {
  const path = logPath(name)
  return { path, stream: pino.destination(path) as unknown as NodeJS.WritableStream }
}

/** What a server tells the harness about itself, shown in the report. */
export interface ServerInfo {
  /** Whether GET /jwt really verifies the token (else it is the plain route). */
  verifiesJwt: boolean
  /** Whether GET /limited really goes through a rate limiter (else it is the plain route). */
  limitsRate: boolean
  /** The log file, when the server logs. */
  log?: string
  /** Features asked for but not available (name -> why), shown next to the results. */
  missing?: Record<string, string>
  notes?: string[]
}

export interface Started {
  server: Server
  close: () => Promise<void>
  info: ServerInfo
}

export type ReadyMessage = { type: 'ready', port: number, info: ServerInfo } | { type: 'error', message: string }

/**
 * Starts the server, reports `{ type: 'ready', port, info }` to the harness, and closes
 * it on `{ type: 'stop' }` or when the IPC channel goes away (the harness died), then
 * exits 0; a close that hangs exits 1 after 5 s. Without an IPC channel (run by hand) it
 * prints the port and stops on SIGINT/SIGTERM.
 */
export async function serve (start: () => Promise<Started>): Promise<void> {
  let started: Started
  try {
    started = await start()
  } catch (error) {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
    if (process.send !== undefined) process.send({ type: 'error', message } satisfies ReadyMessage)
    else console.error(message)
    process.exitCode = 1
    process.disconnect?.()
    return
  }
  const { port } = started.server.address() as AddressInfo

  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    const force = setTimeout(() => process.exit(1), 5000)
    force.unref()
    started.close().then(() => process.exit(0), (error) => {
      console.error(error)
      process.exit(1)
    })
  }

  if (process.send !== undefined) {
    process.on('message', (message: { type?: string }) => { if (message?.type === 'stop') stop() })
    process.on('disconnect', stop)
    process.send({ type: 'ready', port, info: started.info } satisfies ReadyMessage)
  } else {
    console.log(`listening on http://${HOST}:${port}`)
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  }
}

/** Closes a node:http server, ending idle keep-alive connections at once. */
export function closeHttpServer (server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => error === undefined ? resolve() : reject(error))
    server.closeAllConnections()
  })
}
