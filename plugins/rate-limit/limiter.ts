/**
 * One limit (a max per window, a key, a store) as a Fastify hook. Built once per limit at
 * startup; per request it reads the key, counts it in the store and sets the headers, with
 * callbacks rather than promises. Over the limit it fails the request with
 * SPK_ERR_RATE_LIMITED (429, rendered by problem-details) after setting `Retry-After`;
 * when the store fails it lets the request through or fails it with
 * SPK_ERR_RATE_LIMIT_UNAVAILABLE (503), as `onStoreError` says. The store's error never
 * goes further than the log.
 */
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import { errors } from '../../src/errors.js'
import type { KeyBy, ResolvedRateLimitOptions } from './options.js'
import { clientAddress, identityOf, keyer, type AllowList } from './keys.js'
import type { Outage, Store, StoreResult } from './store.js'
import type { onRequestHookHandler, preParsingHookHandler } from 'fastify'

export type OnRequest = onRequestHookHandler
export type PreParsing = preParsingHookHandler

/** What every limit of one app shares. */
export class Shared {
  constructor (
    readonly options: ResolvedRateLimitOptions,
    readonly allow: AllowList,
    readonly addressKey: (address: string) => string,
    readonly outage: Outage,
    readonly log: FastifyBaseLogger
  ) {}
}

export interface LimitSpec {
  max: number
  window: number
  keyBy: KeyBy
  store: Store
  /** The IETF policy name: `default` for the global limit, `route` for a route's own. */
  policy: 'default' | 'route'
}

export interface Limit extends LimitSpec {
  /** IP, header and cookie keys are read before auth and body parsing; an identity only exists after auth. */
  hook: 'onRequest' | 'preParsing'
  handler: OnRequest | PreParsing
  /**
   * An identity limit only: refuses, before auth, an address whose failed credentials went
   * over the limit (a request auth refuses never reaches `handler`).
   */
  early?: OnRequest
  /** An identity limit only: counts a request refused with 401 or 403 and no identity by its address. */
  failed?: (request: FastifyRequest, reply: FastifyReply, error: { statusCode?: number }) => void
}

/** The request reached an identity limit's check, which counted it already. */
export const kCounted = Symbol('spikard.rate-limit.counted')

type Next = (error?: Error) => void
type HeaderWriter = (reply: FastifyReply, remaining: number, reset: number) => void

