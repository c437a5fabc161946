/**
 * Option schema building blocks and the validator behind every option and config check.
 *
 * TypeBox gives us the types (`Static` for what users write, `StaticDecode` for what
 * plugins receive) and a JSON Schema we can render into the README. Validation is a small
 * walker of our own instead of Ajv or `Value.Errors`: those report a failed
 * `boolean | object` union as one opaque "expected union value" error and cannot suggest
 * the key a user meant, while the config contract demands messages such as
 * `rateLimit.max: expected an integer >= 0, found "ten"`.
 */
import { Kind, TransformKind, Type, type Static, type StringOptions, type TSchema, type StaticDecode } from '@sinclair/typebox'
import { SpikardConfigError } from './errors.js'

const UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const UNITS_BYTES: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/i
const SIZE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)$/i

/** The longest delay Node's timers accept (about 24.8 days); a longer one fires after 1 ms instead (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A value the schema's type accepts but its decoding refuses, with what to tell the user (`must not exceed ...`). */
class DecodeProblem extends RangeError {}

/** Parses `500ms`, `30s`, `1m`, `2h` (or a number of milliseconds). */
export function parseDuration (value: number | string): number {
  if (typeof value === 'number') return value
  const m = DURATION.exec(value.trim())
  if (m === null) throw new TypeError(`invalid duration ${JSON.stringify(value)}`)
  return Math.round(Number(m[1]) * UNITS_MS[m[2].toLowerCase()])
}

/** Parses `512kb`, `1mb` (binary units, case-insensitive) or a number of bytes. */
export function parseSize (value: number | string): number {
  if (typeof value === 'number') return value
  const m = SIZE.exec(value.trim())
  if (m === null) throw new TypeError(`invalid size ${JSON.stringify(value)}`)
  return Math.floor(Number(m[1]) * UNITS_BYTES[m[2].toLowerCase()])
}

type DurationUnit = 'ms' | 'MS' | 'Ms' | 'mS' | 's' | 'S' | 'm' | 'M' | 'h' | 'H'
/** A duration as TypeScript sees it: `500ms`, `30s`, `1.5m`, `2 h` (the unit in any case). */
export type DurationText = `${number}${DurationUnit}` | `${number} ${DurationUnit}`
type SizeUnit = 'b' | 'B' | 'kb' | 'KB' | 'Kb' | 'kB' | 'mb' | 'MB' | 'Mb' | 'mB' | 'gb' | 'GB' | 'Gb' | 'gB'
/** A size as TypeScript sees it: `512kb`, `1mb`, `1.5 MB` (the unit in any case). */
export type SizeText = `${number}${SizeUnit}` | `${number} ${SizeUnit}`

/**
 * A literal URL path, for a route or a prefix spikard registers: `:` and `*` would make it a
 * parameter or a wildcard of the router, `?` and `#` end the path a request can reach,
 * neither an empty segment nor a space can be asked for, and the router matches the decoded
 * path, so a route at `/a%20b` is never reached (give the character itself: `/café`).
 */
export const LiteralPath = (options: StringOptions = {}) => Type.String({
  pattern: '^(/[^/:*?#%\\s]+)*/?$',
  minLength: 1,
  expected: 'a literal path starting with "/" (no ":", "*", "?", "#", "%", spaces or "//")',
  ...options
})

/** An HTTP token (RFC 9110 §5.6.2): a header name (`what` says so) or a method. */
export const HttpToken = (what: 'a header name' | 'an HTTP method', options: StringOptions = {}) => Type.String({
  pattern: '^[A-Za-z0-9!#$%&\'*+.^_`|~-]+$',
  expected: what,
  ...options
})

/** A route a feature serves: a literal path (default `path`), or `false` for none. */
export const RoutePath = (path: string, description: string) => Type.Union([LiteralPath(), Type.Literal(false)], {
  default: path,
  // Found by src/options.ts, which refuses two of spikard's routes at one path.
  route: true,
  expected: 'a literal path starting with "/" (no ":", "*", "?", "#", "%", spaces or "//"), or false',
  description
})

/**
 * A duration option: milliseconds, or a string such as `500ms`, `30s`, `1m`. Decodes to ms.
 * `minimum` (ms) is shown to users as `minimumText` (`1s`). Typed as `number | DurationText`
 * (the JSON Schema stays a union of an integer and a pattern), so `'soon'` does not compile.
 * At most MAX_TIMER_MS unless `maximum` says otherwise: a duration ends up in a timer, and a
 * longer one would act as 1 ms (a heartbeat every millisecond, every task timed out at once,
 * every shutdown over before it began).
 */
