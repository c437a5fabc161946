/** Redaction of secrets in access lines: header values and query-string values. */

export const REDACTED = '[REDACTED]'
export const DEFAULT_SECRET_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key']

export function secretHeaders (extra: string[]): Set<string> {
  return new Set([...DEFAULT_SECRET_HEADERS, ...extra].map((h) => h.toLowerCase()))
}

export function redactHeaders (headers: Record<string, unknown>, hidden: Set<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(headers)) out[name] = hidden.has(name) ? REDACTED : value
  return out
}

/** Parameter names that carry secrets, matched after lower-casing and dropping `-` and `_`. */
const SECRET_NAME = /token|secret|passw|pwd|apikey|signature|credential|^(key|auth|authorization|sig|jwt|code|session|sessionid)$/

/** Masks the values of secret-looking parameters; keeps names, order and the other values. */
export function redactQuery (query: string, extra: Set<string>): string {
  return query.split('&').map((pair) => {
    const eq = pair.indexOf('=')
    if (eq === -1) return pair
    let name = pair.slice(0, eq)
    try { name = decodeURIComponent(name.replace(/\+/g, ' ')) } catch { /* keep it raw */ }
    const lower = name.toLowerCase()
    return SECRET_NAME.test(lower.replace(/[-_]/g, '')) || extra.has(lower) ? `${pair.slice(0, eq)}=${REDACTED}` : pair
  }).join('&')
}
