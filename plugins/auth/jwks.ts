/**
 * A JWKS endpoint's keys, fetched and cached. The set is fetched as the server starts (a
 * token arriving before it waits for that fetch); a token whose
 * `kid` is unknown triggers a refetch (an issuer rotated its keys), at most once per
 * MIN_REFRESH_MS whatever the tokens say, so forged `kid`s cannot make the server hammer the
 * issuer; a set older than MAX_AGE_MS is refreshed in the background while it keeps serving.
 * A failed fetch keeps the keys already known. Only the configured URL is ever fetched:
 * `jku`, `x5u`, `jwk` and `x5c` token headers are ignored.
 *
 * Each key becomes a verifier once (keys.ts) and keeps it, with its cache, across refreshes
 * as long as the document still has it. No Fastify runtime import.
 */
import type { FastifyBaseLogger } from 'fastify'
import { loadPublicKey, type VerifyKey } from './keys.js'
import type { JwtAlgorithm } from './options.js'
import { redactQuery } from '../../src/redact.js'

/** No names beyond those redactQuery matches by their words. */
const NO_MORE_NAMES = new Set<string>()

export const MIN_REFRESH_MS = 30_000
export const MAX_AGE_MS = 10 * 60_000
const FETCH_TIMEOUT_MS = 5_000
const MAX_BYTES = 512 * 1024
const MAX_KEYS = 100

export class JwksKeySet {
  readonly url: string
  readonly #algorithms: JwtAlgorithm[]
  readonly #leeway: number
  readonly #log: FastifyBaseLogger
  readonly #closed = new AbortController()
  /** Keys by `kid`; keys without one are in #all only. */
  #byKid = new Map<string, VerifyKey[]>()
  #all: VerifyKey[] = []
  /** Verifiers by the key's identity (kid, algorithms and SPKI), reused across refreshes. */
  #known = new Map<string, VerifyKey>()
  /** When the last fetch started (successful or not): the floor counts from there. */
  #attemptedAt = -Infinity
  #fetchedAt = -Infinity
  #inflight: Promise<void> | undefined
  /** The URL as logged. */
  readonly #shown: string
  /** Goes up whenever a refresh adds or removes a key: tokens remembered as verified before are checked again. */
  generation = 0

  constructor (url: string, algorithms: JwtAlgorithm[], leeway: number, log: FastifyBaseLogger) {
    this.url = url
    // An issuer may want a key in the URL's query: masked in every log line, as a request's is.
    const { origin, pathname, search } = new URL(url)
    this.#shown = search === '' ? url : `${origin}${pathname}?${redactQuery(search.slice(1), NO_MORE_NAMES)}`
    this.#algorithms = algorithms
    this.#leeway = leeway
    this.#log = log
  }

  /** Keys with this `kid` (none: undefined). Starts a background refresh when the set is old. */
  byKid (kid: string): VerifyKey[] | undefined {
    this.#refreshIfOld()
    return this.#byKid.get(kid)
  }

  /** Every key, for tokens without a `kid`. */
  all (): VerifyKey[] {
    this.#refreshIfOld()
    return this.#all
  }

  /** Fetches now (startup). Never rejects. */
  load (): Promise<void> {
    return this.#inflight ?? this.#refresh()
  }