export const Duration = ({ minimum = 0, minimumText = `${minimum} ms`, maximum = MAX_TIMER_MS, ...options }: { description: string, default?: number | string, minimum?: number, minimumText?: string, maximum?: number }) =>
  Type.Transform(Type.Unsafe<number | DurationText>(Type.Union([
    Type.Integer({ minimum }),
    Type.String({ pattern: DURATION.source })
  ], {
    ...options,
    // What a value of it is, for `spikard check` (which shows 30000 as 30s).
    unit: 'duration',
    expected: minimum > 0
      ? `a duration of at least ${minimumText} (milliseconds, or a string such as "30s", "1m", "1h")`
      : 'a duration (milliseconds, or a string such as "500ms", "30s", "1m")'
  })))
    .Decode((value) => {
      const ms = parseDuration(value)
      if (ms < minimum) throw new RangeError(`expected at least ${minimum} ms, found ${ms}`)
      if (ms > maximum) throw new DecodeProblem(`must not exceed ${maximum} ms (about ${Math.floor(maximum / 86_400_000)} days), found ${ms} ms`)
      return ms
    })
    .Encode((ms) => ms)

/** A size option: bytes, or a string such as `512kb`, `1mb`. Decodes to bytes. `maximum` is shown as `maximumText` (`1mb`). Typed as `number | SizeText`. */
export const Size = ({ minimum = 0, maximum, maximumText = `${maximum} bytes`, ...options }: { description: string, default?: number | string, minimum?: number, maximum?: number, maximumText?: string }) =>
  Type.Transform(Type.Unsafe<number | SizeText>(Type.Union([
    Type.Integer({ minimum, ...(maximum === undefined ? {} : { maximum }) }),
    Type.String({ pattern: SIZE.source })
  ], {
    ...options,
    unit: 'size',
    expected: 'a size (bytes, or a string such as "512kb", "1mb")' +
      (minimum > 0 ? ` of at least ${minimum} byte${minimum === 1 ? '' : 's'}` : '') +
      (maximum === undefined ? '' : ` of at most ${maximumText}`)
  })))
    .Decode((value) => {
      const bytes = parseSize(value)
      if (bytes < minimum) throw new RangeError(`expected at least ${minimum} bytes, found ${bytes}`)
      if (maximum !== undefined && bytes > maximum) throw new RangeError(`expected at most ${maximumText}, found ${bytes} bytes`)
      return bytes
    })
    .Encode((bytes) => bytes)

/** A pino log level. */
export const LogLevel = (options: { description: string, default: string }) => Type.Union([
  Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
  Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
], options)

export interface ValidateOptions {
  /** Coerce strings to the number or boolean the schema expects (config files, env vars). */
  coerce?: boolean
  /** Key path prefix for messages, e.g. `requestId`. */
  path?: string
  /** Where the value came from, for the error message (a file name, `spikard options`). */
  source?: string
}

/**
 * `secret`: inside a schema marked `secret: true`, whose values are never echoed in a problem.
 * `refused`: how many of the problems are a DecodeProblem's (a value of the right type, out of range).
 */
interface Walk { problems: string[], coerce: boolean, secret: boolean, refused?: number }

/** Validates, coerces, fills defaults and decodes; throws a SpikardConfigError listing every problem. */
export function validate<T extends TSchema> (schema: T, value: unknown, options: ValidateOptions = {}): StaticDecode<T> {
  const walk: Walk = { problems: [], coerce: options.coerce ?? false, secret: false }
  const out = check(schema, value, options.path ?? '', walk)
  if (walk.problems.length > 0) throw new SpikardConfigError(walk.problems, options.source)
  return out as StaticDecode<T>
}

function check (schema: TSchema, value: unknown, path: string, walk: Walk): unknown {
  // A secret (an HMAC key, an API key, a URL with a password) is described, never echoed.
  const entersSecret = schema.secret === true && !walk.secret
  if (entersSecret) walk.secret = true
  try {
    const before = walk.problems.length
    const out = checkInner(schema, value, path, walk)
    const transform = (schema as any)[TransformKind]
    if (transform === undefined || walk.problems.length !== before) return out
    try {
      return transform.Decode(out)
    } catch (error) {
      if (error instanceof DecodeProblem) walk.refused = (walk.refused ?? 0) + 1
      walk.problems.push(`${path || '(root)'}: ${error instanceof DecodeProblem ? error.message : `expected ${describe(schema)}, found ${show(value, walk, path)}`}`)
      return out
    }
  } finally {
    if (entersSecret) walk.secret = false
  }
}

