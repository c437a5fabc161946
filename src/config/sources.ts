/**
 * Where each option value of a loaded config came from, for `spikard check`:
 *
 *   default                    not in the file: spikard's default (also every option under
 *                              a feature written as `true`, and every option but the main
 *                              one under a shorthand such as `bodyLimit: 512kb`)
 *   default (NODE_ENV=production)  a feature off because production turns it off unless set
 *   config file                written in the file
 *   environment (PORT)         a ${PORT} or ${PORT:-x} the environment set
 *   config file (PORT unset)   a ${PORT:-x} whose variable was unset or empty: the file's x
 *   command line (--port)      a flag that overrides the file
 *
 * Read from the parsed file before substitution and the environment, and shown next to the
 * resolved value. A value under a schema marked `secret: true` is shown as `(secret)`; one
 * written in the file, literally or as the default of an unset variable, is a warning.
 */
import { Kind, TransformKind, type TSchema } from '@sinclair/typebox'
import { ConfigSchema, type ResolvedConfig } from './schema.js'
import { envValue, VARIABLE } from './load.js'
import { features, type FeatureName } from '../options.js'
import { formatBytes, formatDuration, type FeatureDefinition } from '../feature.js'

export interface OptionSource {
  /** Key path, `server.port`, `rateLimit.keyBy`; a feature's own key (`auth`) shows `on` or `off`. */
  path: string
  /** The resolved value in words (durations and sizes with their unit), or `(secret)`. */
  value: string
  source: string
}

export interface SourcesOptions {
  /** Key paths a command-line flag set, to the flag: `{ 'server.port': '--port' }`. */
  overrides?: Record<string, string>
}

export interface Sources {
  options: OptionSource[]
  /** One per secret written literally in the file, or taken from a `${VAR:-default}` whose variable is unset, rather than from the environment. */
  warnings: string[]
}

/** Values that name or hash a secret rather than hold it (`{ name, sha256 }` API keys, `kid`). */
const NOT_SECRET_KEYS = new Set(['name', 'kid', 'sha256'])
const MAX_VALUE = 60

export function optionSources (raw: unknown, config: ResolvedConfig, env: Record<string, string | undefined>, options: SourcesOptions = {}): Sources {
  const out: Sources = { options: [], warnings: [] }
  const overrides = options.overrides ?? {}
  const rawRoot = asObject(raw)

  const leaf = (schema: TSchema, value: unknown, rawValue: unknown, path: string, secret: boolean): void => {
    const flag = overrides[path]
    out.options.push({ path, value: secret ? '(secret)' : show(schema, value), source: flag === undefined ? sourceOf(rawValue, env) : `command line (${flag})` })
    if (!secret || flag !== undefined) return
    if (holdsLiteral(rawValue)) {
      out.warnings.push(`${path} is written in the config file: whoever can read the file (or its repository) has it; ` +
        `take it from the environment instead (${path}: ${fromEnvironment(path, rawValue)})`)
      return
    }
    const unset = [...new Set(secretDefaults(rawValue, env))]
    if (unset.length > 0) {
      const names = unset.join(', ')
      out.warnings.push(`${path} is the default written in the config file, as ${names} ${unset.length === 1 ? 'is' : 'are'} unset: ` +
        `whoever can read the file (or its repository) has it; set ${names}, and write \${${unset[0]}} without a default so that an unset variable is an error`)
    }
  }
  const walk = (schema: TSchema, value: unknown, rawValue: unknown, path: string, secret: boolean): void => {
    const isSecret = secret || schema.secret === true
    // An object, or a union with an object branch holding an object (`{ event, retry } or false`): one line per option.
    const object = schema[Kind] === 'Union' ? (schema.anyOf as TSchema[]).find((s) => s[Kind] === 'Object') : schema
    if (object?.[Kind] !== 'Object' || (schema as any)[TransformKind] !== undefined || asObject(value) === undefined) {
      return leaf(schema, value, rawValue, path, isSecret)
    }
    const rawObject = asObject(rawValue)
    for (const [key, property] of Object.entries(object.properties as Record<string, TSchema>)) {
      const v = (value as Record<string, unknown>)[key]
      if (v !== undefined) walk(property, v, rawObject?.[key], path === '' ? key : `${path}.${key}`, isSecret)
    }
  }

  for (const [key, schema] of Object.entries(ConfigSchema.properties as Record<string, TSchema>)) {
    const value = (config as Record<string, unknown>)[key]
    if (value === undefined) continue
    if (!(key in features)) {
      walk(schema, value, rawRoot?.[key], key, false)
      continue
    }
    const feature = features[key as FeatureName]
    const written = rawRoot?.[key]
    // An options object turns the feature on as written; its own values say where they came from.
    const offInProduction = written === undefined && value === false && (feature as FeatureDefinition).offInProduction === true && env.NODE_ENV === 'production'
    out.options.push({ path: key, value: value === false ? 'off' : 'on', source: offInProduction ? 'default (NODE_ENV=production)' : asObject(written) === undefined ? sourceOf(written, env) : 'config file' })
    if (value === false) continue
    // Under `true` everything is a default; under a shorthand, only its own option was written.
    const rawOptions = asObject(written) ?? (written === undefined || typeof written === 'boolean' || !('shorthand' in feature)
      ? undefined
      : { [feature.shorthand]: written })
    walk(feature.schema, value, rawOptions, key, false)
  }
  return out
}

