/** Redaction of secrets in every log line: header values and query-string values. */
import { features, type FeatureName } from './options.js'
import type { FeatureDefinition } from './feature.js'

export const REDACTED = '[REDACTED]'
export const DEFAULT_SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']

/**
 * What redactHeaders makes: headers masked already, which the logger's `headers` serializer
 * (src/logger.ts) passes as they are, rather than walking the headers of every access line
 * (`logging.headers`) a second time. Logged as the plain object it is.
 */
class RedactedHeaders {}

/** Whether `headers` is redactHeaders' own output (its secrets masked already). */
export function isRedacted (headers: unknown): boolean {
  return headers instanceof RedactedHeaders
}

/**
 * The request headers of a log line: those in `hidden` (lower-case) and those named like a
 * secret (secretName: `x-auth-token`, `x-csrf-token`, `x-goog-api-key`) are masked.
 */
export function redactHeaders (headers: Record<string, unknown>, hidden: Set<string>): Record<string, unknown> {
  const out = new RedactedHeaders() as Record<string, unknown>
  for (const [name, value] of Object.entries(headers)) out[name] = hidden.has(name) || secretHeader(name) ? REDACTED : value
  return out
}

/** secretName() of header names seen, bounded: a client chooses its header names. */
const secretHeaders = new Map<string, boolean>()

function secretHeader (name: string): boolean {
  let secret = secretHeaders.get(name)
  if (secret === undefined) {
    secret = secretName(name)
    if (secretHeaders.size < 1000) secretHeaders.set(name, secret)
  }
  return secret
}

/**
 * Which query parameters and headers carry secrets. A name (decoded, lower-cased) is split into parts
 * at camelCase and letter/digit boundaries and at every character that is not a letter or
 * digit (`-`, `_`, `.`, `[`, `]`, spaces...): `X-Amz-Signature`, `apiKey`, `key[0]` and
 * `user[password]` give x/amz/signature, api/key, key/0 and user/password. The name is secret
 * when a part, or all parts joined (`api_key` as apikey), is one of SECRET_WORDS, or ends
 * with one of SECRET_ENDINGS (`accesstoken`, `clientsecret`). Whole parts, not substrings:
 * `keyword`, `monkey`, `spinach`, `passenger`, `compass`, `author`, `sidebar`, `tokenizer`
 * are kept. The README and the `logging.redactQuery` description list the same words.
 */
const SECRET_WORDS = new Set([
  'token', 'secret', 'password', 'passwd', 'pwd', 'pass', 'passphrase', 'passcode',
  'key', 'apikey', 'accesskey', 'secretkey', 'privatekey', 'signature', 'sig', 'credential', 'credentials',
  'auth', 'authorization', 'bearer', 'jwt', 'code', 'session', 'sessionid', 'sid', 'otp', 'pin'
])
const SECRET_ENDINGS = ['token', 'secret', 'password', 'passwd', 'passphrase']

function secretWord (word: string): boolean {
  if (SECRET_WORDS.has(word)) return true
  for (const ending of SECRET_ENDINGS) if (word.endsWith(ending)) return true
  return false
}

/** Whether a decoded parameter name or a header name is named like a secret (see SECRET_WORDS). */
export function secretName (name: string): boolean {
  // Most names are one lower-case word (q, page, sort): no splitting.
  if (/^[a-z]+$/.test(name)) return secretWord(name)
  const parts = name
    .replace(/(\p{Ll}|\p{N})(\p{Lu})/gu, '$1 $2')
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1 $2')
    .replace(/(\p{L})(\p{N})|(\p{N})(\p{L})/gu, '$1$3 $2$4')
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((p) => p !== '')
  return parts.some(secretWord) || secretWord(parts.join(''))
}

/** The scheme and userinfo of an absolute-form target: `http://user:password@`. */
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/

/**
 * A request target as it may be logged (before the query string is split off and masked):
 * a fragment, which no request should carry (RFC 9112 §3.2) but a careless client sends
 * (an OAuth callback URL with `#access_token=...` passed on as it is) and Fastify routes
 * by what comes before it, is masked whole; so is the userinfo of an absolute-form target
 * (`GET http://user:password@host/path`), which Fastify routes by its path. Anything else
 * is returned as it is: one indexOf and one character test for an ordinary path.
 */
