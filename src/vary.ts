/**
 * The `Vary` header, shared by the features whose answer depends on a request header
 * (compression, the OpenAPI documents, static files, event streams): @fastify/compress sets
 * it only when it compresses, compares its tokens case-sensitively and appends to `Vary: *`
 * (plugins/compression/negotiate.ts).
 */

/**
 * `Vary` with `token` in it once (whatever its case), the other tokens kept in order; `*`
 * already varies on everything and stays alone.
 */
export function varyWith (current: number | string | string[] | undefined, token: string): string {
  if (current === undefined || current === '') return token
  const tokens = [current].flat().join(',').split(',').map((t) => t.trim()).filter((t) => t !== '')
  if (tokens.includes('*')) return '*'
  const wanted = token.toLowerCase()
  const seen = new Set<string>()
  const out: string[] = []
  for (const t of [...tokens, token]) {
    const key = t.toLowerCase()
    if (seen.has(key)) continue
    seen.add(key)
    out.push(key === wanted ? token : t)
  }
  return out.join(', ')
}