export function createLimit (shared: Shared, spec: LimitSpec): Limit {
  const { max, window, store } = spec
  const { allow, addressKey, outage } = shared
  const { value, key } = keyer(spec.keyBy, shared.options.redis !== undefined)
  const writeHeaders = headerWriter(shared.options.headers, max, window, spec.policy)
  const reject = shared.options.onStoreError === 'reject'
  // A header or cookie value is the client's to choose: it never matches an allowed identity.
  const allowed = spec.keyBy === 'identity' ? allow.values : allow.plainValues

  /** Counts one request under `storeKey`: `counted` gets the window's count, or undefined when the store failed (an outage, noted). */
  function count (storeKey: string, counted: (result: StoreResult | undefined) => void): void {
    store.incr(storeKey, (error, result) => {
      if (error !== null || result === undefined) {
        outage.failed(error ?? new Error('the store returned nothing'))
        return counted(undefined)
      }
      if (outage.failing) outage.recovered()
      counted(result)
    }, window, max)
  }

  /** Over the limit: the headers and `Retry-After` set, the 429 problem to fail the request with. */
  function limited (reply: FastifyReply, retry: number): Error {
    writeHeaders(reply, 0, retry)
    reply.header('retry-after', retry)
    return new errors.SPK_ERR_RATE_LIMITED(`Rate limit exceeded, retry in ${inWords(retry)}`)
  }

  function check (request: FastifyRequest, reply: FastifyReply, next: Next): void {
    const address = clientAddress(request)
    if (allow.hasAddresses && allow.hasAddress(address)) return next()
    const own = value === undefined ? undefined : value(request)
    let storeKey: string
    if (own === undefined) {
      storeKey = addressKey(address)
    } else {
      if (allowed !== undefined && allowed.has(own)) return next()
      storeKey = key(own)
    }
    count(storeKey, (result) => {
      if (result === undefined) return reject ? next(new errors.SPK_ERR_RATE_LIMIT_UNAVAILABLE()) : next()
      const reset = result.ttl > 0 ? Math.ceil(result.ttl / 1000) : 0
      if (result.current <= max) {
        writeHeaders(reply, max - result.current, reset)
        return next()
      }
      next(limited(reply, Math.max(1, reset)))
    })
  }

  if (spec.keyBy === 'identity') {
    const spikardRateLimit: PreParsing = function spikardRateLimit (request, reply, payload, done) {
      (request as FastifyRequest & { [kCounted]: boolean })[kCounted] = true
      check(request, reply, (error) => { if (error === undefined) done(null, payload); else done(error) })
    }
    // Requests auth refuses end before preParsing: they are counted by address when refused
    // (a flood of bad keys or tokens), and an address over the limit is refused before auth
    // until its window ends. Kept per process; the count itself is in the store.
    const refused = new Map<string, number>()
    const early: OnRequest = function spikardRateLimitRefused (request, reply, done) {
      if (refused.size === 0) return done()
      const key = addressKey(clientAddress(request))
      const until = refused.get(key)
      if (until === undefined) return done()
      const left = until - Date.now()
      if (left <= 0) {
        refused.delete(key)
        return done()
      }
      done(limited(reply, Math.ceil(left / 1000)))
    }
    const failed = (request: FastifyRequest, _reply: FastifyReply, error: { statusCode?: number }): void => {
      if ((error.statusCode !== 401 && error.statusCode !== 403) || identityOf(request) !== undefined) return
      // A handler's own 401 or 403 came after the check above, which counted the request.
      if ((request as FastifyRequest & { [kCounted]: boolean })[kCounted]) return
      const address = clientAddress(request)
      if (allow.hasAddresses && allow.hasAddress(address)) return
      const key = addressKey(address)
      count(key, (result) => {
        if (result === undefined || result.current < max) return
        if (refused.size >= shared.options.cacheSize) refused.clear()
        refused.set(key, Date.now() + Math.max(1000, result.ttl))
      })
    }
    return { ...spec, hook: 'preParsing', handler: spikardRateLimit, early, failed }
  }
  const spikardRateLimit: OnRequest = function spikardRateLimit (request, reply, done) {
    check(request, reply, done)
  }
  return { ...spec, hook: 'onRequest', handler: spikardRateLimit }
}

function headerWriter (mode: ResolvedRateLimitOptions['headers'], max: number, window: number, policy: string): HeaderWriter {
  if (mode === false) return () => {}
  if (mode === 'ietf') {
    const policyHeader = `"${policy}";q=${max};w=${Math.ceil(window / 1000)}`
    return (reply, remaining, reset) => {
      reply.header('ratelimit-policy', policyHeader)
      reply.header('ratelimit', `"${policy}";r=${remaining};t=${reset}`)
    }
  }
  const limit = String(max)
  // Strings: Node would turn a number into one twice, to check the value and to write it.
  return (reply, remaining, reset) => {
    reply.header('x-ratelimit-limit', limit)
    reply.header('x-ratelimit-remaining', String(remaining))
    reply.header('x-ratelimit-reset', String(reset))
  }
}

/** `1 second`, `42 seconds`, `3 minutes`, `2 hours`: rounded up, never sooner than Retry-After. */
export function inWords (seconds: number): string {
  const [n, unit] = seconds < 120 ? [seconds, 'second'] : seconds < 7200 ? [Math.ceil(seconds / 60), 'minute'] : [Math.ceil(seconds / 3600), 'hour']
  return `${n} ${unit}${n === 1 ? '' : 's'}`
}