export function loggedTarget (url: string): string {
  const hash = url.indexOf('#')
  if (hash !== -1) url = `${url.slice(0, hash)}#${REDACTED}`
  return url.charCodeAt(0) === 47 ? url : url.replace(USERINFO, `$1${REDACTED}@`)
}

/**
 * Masks the values of secret-named parameters; keeps names, order and the other values.
 * `extra` (lower-case) names more: matched on the whole name or its part before a `[`.
 */
export function redactQuery (query: string, extra: Set<string>): string {
  return query.split('&').map((pair) => {
    const eq = pair.indexOf('=')
    if (eq === -1) return pair
    let name = pair.slice(0, eq)
    try { name = decodeURIComponent(name.replace(/\+/g, ' ')) } catch { /* keep it raw */ }
    const lower = name.toLowerCase()
    const bracket = lower.indexOf('[')
    const hidden = extra.has(lower) || (bracket > 0 && extra.has(lower.slice(0, bracket))) || secretName(name)
    return hidden ? `${pair.slice(0, eq)}=${REDACTED}` : pair
  }).join('&')
}

/**
 * Every header and query parameter name whose value is a secret, for the options in force:
 * the defaults above plus what each feature declares (`secrets` in its definition: the
 * logging feature's redactHeaders and redactQuery, the API key's header and parameter).
 * Lower-cased. Both add to the names matched by their words (secretName).
 */
export function secretNames (options: Partial<Record<FeatureName, unknown>>): { headers: Set<string>, query: Set<string> } {
  const headers = new Set(DEFAULT_SECRET_HEADERS)
  const query = new Set<string>()
  for (const [name, feature] of Object.entries(features) as Array<[FeatureName, FeatureDefinition]>) {
    const value = options[name]
    if (value === false || value === undefined || feature.secrets === undefined) continue
    const secrets = feature.secrets(value)
    for (const h of secrets.headers) headers.add(h.toLowerCase())
    for (const q of secrets.query) query.add(q.toLowerCase())
  }
  return { headers, query }
}

/** How deep maskHeadersIn looks (an error, its `config`, their `headers`...) and how many objects it opens at most. */
const NESTED_DEPTH = 4
const NESTED_OBJECTS = 200
/** A line of a raw HTTP head (`Authorization: Bearer ...`). */
const HEAD_LINE = /^([^:\r\n]+):[^\r\n]*/gm

/**
 * A serialized error with the secret headers it carries masked: the headers of an HTTP
 * client's error (axios's `config.headers`, `response.headers` and the raw head of its
 * `request._header`, got's `options.headers`, undici's `headers`), at any depth up to
 * NESTED_DEPTH, by the names of `hidden` and the secret-named ones (secretName), matched
 * case-insensitively (`Authorization` as well as `authorization`). The error's own objects
 * are never changed: what differs is copied.
 */
export function maskHeadersIn<T> (serialized: T, hidden: Set<string>): T {
  const budget = { left: NESTED_OBJECTS }
  const secret = (name: string): boolean => hidden.has(name.toLowerCase()) || secretHeader(name.toLowerCase())
  const visit = (value: unknown, key: string, depth: number): unknown => {
    if (typeof value === 'string') {
      return key === '_header' ? value.replace(HEAD_LINE, (line, name: string) => secret(name.trim()) ? `${name}: ${REDACTED}` : line) : value
    }
    if (typeof value !== 'object' || value === null || depth > NESTED_DEPTH || budget.left-- <= 0) return value
    if (ArrayBuffer.isView(value)) return value
    const headers = key.toLowerCase() === 'headers'
    let copy: Record<string, unknown> | unknown[] | undefined
    const entries = Array.isArray(value) ? value.entries() : Object.entries(value)
    for (const [k, v] of entries) {
      const name = String(k)
      const next = headers && secret(name) && v !== undefined ? REDACTED : visit(v, name, depth + 1)
      if (next === v) continue
      copy ??= Array.isArray(value) ? [...value] : { ...(value as Record<string, unknown>) }
      ;(copy as Record<string, unknown>)[name] = next
    }
    return copy ?? value
  }
  try {
    return visit(serialized, '', 0) as T
  } catch {
    // A getter that throws: pino meets it as before.
    return serialized
  }
}