function checkInner (schema: TSchema, value: unknown, path: string, walk: Walk): unknown {
  const fail = (): unknown => {
    walk.problems.push(`${path || '(root)'}: expected ${describe(schema)}, found ${show(value, walk, path)}`)
    return value
  }
  switch (schema[Kind]) {
    case 'Any':
    case 'Unknown':
      return value
    case 'Boolean':
      if (walk.coerce && (value === 'true' || value === 'false')) return value === 'true'
      return typeof value === 'boolean' ? value : fail()
    case 'Integer':
    case 'Number': {
      let n = value
      if (walk.coerce && typeof n === 'string' && /^-?\d+(\.\d+)?$/.test(n.trim())) n = Number(n)
      if (typeof n !== 'number' || Number.isNaN(n)) return fail()
      if (schema[Kind] === 'Integer' && !Number.isInteger(n)) return fail()
      if (schema.minimum !== undefined && n < schema.minimum) return fail()
      if (schema.maximum !== undefined && n > schema.maximum) return fail()
      return n
    }
    case 'String':
      if (typeof value !== 'string') return fail()
      if (schema.minLength !== undefined && value.length < schema.minLength) return fail()
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'i').test(value)) return fail()
      return value
    case 'Literal':
      return value === schema.const ? value : fail()
    case 'Array': {
      if (!Array.isArray(value) || value.length < (schema.minItems ?? 0)) return fail()
      return value.map((item, i) => check(schema.items, item, `${path}[${i}]`, walk))
    }
    case 'Union': {
      // A branch the value is of the type of, but out of its range (a shorthand `timeout: '600h'`):
      // its own problem, not "expected a duration, found "600h"".
      let outOfRange: Walk | undefined
      for (const branch of schema.anyOf as TSchema[]) {
        const trial: Walk = { problems: [], coerce: walk.coerce, secret: walk.secret }
        const out = check(branch, value, path, trial)
        if (trial.problems.length === 0) return out
        if (outOfRange === undefined && trial.refused === trial.problems.length) outOfRange = trial
      }
      if (outOfRange !== undefined) {
        walk.problems.push(...outOfRange.problems)
        walk.refused = (walk.refused ?? 0) + outOfRange.problems.length
        return value
      }
      // An object that fails: report the object branch's own problems, which are precise;
      // among objects told apart by a literal (`type: 'apiKey'`), the branch the value names.
      const objects = (schema.anyOf as TSchema[]).filter((b) => b[Kind] === 'Object')
      if (isPlainObject(value) && objects.length === 1) return check(objects[0], value, path, walk)
      const named = isPlainObject(value) ? objects.filter((b) => Object.entries(b.properties as Record<string, TSchema>).some(([k, p]) => p[Kind] === 'Literal' && Object.hasOwn(value, k) && value[k] === p.const)) : []
      if (named.length === 1) return check(named[0], value, path, walk)
      // So is a list (a feature's list shorthand, `static: [{ root, prefix }]`): the key at
      // fault, not the whole union. A secret's list stays described as a whole.
      const lists = (schema.anyOf as TSchema[]).filter((b) => b[Kind] === 'Array')
      if (Array.isArray(value) && lists.length === 1 && schema.secret !== true) return check(lists[0], value, path, walk)
      return fail()
    }
    case 'Object': {
      if (!isPlainObject(value)) return fail()
      const properties = schema.properties as Record<string, TSchema>
      const required = new Set<string>(schema.required ?? [])
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(value)) {
        // Own keys of the schema only: `in` would accept toString, constructor, __proto__...
        if (Object.hasOwn(properties, key)) continue
        if (schema.additionalProperties !== false) {
          // Defined, not assigned: `out.__proto__ = v` would replace out's prototype.
          Object.defineProperty(out, key, { value: value[key], enumerable: true, writable: true, configurable: true })
          continue
        }
        const hint = closest(key, Object.keys(properties))
        // A key of a list's entries written beside the list (`static: { root }` for `static: [{ root }]`).
        const list = hint === undefined ? Object.keys(properties).find((p) => entryKeys(properties[p]).includes(key)) : undefined
        walk.problems.push(`${keyPath(path, key)}: unknown key${hint !== undefined ? ` (did you mean "${hint}"?)` : list !== undefined ? ` (it goes in each entry of ${keyPath(path, list)}, a list)` : ''}`)
      }
      for (const [key, prop] of Object.entries(properties)) {
        // Own values only: an object with a replaced prototype must not supply keys through it.
        let v = Object.hasOwn(value, key) ? value[key] : undefined
        if (v === undefined && prop.default !== undefined) v = structuredClone(prop.default)
        if (v === undefined) {
          if (required.has(key)) walk.problems.push(`${keyPath(path, key)}: required, expected ${describe(prop)}`)
          continue
        }
        out[key] = check(prop, v, keyPath(path, key), walk)
      }
      return out
    }
    case 'Record': {
      // A map of names the schema's one key pattern allows (`expectedKey` says which) to values of one schema.
      if (!isPlainObject(value)) return fail()
      const [[pattern, values]] = Object.entries(schema.patternProperties as Record<string, TSchema>)
      const keys = new RegExp(pattern)
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(value)) {
        if (!keys.test(key)) {
          walk.problems.push(`${keyPath(path, key)}: expected ${typeof schema.expectedKey === 'string' ? schema.expectedKey : `a key matching /${pattern}/`} as the key`)
          continue
        }
        Object.defineProperty(out, key, { value: check(values, value[key], keyPath(path, key), walk), enumerable: true, writable: true, configurable: true })
      }
      return out
    }
    default:
      throw new Error(`spikard: unsupported schema kind ${String(schema[Kind])} at ${path}`)
  }
}

