/**
 * The fixtures' matcher: a value compared with what is expected, where an expected string
 * starting with `$` is a marker. Objects must have exactly the expected keys; arrays the
 * expected length. A mismatch throws an Error naming where (`request 0 body.user.id`).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i

/** The markers an expected string may be. `$header:<name>` is equal to that response header. */
export const MARKERS = ['$any-uuid', '$any-string', '$any-number', '$absent', '$present', '$header:<name>'] as const

const show = (value: unknown): string => value === undefined ? 'nothing' : JSON.stringify(value)

function fail (where: string, expected: string, actual: unknown): never {
  throw new Error(`${where}: expected ${expected}, got ${show(actual)}`)
}

/**
 * Throws unless `actual` matches `expected`.
 * @param headers the response's headers, for `$header:<name>` markers
 * @param where names the value in the error message
 */
export function expectMatch (actual: unknown, expected: unknown, where = 'value', headers: Record<string, unknown> = {}): void {
  if (typeof expected === 'string' && expected.startsWith('$')) {
    if (expected === '$absent') return actual === undefined ? undefined : fail(where, 'nothing ($absent)', actual)
    if (expected === '$present') return actual !== undefined ? undefined : fail(where, 'a value ($present)', actual)
    if (expected === '$any-uuid') return typeof actual === 'string' && UUID.test(actual) ? undefined : fail(where, 'a UUID v4', actual)
    if (expected === '$any-string') return typeof actual === 'string' ? undefined : fail(where, 'a string', actual)
    if (expected === '$any-number') return typeof actual === 'number' ? undefined : fail(where, 'a number', actual)
    if (expected.startsWith('$header:')) {
      const name = expected.slice(8).toLowerCase()
      return actual === headers[name] && actual !== undefined ? undefined : fail(where, `the ${name} header (${show(headers[name])})`, actual)
    }
    throw new Error(`${where}: unknown marker ${expected} (markers: ${MARKERS.join(', ')})`)
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return fail(where, 'an array', actual)
    if (actual.length !== expected.length) return fail(where, `${expected.length} items`, actual)
    expected.forEach((e, i) => expectMatch(actual[i], e, `${where}[${i}]`, headers))
    return
  }
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return fail(where, 'an object', actual)
    const extra = Object.keys(actual).filter((k) => !Object.hasOwn(expected, k))
    if (extra.length > 0) throw new Error(`${where}: unexpected keys ${extra.join(', ')} in ${show(actual)}`)
    for (const [key, value] of Object.entries(expected)) expectMatch((actual as Record<string, unknown>)[key], value, `${where}.${key}`, headers)
    return
  }
  if (!Object.is(actual, expected)) fail(where, show(expected), actual)
}

/** The value at an RFC 6901 JSON Pointer (`/paths/~1users~1{id}/get`; "" is the whole value); undefined where there is none. */
export function valueAt (value: unknown, pointer: string): unknown {
  if (pointer === '') return value
  if (!pointer.startsWith('/')) throw new Error(`${JSON.stringify(pointer)}: a JSON Pointer starts with "/"`)
  for (const token of pointer.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, token)) return undefined
    value = (value as Record<string, unknown>)[token]
  }
  return value
}
