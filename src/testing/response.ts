/**
 * A response as the test client gives it: the status, the headers, and the body read as
 * JSON, text or problem details, each failing with a message that shows what came back.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { LightMyRequestResponse } from 'fastify'
import { PROBLEM_CONTENT_TYPE } from '../problem-details.js'

/** RFC 9457 problem details, as spikard renders every error. */
export interface Problem {
  type: string
  title: string
  status: number
  detail?: string
  instance?: string
  requestId?: string
  /** Field errors, on a 400/422 from schema validation. */
  errors?: Array<{ field?: string, message: string, [key: string]: unknown }>
  [key: string]: unknown
}

/** What a test sees of a response. */
export interface TestResponse {
  status: number
  headers: IncomingHttpHeaders
  /** The body's bytes, as sent. */
  rawBody: Buffer
  /** The body as UTF-8 text. */
  text: () => string
  /** The body parsed as JSON; throws, quoting the body, when it is not JSON. */
  json: <T = unknown>() => T
  /** The problem details; throws when the Content-Type is not application/problem+json. */
  problem: () => Problem
}

/** The start of a body, for error messages. */
function quote (text: string): string {
  return JSON.stringify(text.length > 300 ? `${text.slice(0, 300)}...` : text)
}

/** Headers of which Node's client keeps the first when a response repeats one (lib/_http_incoming.js). */
const FIRST_ONLY = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent'])

/**
 * inject()'s headers as a real Node client reads the same response: `set-cookie` always a
 * list (inject gives one cookie as a string), any other repeated header joined with `, `
 * (`; ` for cookie), or its first value kept where Node drops the repeats.
 */
function received (headers: LightMyRequestResponse['headers']): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    const values = [value].flat().map(String)
    if (name === 'set-cookie') out[name] = values
    else out[name] = FIRST_ONLY.has(name) ? values[0] : values.join(name === 'cookie' ? '; ' : ', ')
  }
  return out
}

export function testResponse (res: LightMyRequestResponse, what: string): TestResponse {
  const status = res.statusCode
  const text = (): string => res.body
  const json = <T>(): T => {
    try {
      return JSON.parse(res.body) as T
    } catch {
      throw new Error(`${what}: expected a JSON body, got ${quote(res.body)} (status ${status}, content-type ${String(res.headers['content-type'])})`)
    }
  }
  return {
    status,
    headers: received(res.headers),
    rawBody: res.rawPayload,
    text,
    json,
    problem: () => {
      const type = String(res.headers['content-type'] ?? '')
      if (type.split(';', 1)[0].trim() !== PROBLEM_CONTENT_TYPE) {
        throw new Error(`${what}: expected ${PROBLEM_CONTENT_TYPE}, got ${type === '' ? 'no content-type' : type} (status ${status}): ${quote(res.body)}`)
      }
      return json<Problem>()
    }
  }
}
