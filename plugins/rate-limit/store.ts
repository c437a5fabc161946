/**
 * Where counts are kept: @fastify/rate-limit's stores, used directly. The memory store is an
 * LRU map per limit; the Redis store is one Lua script (INCR, then PEXPIRE on the first hit)
 * per request, under one client shared by every limit, so every instance on one Redis shares
 * each count.
 *
 * A Redis outage must never crash the process, stall requests or reach a client: the client
 * fails commands at once while disconnected (no offline queue), gives each command
 * `redisTimeout`, reconnects forever in the background, and every error it raises, as an
 * event or as a failed command, goes to one Outage that logs at most once a minute.
 *
 * ioredis is imported only when a Redis URL is configured (it is most of what loading the
 * limiter would otherwise cost).
 */
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'

export interface StoreResult { current: number, ttl: number }
/** A store as @fastify/rate-limit defines them: `incr` counts one request and reports the window's count and time left. */
export interface Store {
  incr: (key: string, callback: (error: Error | null, result?: StoreResult) => void, timeWindow: number, max: number) => void
}

// Loaded untyped (their package declares no types for them, and no `exports` map hides them).
const require = createRequire(import.meta.url)
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, cache: number) => Store
const RedisStore = require('@fastify/rate-limit/store/RedisStore.js') as new (continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string) => Store

/** At most one outage line per this many milliseconds. */
export const OUTAGE_LOG_INTERVAL = 60_000
/** Longest startup waits for Redis before going on without it (the outage policy applies meanwhile). */
const CONNECT_WAIT = 2000
/** While the store fails twice running or more, it is asked again (one request, the others answered by the policy) at most this often. */
export const PROBE_INTERVAL = 1000
/** The error a count skipped during an outage fails with: no command was sent. */
const SKIPPED = Object.assign(new Error('the store is failing: not asked'), { code: 'SKIPPED' })

/**
 * Logs store failures at most once per interval, and the recovery once; and, while the store
 * fails, lets one request at a time ask it: at once after one failure (a single command timing
 * out on a working Redis costs no more than that command), then once per PROBE_INTERVAL. A
 * Redis that hangs with its connection open (stopped, swapping, a long script) answers
 * nothing: each command would wait `redisTimeout` and stay in the client's queue until the
 * connection goes, one per request, without bound; the others get the policy at once instead.
 */
export class Outage {
  readonly #log: FastifyBaseLogger
  readonly #policy: 'allow' | 'reject'
  #since: number | undefined
  #lastLogged = -Infinity
  #suppressed = 0
  #probing = false
  #probeAt = 0
  /** Store calls failed in a row (skipped ones aside). */
  #failures = 0
  /** The last failure's code or message (a skipped count has none of its own). */
  #reason = ''

  constructor (log: FastifyBaseLogger, policy: 'allow' | 'reject') {
    this.#log = log
    this.#policy = policy
  }

