/**
 * API keys: the configured keys, kept as SHA-256 digests only, and the check of a presented
 * key. The presented key is hashed and its digest compared with every configured digest
 * with `timingSafeEqual`, with no early exit, so neither which key matched nor how much of
 * one did shows in the response time. No Fastify runtime import.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { SpikardConfigError } from '../../src/errors.js'
import type { ResolvedApiKeyOptions } from './options.js'

/** Plain keys must be at least this long: shorter ones can be guessed. */
export const MIN_KEY_LENGTH = 16
const PRINTABLE = /^[\x21-\x7e]+$/

export interface ApiKeyRefusal { refused: true, detail: string }
/** The caller, for the rate limiter and logs (see AuthIdentity in index.ts). */
export interface ApiKeyIdentity { readonly scheme: 'apiKey', readonly id: string }
export interface ApiKeyMatch { readonly refused: false, readonly identity: ApiKeyIdentity }

const refuse = (detail: string): ApiKeyRefusal => Object.freeze({ refused: true, detail })

export class ApiKeys {
  /** Lower-cased header name. */
  readonly header: string
  readonly query: string | undefined
  readonly #digests: Buffer[]
  readonly #matches: ApiKeyMatch[]
  readonly refusals: {
    duplicated: ApiKeyRefusal
    empty: ApiKeyRefusal
    both: ApiKeyRefusal
    invalid: ApiKeyRefusal
  }

  constructor (options: NonNullable<ResolvedApiKeyOptions>) {
    const problems: string[] = []
    this.header = options.header.toLowerCase()
    this.query = options.query === false ? undefined : options.query
    if (this.header === 'authorization') problems.push('auth.apiKey.header: authorization is the bearer token\'s header; pick another, such as x-api-key')
    if (options.keys.length === 0) problems.push('auth.apiKey.keys: an empty list: add at least one key')
    const digests: Buffer[] = []
    const ids: string[] = []
    const paths: string[] = []
    for (const [i, entry] of options.keys.entries()) {
      const path = `auth.apiKey.keys[${i}]`
      const { name, key, sha256 } = typeof entry === 'string' ? { name: undefined, key: entry, sha256: undefined } : entry
      const problem = entryProblem(key, sha256)
      if (problem !== undefined) {
        problems.push(`${path}: ${problem}`)
        continue
      }
      const digest = sha256 !== undefined ? Buffer.from(sha256, 'hex') : sha256Of(key!)
      const same = digests.findIndex((d) => d.equals(digest))
      if (same !== -1) {
        problems.push(`${path}: the same key as ${paths[same]}`)
        continue
      }
      digests.push(digest)
      paths.push(path)
      ids.push(name ?? digest.toString('hex').slice(0, 12))
    }
    if (problems.length > 0) throw new SpikardConfigError(problems)
    this.#digests = digests
    this.#matches = ids.map((id) => Object.freeze({ refused: false, identity: Object.freeze({ scheme: 'apiKey', id }) }))
    const where = `the ${this.header} header${this.query === undefined ? '' : ` or the ${this.query} query parameter`}`
    this.refusals = {
      duplicated: refuse(`The API key is sent more than once in ${where}`),
      empty: refuse(`The API key in ${where} is empty`),
      both: refuse(`The API key must be sent once: in ${where}, not both`),
      invalid: refuse('The API key is not valid')
    }
  }

  /** The caller's id (the key's name, or its fingerprint), or why the key is refused. */
  check (presented: string): ApiKeyMatch | ApiKeyRefusal {
    const digest = sha256Of(presented)
    let match = -1
    for (let i = 0; i < this.#digests.length; i++) {
      // Every digest is compared, whether or not an earlier one matched.
      if (timingSafeEqual(digest, this.#digests[i])) match = i
    }
    return match === -1 ? this.refusals.invalid : this.#matches[match]
  }
}

/** What is wrong with a configured key, if anything. */
function entryProblem (key: string | undefined, sha256: string | undefined): string | undefined {
  if (key !== undefined && sha256 !== undefined) return 'give key or sha256, not both'
  if (key === undefined) return sha256 === undefined ? 'needs key or sha256' : undefined
  if (!PRINTABLE.test(key)) return 'a key must be printable ASCII without spaces (it travels in a header)'
  if (key.length < MIN_KEY_LENGTH) return `a key must be at least ${MIN_KEY_LENGTH} characters, found ${key.length}; generate one with \`openssl rand -hex 32\``
  return undefined
}

function sha256Of (value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