/**
 * What to write instead of a secret: `${NAME}`; for a list, one variable per item
 * (`["${NAME}"]`, `["${NAME_1}", { name: ci, key: "${NAME_2}" }]`), each named key keeping its name.
 */
function fromEnvironment (path: string, rawValue: unknown): string {
  const name = envName(path)
  if (!Array.isArray(rawValue)) return `\${${name}}`
  return `[${rawValue.map((item, i) => {
    const variable = `"\${${name}${rawValue.length > 1 ? `_${i + 1}` : ''}}"`
    const keyName = asObject(item)?.name
    return typeof keyName === 'string' ? `{ name: ${JSON.stringify(keyName)}, key: ${variable} }` : variable
  }).join(', ')}]`
}

function sourceOf (rawValue: unknown, env: Record<string, string | undefined>): string {
  if (rawValue === undefined) return 'default'
  const names = [...new Set(strings(rawValue).flatMap((s) => [...s.matchAll(VARIABLE)].flatMap((m) => m[1] ?? [])))]
  if (names.length === 0) return 'config file'
  const set = names.filter((name) => envValue(env, name) !== undefined)
  return set.length > 0 ? `environment (${set.join(', ')})` : `config file (${names.join(', ')} unset)`
}

function strings (value: unknown): string[] {
  if (typeof value === 'string') return [value]
  if (Array.isArray(value)) return value.flatMap(strings)
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(strings)
  return []
}

/** Whether a secret option, as written, holds a secret itself: a string with no ${VAR} in it. */
function holdsLiteral (value: unknown): boolean {
  if (typeof value === 'string') {
    if (value.includes('${')) return false
    // A URL holds a secret only in its userinfo (redis://user:password@host).
    return /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? /^[^:]+:\/\/[^/@]*:[^/@]*@/.test(value) : true
  }
  if (Array.isArray(value)) return value.some(holdsLiteral)
  if (value !== null && typeof value === 'object') return Object.entries(value).some(([k, v]) => !NOT_SECRET_KEYS.has(k) && holdsLiteral(v))
  return false
}

/**
 * The variables, unset, whose `${VAR:-default}` puts a secret written in the file into the
 * value: the default is all of it (`${JWT_SECRET:-dev-secret}`), or a URL's password
 * (`redis://app:${REDIS_PASSWORD:-hunter2}@cache`), not a URL's host (`redis://${REDIS_HOST:-cache}`).
 */
function secretDefaults (value: unknown, env: Record<string, string | undefined>): string[] {
  if (Array.isArray(value)) return value.flatMap((item) => secretDefaults(item, env))
  if (value !== null && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => NOT_SECRET_KEYS.has(k) ? [] : secretDefaults(v, env))
  if (typeof value !== 'string') return []
  // The value as the file gives it: what the environment gives is \0, no part of the file;
  // a default in use is its text, at [start, end) for its variable.
  const defaults: Array<{ name: string, start: number, end: number }> = []
  let written = ''
  let last = 0
  for (const m of value.matchAll(VARIABLE)) {
    const [match, name, fallback] = m
    written += value.slice(last, m.index)
    last = m.index + match.length
    if (name === undefined) written += match === '$${' ? '${' : match
    else if (envValue(env, name) !== undefined || fallback === undefined || fallback === '') written += '\0'
    else {
      defaults.push({ name, start: written.length, end: written.length + fallback.length })
      written += fallback
    }
  }
  written += value.slice(last)
  // The secret: all of it, or a URL's password.
  const password = /^[a-z][a-z0-9+.-]*:\/\//i.test(written) ? /^[^:]+:\/\/[^/@:]*:([^/@]*)@/d.exec(written)?.indices?.[1] : [0, written.length]
  if (password === undefined) return []
  const [from, to] = password
  return defaults.filter(({ start, end }) => start < to && end > from).map(({ name }) => name)
}

/** `auth.jwt.secret` to `AUTH_JWT_SECRET`, `rateLimit.redis` to `RATE_LIMIT_REDIS`: a name to suggest. */
function envName (path: string): string {
  return path.replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/\./g, '_').toUpperCase()
}

/** A value in a few words: durations and sizes with their unit, long values cut. */
function show (schema: TSchema, value: unknown): string {
  const unit = schema.unit as 'duration' | 'size' | undefined
  let text: string
  if (typeof value === 'number' && unit === 'duration') text = formatDuration(value)
  else if (typeof value === 'number' && unit === 'size') text = formatBytes(value)
  else if (Array.isArray(value)) text = `[${value.map(item).join(', ')}]`
  else text = item(value)
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 3)}...` : text
}

function item (value: unknown): string {
  if (typeof value === 'string') return value === '' || /[\s"',[\]]/.test(value) ? JSON.stringify(value) : value
  return JSON.stringify(value) ?? String(value)
}

function asObject (value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Record<string, unknown> : undefined
}