/** Plain-words description of what a schema accepts. */
export function describe (schema: TSchema): string {
  if (typeof schema.expected === 'string') return schema.expected
  switch (schema[Kind]) {
    case 'Boolean': return 'true or false'
    case 'Integer':
    case 'Number': {
      const bounds = [
        schema.minimum !== undefined ? `>= ${schema.minimum}` : '',
        schema.maximum !== undefined ? `<= ${schema.maximum}` : ''
      ].filter(Boolean).join(' and ')
      return `${schema[Kind] === 'Integer' ? 'an integer' : 'a number'}${bounds ? ' ' + bounds : ''}`
    }
    case 'String': {
      if (schema.pattern !== undefined) return `a string matching /${schema.pattern}/`
      return schema.minLength ? 'a non-empty string' : 'a string'
    }
    case 'Literal': return JSON.stringify(schema.const)
    case 'Array': return `a ${(schema.minItems ?? 0) > 0 ? 'non-empty ' : ''}list of ${plural(describe(schema.items))}`
    case 'Object': return 'an object'
    case 'Record': return `an object of ${plural(describe(Object.values(schema.patternProperties as Record<string, TSchema>)[0]))}`
    case 'Union': {
      const parts = (schema.anyOf as TSchema[]).map(describe)
      return parts.length > 1 ? `${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}` : parts[0]
    }
    default: return 'any value'
  }
}

/** The keys of the entries of a list of objects; none for any other schema. */
function entryKeys (schema: TSchema): string[] {
  const items = schema[Kind] === 'Array' ? schema.items as TSchema : undefined
  return items?.[Kind] === 'Object' ? Object.keys(items.properties as object) : []
}

function plural (text: string): string {
  return text.replace(/^an? /, '').replace(/^(\w+)/, '$1s')
}

/** What a value is, without what it holds. */
function kindOf (value: unknown): string {
  return Array.isArray(value) ? 'a list' : value === null ? 'null' : `a${typeof value === 'object' ? 'n' : ''} ${typeof value}`
}

/** A value for a problem, shortened; described only inside a secret, or when it is a whole file's text (the root: a `.env` given as the config). */
function show (value: unknown, walk: Walk, path: string): string {
  if (value === undefined) return 'nothing'
  if (typeof value === 'function') return 'a function'
  if (walk.secret || (path === '' && typeof value === 'string')) return `${kindOf(value)} (not shown: it may hold a secret)`
  // JSON writes Infinity and NaN (YAML's .inf and .nan, JSON's 1e400) as null.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  let text: string
  try {
    text = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new RangeError('not finite')
      return v
    }) ?? String(value)
  } catch {
    // A BigInt, a cycle, nesting too deep for the stack (options passed in code), or Infinity or NaN inside.
    text = typeof value === 'bigint' ? `${value}n` : Array.isArray(value) ? 'a list' : 'an object'
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

/** A key path and one more key: a plain name as written, any other quoted (a dot, a space, a control character). */
export function keyPath (path: string, key: string): string {
  const name = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : quote(key)
  return path === '' ? name : `${path}.${name}`
}

/**
 * A name quoted as JSON quotes it, with DEL, the C1 controls and the bidirectional-text
 * controls (which reorder what a terminal shows, U+202E among them) escaped too: nothing in
 * it reaches a terminal raw, or reads as something else.
 */
export function quote (name: string): string {
  return JSON.stringify(name).replace(/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The known key closest to a misspelt one, if it is close enough to be a plausible typo. */
function closest (key: string, known: string[]): string | undefined {
  // The distance costs key.length x candidate.length: no hint for a key no one would type.
  if (key.length > 64) return undefined
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) { best = candidate; bestDistance = d }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined
}

function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length]
}

/** The `resolve<Feature>Options` of a feature: validates, fills defaults, names keys under `path`. */
export function optionsResolver<T extends TSchema> (schema: T, path: string): (options?: Static<T>) => Defaulted<T> {
  return (options) => validate(schema, options ?? {}, { path }) as Defaulted<T>
}

type DeepRequired<T> = T extends readonly unknown[] ? T
  : T extends (...args: any[]) => unknown ? T
    : T extends object ? { [K in keyof T]-?: DeepRequired<T[K]> } : T

/** What a plugin receives: the decoded options with every defaulted key present. */
export type Defaulted<T extends TSchema> = DeepRequired<StaticDecode<T>>