  /** Whether the last store call failed (read on every request; recovering is rare). */
  get failing (): boolean { return this.#since !== undefined }

  /** Whether to fail this count at once (SKIPPED) rather than ask the store: one read while the store works. */
  skip (): boolean {
    if (this.#since === undefined) return false
    if (this.#probing || Date.now() < this.#probeAt) return true
    this.#probing = true
    return false
  }

  failed (error: Error & { code?: string }): void {
    const now = Date.now()
    this.#since ??= now
    if (error !== SKIPPED) {
      this.#probing = false
      this.#probeAt = ++this.#failures > 1 ? now + PROBE_INTERVAL : 0
      this.#reason = error.code ?? error.message
    }
    if (now - this.#lastLogged < OUTAGE_LOG_INTERVAL) {
      this.#suppressed++
      return
    }
    this.#log.error({
      store: 'redis',
      error: this.#reason,
      failuresSinceLastReport: this.#suppressed,
      downForMs: now - this.#since
    }, this.#policy === 'allow'
      ? 'rate-limit store unreachable: requests pass unlimited until it is back'
      : 'rate-limit store unreachable: requests are answered 503 until it is back')
    this.#lastLogged = now
    this.#suppressed = 0
  }

  recovered (): void {
    this.#probing = false
    this.#failures = 0
    if (this.#since === undefined) return
    this.#log.info({ store: 'redis', downForMs: Date.now() - this.#since }, 'rate-limit store reachable again')
    this.#since = undefined
    this.#lastLogged = -Infinity
    this.#suppressed = 0
  }
}

export interface Stores {
  /** The store of the global limit. */
  global: Store
  /** A store of its own for a route's limit; `name` keeps its Redis keys apart (same on every instance). */
  route: (name: string) => Store
  /** Resolves once the store can count (Redis connected), or after a short wait with the outage logged. */
  connected: () => Promise<void>
  close: () => Promise<void>
}

export function memoryStores (cacheSize: number): Stores {
  return {
    global: new LocalStore(false, false, cacheSize),
    route: () => new LocalStore(false, false, cacheSize),
    connected: async () => {},
    close: async () => {}
  }
}

export interface RedisStoreOptions { url: string, prefix: string, timeout: number }

/**
 * Redis stores on one client, which starts connecting as soon as ioredis is loaded. Returned
 * at once; the plugin awaits `connected()` before the app is ready, so requests find the
 * client there (a count asked for earlier waits for it).
 */
export function redisStores ({ url, prefix, timeout }: RedisStoreOptions, outage: Outage, log: FastifyBaseLogger): Stores {
  const client: Promise<Redis> = import('ioredis').then(({ Redis }) => {
    const redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: timeout,
      connectTimeout: Math.max(timeout, 1000),
      retryStrategy: (times) => Math.min(100 * times, 2000),
      connectionName: 'spikard-rate-limit',
      // disconnect() (close() of a client not connected) waits this long for a socket to
      // close, with a timer that holds the process, even when it closed long ago: 2 s by
      // default, past which `spikard check` reports something left running.
      disconnectTimeout: 0
    })
    redis.on('error', (error: Error) => outage.failed(error))
    redis.on('ready', () => outage.recovered())
    return redis
  })
  // Settled here too, so a failed import is not an unhandled rejection before connected() reports it.
  client.catch(() => {})
  return {
    global: new LazyRedisStore(client, `${prefix}global:`, outage),
    route: (name) => new LazyRedisStore(client, `${prefix}route:${name}:`, outage),
    connected: async () => {
      const redis = await client
      await waitForReady(redis)
      if (redis.status === 'ready') log.info({ store: 'redis', redis: redact(url) }, 'rate-limit counts kept in Redis')
    },
    close: async () => {
      const redis = await client.catch(() => undefined)
      if (redis === undefined) return
      if (redis.status !== 'ready') return redis.disconnect()
      const timer = setTimeout(() => redis.disconnect(), timeout).unref()
      await redis.quit().catch(() => redis.disconnect())
      clearTimeout(timer)
    }
  }
}

/** A RedisStore made once the client exists (after startup, one property check per request), not asked while it fails (Outage). */
class LazyRedisStore implements Store {
  readonly #client: Promise<Redis>
  readonly #key: string
  readonly #outage: Outage
  #store: Store | undefined

  constructor (client: Promise<Redis>, key: string, outage: Outage) {
    this.#client = client
    this.#key = key
    this.#outage = outage
  }

  incr (key: string, callback: (error: Error | null, result?: StoreResult) => void, timeWindow: number, max: number): void {
    if (this.#outage.skip()) return callback(SKIPPED)
    if (this.#store !== undefined) return this.#store.incr(key, callback, timeWindow, max)
    this.#client.then((client) => {
      this.#store ??= new RedisStore(false, false, client, this.#key)
      this.#store.incr(key, callback, timeWindow, max)
    }, (error: Error) => callback(error))
  }
}

/** Resolves when the client is ready, has failed once (the outage is logged; it keeps trying), or CONNECT_WAIT has passed. */
async function waitForReady (client: Redis): Promise<void> {
  if (client.status === 'ready') return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      client.off('ready', done)
      client.off('error', done)
      resolve()
    }
    const timer = setTimeout(done, CONNECT_WAIT).unref()
    client.on('ready', done)
    client.on('error', done)
  })
}

/** The URL with its password masked, for the log. */
export function redact (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return '(unparsable URL)'
  }
}