  /**
   * Refetches for an unknown `kid` unless the last fetch started less than MIN_REFRESH_MS
   * ago; waits for a fetch already under way. Never rejects.
   */
  refreshForUnknownKid (): Promise<void> {
    if (this.#inflight !== undefined) return this.#inflight
    if (Date.now() - this.#attemptedAt < MIN_REFRESH_MS) return Promise.resolve()
    return this.#refresh()
  }

  close (): void {
    this.#closed.abort()
  }

  #refreshIfOld (): void {
    if (this.#inflight === undefined && Date.now() - this.#fetchedAt > MAX_AGE_MS && Date.now() - this.#attemptedAt >= MIN_REFRESH_MS) {
      void this.#refresh()
    }
  }

  #refresh (): Promise<void> {
    this.#attemptedAt = Date.now()
    this.#inflight = this.#fetch()
      .then((document) => this.#install(document))
      .catch((error: Error) => {
        if (!this.#closed.signal.aborted) this.#log.error({ jwksUrl: this.#shown, error: reason(error) }, 'spikard-auth: cannot fetch the JWKS; keeping the keys already known')
      })
      .finally(() => { this.#inflight = undefined })
    return this.#inflight
  }

  async #fetch (): Promise<unknown> {
    // Not AbortSignal.any([closed, AbortSignal.timeout()]): on Node 20 the timeout signal
    // inside it can be garbage-collected before it fires (nodejs/node#57736), and an issuer
    // that never answers then holds this fetch, every token waiting for it and every later
    // refresh, for good. A controller and a timer of our own, held until the fetch ends.
    const controller = new AbortController()
    const timer = setTimeout(() => { controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')) }, FETCH_TIMEOUT_MS).unref()
    const onClose = (): void => { controller.abort(this.#closed.signal.reason) }
    this.#closed.signal.addEventListener('abort', onClose, { once: true })
    if (this.#closed.signal.aborted) onClose()
    try {
      return await this.#download(controller.signal)
    } finally {
      clearTimeout(timer)
      this.#closed.signal.removeEventListener('abort', onClose)
    }
  }

  async #download (signal: AbortSignal): Promise<unknown> {
    const response = await fetch(this.url, {
      headers: { accept: 'application/jwk-set+json, application/json' },
      redirect: 'error',
      signal
    })
    if (!response.ok) {
      await response.body?.cancel()
      throw new Error(`HTTP ${response.status}`)
    }
    if (Number(response.headers.get('content-length') ?? 0) > MAX_BYTES) {
      await response.body?.cancel()
      throw new Error(`larger than ${MAX_BYTES} bytes`)
    }
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength
      if (size > MAX_BYTES) throw new Error(`larger than ${MAX_BYTES} bytes`)
      chunks.push(chunk)
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  }

  #install (document: unknown): void {
    const keys = (document as { keys?: unknown } | null)?.keys
    if (!Array.isArray(keys)) throw new Error('not a JWK set: no "keys" list')
    const all: VerifyKey[] = []
    const byKid = new Map<string, VerifyKey[]>()
    const known = new Map<string, VerifyKey>()
    for (const [i, jwk] of keys.slice(0, MAX_KEYS).entries()) {
      if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk)) continue
      const kid = (jwk as { kid?: unknown }).kid
      // Keys for encryption, or of a type or curve the configured algorithms cannot use, are
      // not ours to verify with: skipped quietly (a JWKS commonly lists several kinds).
      if ((jwk as { use?: unknown }).use === 'enc') continue
      const identity = JSON.stringify([kid, (jwk as { alg?: unknown }).alg, canonical(jwk as Record<string, unknown>)])
      let key = this.#known.get(identity)
      if (key === undefined) {
        const loaded = loadPublicKey({ path: `jwks key ${i}${typeof kid === 'string' ? ` (kid ${kid})` : ''}`, value: jwk }, this.#algorithms, this.#leeway)
        if (typeof loaded === 'string') {
          this.#log.debug({ jwksUrl: this.#shown, reason: loaded }, 'spikard-auth: JWKS key skipped')
          continue
        }
        key = loaded
      }
      known.set(identity, key)
      all.push(key)
      if (key.kid !== undefined) {
        const list = byKid.get(key.kid)
        if (list === undefined) byKid.set(key.kid, [key])
        else list.push(key)
      }
    }
    if (keys.length > MAX_KEYS) this.#log.warn({ jwksUrl: this.#shown, keys: keys.length }, `spikard-auth: JWKS has more than ${MAX_KEYS} keys; the rest are ignored`)
    if (all.length === 0) this.#log.warn({ jwksUrl: this.#shown }, 'spikard-auth: the JWKS has no key usable with auth.jwt.algorithms')
    if (known.size !== this.#known.size || [...known.keys()].some((identity) => !this.#known.has(identity))) this.generation++
    this.#all = all
    this.#byKid = byKid
    this.#known = known
    this.#fetchedAt = Date.now()
  }
}

/**
 * What went wrong, for the log. fetch() says "fetch failed" whatever happened; the reason
 * (connection refused, unknown host, a certificate not trusted, a redirect) is its cause.
 */
function reason (error: Error): string {
  const cause = error.cause as { message?: unknown, code?: unknown } | undefined
  const why = cause?.message !== undefined && cause.message !== '' ? cause.message : cause?.code
  return typeof why === 'string' ? `${error.message}: ${why}` : error.message
}

/** The public parameters of a JWK, in a fixed order (a key re-serialized differently is the same key). */
function canonical (jwk: Record<string, unknown>): unknown[] {
  return ['kty', 'crv', 'n', 'e', 'x', 'y', 'use'].map((k) => jwk[k] ?? null)
}
