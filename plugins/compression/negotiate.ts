/**
 * Content-coding negotiation (RFC 9110 §12.5.3) and the Vary header (src/vary.ts), written
 * by hand because @fastify/compress 9 gets both wrong:
 *
 * - it rewrites `*` to `gzip` before negotiating, so `gzip;q=0, *` still gets gzip (the
 *   client refused it), a bare `*` never gets the preferred brotli, and `*` gets nothing
 *   when gzip is not offered;
 * - `identity` is not one of its candidates, so `identity;q=1, gzip;q=0.5` gets gzip;
 * - it sets `Vary` only when it compresses, compares tokens case-sensitively (a
 *   handler's `Vary: Accept-Encoding` became `Accept-Encoding, accept-encoding`) and
 *   appends to `Vary: *`.
 */

export type Encoding = 'br' | 'gzip'
export type Choice = Encoding | 'identity'

const QVALUE = /^(?:0(?:\.\d*)?|1(?:\.0*)?)$/

/**
 * The coding to answer with: the offered coding of highest weight (ties go to the first
 * offered), unless the client weighs `identity` strictly higher. A coding the header does
 * not name gets the weight of `*`, or none. No header, an empty one, or nothing acceptable
 * (`*;q=0`, `identity;q=0`, unknown codings only) answers `identity`: an uncompressed
 * response every client can read, rather than a 406.
 */
export function negotiate (header: string | string[] | undefined, offered: readonly Encoding[]): Choice {
  if (header === undefined) return 'identity'
  // Clients send a handful of distinct headers, each over and over: each is parsed once.
  if (typeof header !== 'string') return choose(header, offered)
  let answers = chosen.get(offered)
  if (answers === undefined) chosen.set(offered, answers = new Map())
  let choice = answers.get(header)
  if (choice === undefined) {
    if (answers.size >= MEMO_SIZE) answers.clear()
    answers.set(header, choice = choose(header, offered))
  }
  return choice
}

/** Answers by offered codings (the settings' own list) and header, for `negotiate`; emptied when full, so a client sending random headers costs nothing lasting. */
const chosen = new WeakMap<readonly Encoding[], Map<string, Choice>>()
const MEMO_SIZE = 256

function choose (header: string | string[], offered: readonly Encoding[]): Choice {
  const weights = new Map<string, number>()
  for (const entry of [header].flat().join(',').split(',')) {
    const [name, ...params] = entry.split(';')
    let coding = name.trim().toLowerCase()
    if (coding === '') continue
    if (coding === 'x-gzip') coding = 'gzip' // RFC 9110 §8.4.1.3
    let weight = 1
    for (const param of params) {
      const eq = param.indexOf('=')
      if (param.slice(0, eq).trim().toLowerCase() !== 'q') continue
      const value = param.slice(eq + 1).trim()
      weight = QVALUE.test(value) ? Number(value) : NaN
    }
    if (Number.isNaN(weight)) continue // a malformed weight: the entry is ignored
    // Named twice: the lower weight wins, so a refusal is never overridden.
    weights.set(coding, Math.min(weight, weights.get(coding) ?? 1))
  }
  const any = weights.get('*')
  let best: Choice = 'identity'
  let bestWeight = 0
  for (const coding of offered) {
    const weight = weights.get(coding) ?? any ?? 0
    if (weight > bestWeight) { best = coding; bestWeight = weight }
  }
  const identity = weights.get('identity')
  return identity !== undefined && identity > bestWeight ? 'identity' : best
}
