/** Finds, parses and validates a config file, substituting ${VAR} and ${VAR:-default} from the environment. */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { createRequire } from 'node:module'
import type { CST } from 'yaml'
import { Kind, type TSchema } from '@sinclair/typebox'
import { SpikardConfigError } from '../errors.js'
import { keyPath, quote } from '../schema.js'
import { ConfigSchema, resolveConfig, type ResolvedConfig } from './schema.js'

export const CONFIG_FILES = ['spikard.config.json', 'spikard.config.yaml', 'spikard.config.yml']

/**
 * Limits on what a config file may hold, so a hostile or broken file fails fast with a
 * clear message instead of exhausting memory or the stack:
 * - MAX_CONFIG_BYTES: checked before parsing. A real config, inline PEM keys included, is a
 *   few KiB; a 62 MB YAML file took 38 s and 2.7 GB to parse.
 * - MAX_CONFIG_DEPTH: levels of objects and lists, the root object counting as one. The
 *   deepest real key is about 5 levels down; parsing and the validator recurse, and a file
 *   nested 200,000 levels deep overflowed the stack (yaml's composer from ~1,000 levels).
 * - MAX_CONFIG_VALUES: keys, list items and scalars once YAML aliases are expanded. yaml's
 *   own check (maxAliasCount) stops exponential expansion, not one big list aliased 200 times.
 */
export const MAX_CONFIG_BYTES = 1024 * 1024
export const MAX_CONFIG_DEPTH = 64
export const MAX_CONFIG_VALUES = 100_000
const TOO_DEEP = `nested too deep: more than ${MAX_CONFIG_DEPTH} levels of objects and lists`

export interface LoadedConfig {
  /** Absolute path of the file read. */
  file: string
  config: ResolvedConfig
  /** The parsed file before ${VAR} substitution (`spikard check` tells defaults, file and environment apart). */
  raw: unknown
}

export interface LoadConfigOptions {
  /** A config file path (`--config`); otherwise the first of CONFIG_FILES found in `cwd`. */
  file?: string
  cwd?: string
  env?: Record<string, string | undefined>
}

/** yaml, loaded with the first YAML file read: a server configured in code never holds it (about 1 MB of heap). */
let yamlModule: typeof import('yaml') | undefined
function yaml (): typeof import('yaml') {
  return (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'))
}

export function findConfigFile (cwd: string): string {
  const found = CONFIG_FILES.map((name) => resolve(cwd, name)).find((f) => existsSync(f))
  if (found === undefined) throw new SpikardConfigError([`no config file found in ${cwd} (looked for ${CONFIG_FILES.join(', ')}); name one with --config`], 'config')
  return found
}

export function loadConfig (options: LoadConfigOptions = {}): LoadedConfig {
  const cwd = options.cwd ?? process.cwd()
  const file = options.file === undefined ? findConfigFile(cwd) : resolve(cwd, options.file)
  const source = `config ${file}`
  if (!existsSync(file)) throw new SpikardConfigError([`file not found: ${file}`], source)
  const stats = statSync(file)
  if (!stats.isFile()) throw new SpikardConfigError([`not a file: ${file}`], source)
  const tooLarge = (bytes: number): SpikardConfigError =>
    new SpikardConfigError([`${file} is ${bytes} bytes; a config file may hold at most ${MAX_CONFIG_BYTES} bytes (1 MiB)`], source)
  if (stats.size > MAX_CONFIG_BYTES) throw tooLarge(stats.size)
  const bytes = readFileSync(file)
  // The file may have grown since stat().
  if (bytes.length > MAX_CONFIG_BYTES) throw tooLarge(bytes.length)
  // A BOM (editors on Windows write one) is not JSON; yaml skips it by itself.
  const text = bytes.toString('utf8').replace(/^\uFEFF/, '')
  const json = extname(file) === '.json'
  // yaml's composer recurses: measure the nesting on its (iterative) parse tree first.
  if (!json && yamlTooDeep(text)) throw new SpikardConfigError([TOO_DEEP], source)
  let raw: unknown
  try {
    raw = json ? JSON.parse(text) : parseYaml(text, source)
  } catch (error) {
    if (error instanceof SpikardConfigError) throw error
    throw new SpikardConfigError([`not valid ${json ? 'JSON' : 'YAML'}: ${parseProblem(error as Error, text, json)}`], source)
  }
  // yaml refuses a key set twice in one mapping; JSON.parse keeps the last one silently.
  const twice = json ? repeatedJsonKey(text) : undefined
  if (twice !== undefined) throw new SpikardConfigError([`not valid JSON: ${quote(twice.key)} is set twice in one object ${place(text, twice.at)}`], source)
  if (raw === null || raw === undefined) raw = {}
  const shapeProblem = checkShape(raw)
  if (shapeProblem !== undefined) throw new SpikardConfigError([shapeProblem], source)
  const env = options.env ?? process.env
  const problems: string[] = []
  const substituted = substitute(raw, '', env, problems)
  // Every problem of the file at once, but not what is said of the values whose substitution
  // failed (an unset variable left an empty string there), unless their key is unknown.
  const failed = new Set(problems.map(problemPath))
  const ofFailedValue = (p: string): boolean => failed.has(problemPath(p)) && !p.startsWith(`${problemPath(p)}: unknown key`)
  let config: ResolvedConfig | undefined
  try {
    config = resolveConfig(substituted, { coerce: true, source })
  } catch (error) {
    if (!(error instanceof SpikardConfigError)) throw error
    problems.push(...error.problems.filter((p) => !ofFailedValue(p)).map((p) => withVariables(p, raw, env)))
  }
  if (problems.length > 0 || config === undefined) throw new SpikardConfigError(problems, source)
  return { file, config, raw }
}

/** The tags a YAML config may carry: those of JSON's values (`!!str 8000`), and `!`, a plain string. */
const PLAIN_TAGS = new Set(['!', ...['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`)])

/** `!!omap` for `tag:yaml.org,2002:omap`, as it is usually written. */
function tagName (tag: string): string {
  return tag.replace(/tag:yaml\.org,2002:/g, '!!')
}

/**
 * A YAML text as plain values, as yaml's parse() gives it, but refusing any other tag: yaml
 * reads `!!timestamp` as a Date, `!!set` and `!!omap` as a Set and a Map and `!!binary` as
 * bytes, which the validator took for objects without keys (`server: !!omap [port: 1]` was
 * the default server, `compression: !!timestamp 2001-12-14` turned compression on), and a
 * tag it does not know (`!!js/function`, `!env`) as the text after it, with only a warning
 * on stderr naming neither the file nor the key.
 */
function parseYaml (text: string, source: string): unknown {
  const { parseDocument, visit, isPair, isScalar, isSeq } = yaml()
  const doc = parseDocument(text, { merge: true, prettyErrors: false })
  if (doc.errors.length > 0) throw doc.errors[0]
  let problem: string | undefined
  // Nesting is bounded already (yamlTooDeep): yaml's recursive visit is safe.
  visit(doc, {
    Node (_, node, ancestors) {
      if (node.tag === undefined || PLAIN_TAGS.has(node.tag)) return
      const chain = [...ancestors, node]
      let path = ''
      for (let i = 1; i < chain.length; i++) {
        const [parent, step] = [chain[i - 1], chain[i]]
        if (isPair(step) && isScalar(step.key) && step.key !== node) path = keyPath(path, typeof step.key.value === 'symbol' ? '<<' : String(step.key.value))
        else if (isSeq(parent)) path += `[${parent.items.indexOf(step as never)}]`
      }
      problem = `${path || '(root)'}: YAML tag ${quote(tagName(node.tag)).slice(1, -1)} ${place(text, node.range?.[0] ?? 0)}: ` +
        'spikard reads plain values only (strings, numbers, booleans, null, mappings and lists), tagged at most !!str, !!int, !!float, !!bool, !!null, !!map or !!seq'
      return visit.BREAK
    }
  })
  if (problem !== undefined) throw new SpikardConfigError([problem], source)
  // What parse() does with the warnings left (an unknown directive, a plain tag on a value of
  // another kind, `!!seq { a: 1 }`, read as written and checked as any value is).
  for (const warning of doc.warnings) process.emitWarning(warning)
  return doc.toJS({ maxAliasCount: 100 })
}

/**
 * What a parser said, without the text around the error that both quote (V8's JSON.parse
 * an excerpt of the file, yaml the line with a caret): a config file holds secrets. The
 * place is given as a line and a column.
 */
function parseProblem (error: Error, text: string, json: boolean): string {
  const offset = (error as { pos?: [number, number] }).pos?.[0] ?? (json ? jsonPosition(error) ?? jsonErrorOffset(text) : yamlErrorOffset(text) ?? NaN)
  // yaml's words for a second `---` document tell the caller which function to use instead.
  if ((error as { code?: string }).code === 'MULTIPLE_DOCS') return `a second document starts ${place(text, offset)}: a config file holds one`
  // V8: `Unexpected token 'x', "...excerpt..." is not valid JSON`, `... in JSON at position 12 (line 1 column 13)`,
  // and text after the value: `... after JSON at position 8` (Node 24 adds `(line 1 column 9)`).
  const what = error.message.split(/, [".]| in JSON at position | at position \d+| at line \d+/)[0].trim()
  return Number.isInteger(offset) ? `${what} ${place(text, offset)}` : what
}

function jsonPosition (error: Error): number | undefined {
  const at = /at position (\d+)/.exec(error.message)?.[1]
  return at === undefined ? undefined : Number(at)
}

/**
 * Where a JSON text goes wrong, for V8's errors that do not say (`Unexpected token 'x'`):
 * the length of its longest prefix that could still begin a valid text. A prefix of such a
 * prefix is one too, so it is found by bisection. A prefix can begin a text when it parses,
 * when it only ends too soon, or when the place V8 gives for its error is its end.
 */
function jsonErrorOffset (text: string): number {
  const viable = (n: number): boolean => {
    try {
      JSON.parse(text.slice(0, n))
      return true
    } catch (error) {
      const { message } = error as Error
      return message.startsWith('Unexpected end of JSON input') || jsonPosition(error as Error) === n
    }
  }
  if (viable(text.length)) return text.length
  let good = 0
  let bad = text.length
  while (bad - good > 1) {
    const mid = (good + bad) >>> 1
    if (viable(mid)) good = mid
    else bad = mid
  }
  return good
}

/**
 * Where the two errors yaml gives without a position come from: an alias whose anchor is
 * not set before it ("Unresolved alias"), and a merge key (`<<`) given something other than
 * a mapping, an alias of one or a list of those ("Merge sources must be maps or map
 * aliases"). Looked for only once parsing has failed; the nesting is already bounded
 * (yamlTooDeep), so yaml's recursive visit is safe.
 */
function yamlErrorOffset (text: string): number | undefined {
  const { parseDocument, visit, isAlias, isMap, isScalar, isSeq } = yaml()
  const doc = parseDocument(text, { merge: true })
  const resolved = (node: unknown): unknown => isAlias(node) ? node.resolve(doc) : node
  let at: number | undefined
  visit(doc, {
    Alias (_, alias) {
      if (alias.resolve(doc) !== undefined) return
      at = alias.range?.[0]
      return visit.BREAK
    },
    Pair (_, pair) {
      if (!isScalar(pair.key) || typeof pair.key.value !== 'symbol') return
      const value = resolved(pair.value)
      if (isSeq(value) ? value.items.every((item) => isMap(resolved(item))) : isMap(value)) return
      at = pair.key.range?.[0]
      return visit.BREAK
    }
  })
  return at
}

/** `(line L, column C)` of a character of the text. */
function place (text: string, offset: number): string {
  const before = text.slice(0, offset)
  return `(line ${before.split('\n').length}, column ${offset - before.lastIndexOf('\n')})`
}

/**
 * The first key repeated within one object of a JSON text that parses, and where its
 * second occurrence starts. Read without recursion, as the file may nest deep.
 */
function repeatedJsonKey (text: string): { key: string, at: number } | undefined {
  // One entry per open object (its keys) or list (undefined).
  const open: Array<Set<string> | undefined> = []
  let expectingKey = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) { // "
      let end = i + 1
      while (text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1
      const keys = open[open.length - 1]
      if (expectingKey && keys !== undefined) {
        const key = JSON.parse(text.slice(i, end + 1)) as string
        if (keys.has(key)) return { key, at: i }
        keys.add(key)
        expectingKey = false
      }
      i = end
    } else if (c === 0x7b) { // {
      open.push(new Set())
      expectingKey = true
    } else if (c === 0x5b) { // [
      open.push(undefined)
    } else if (c === 0x7d || c === 0x5d) { // } ]
      open.pop()
    } else if (c === 0x2c) { // ,
      expectingKey = open[open.length - 1] !== undefined
    }
  }
  return undefined
}

/** A problem of a value the environment gave: says which variables (`found "abc" (from ${RL})`). */
function withVariables (problem: string, raw: unknown, env: Record<string, string | undefined>): string {
  const written = rawAt(raw, problemPath(problem))
  if (typeof written !== 'string') return problem
  const names = [...written.matchAll(VARIABLE)].flatMap((m) => m[1] !== undefined && envValue(env, m[1]) !== undefined ? [`\${${m[1]}}`] : [])
  return names.length === 0 ? problem : `${problem} (from ${names.join(', ')})`
}

/** The key path a problem is about: what comes before its first `: `. */
function problemPath (problem: string): string {
  return problem.slice(0, problem.indexOf(': '))
}

/** The value at a problem's path (`a.b[0].c`) in the parsed file, or undefined. */
function rawAt (raw: unknown, path: string): unknown {
  let value = raw
  for (const part of path.split(/\.|(?=\[)/)) {
    const index = /^\[(\d+)\]$/.exec(part)
    if (index !== null) value = Array.isArray(value) ? value[Number(index[1])] : undefined
    else value = value !== null && typeof value === 'object' && Object.hasOwn(value, part) ? (value as Record<string, unknown>)[part] : undefined
  }
  return value
}

/**
 * `${VAR}` or `${VAR:-default}` (the name is group 1, the default group 2; a default holds
 * no `${`); `$${`, a literal `${`; or any other `${` (group 3), which is refused rather
 * than left in the value as text: `${VAR:?message}`, `${VAR-x}`, a nested `${A:-${B}}`.
 */
export const VARIABLE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}$]|\$(?!\{))*))?\}|(\$\{)/g

/**
 * A variable's value, when it counts as set: an own, non-empty string entry of the
 * environment (env['toString'] would otherwise be a function of Object.prototype; empty
 * counts as unset, as `${VAR:-x}` does in the shell).
 */
export function envValue (env: Record<string, string | undefined>, name: string): string | undefined {
  const v = Object.hasOwn(env, name) ? env[name] : undefined
  return typeof v === 'string' && v !== '' ? v : undefined
}

/**
 * Replaces ${VAR} and ${VAR:-default} (default when unset or empty, as in the shell) in every string, and $${ with ${.
 * `schemas` are what the value may be checked against (from ConfigSchema): a value under a
 * schema marked `secret: true` is not quoted when its `${` is refused, as it is written in the file.
 */
export function substitute (value: unknown, path: string, env: Record<string, string | undefined>, problems: string[], schemas: TSchema[] = [ConfigSchema], secret = false): unknown {
  const isSecret = secret || schemas.some(marksSecret)
  if (typeof value === 'string') {
    return value.replace(VARIABLE, (match, name: string | undefined, fallback: string | undefined, other: string | undefined, at: number) => {
      if (other !== undefined) {
        const what = isSecret ? 'holds a "${" that is not a substitution spikard knows (the value is not shown: it may hold a secret)' : `${JSON.stringify(value.slice(at, at + 40))} is not a substitution spikard knows`
        problems.push(`${path || '(root)'}: ${what}: write \${VAR} or \${VAR:-default} (a default holds no \${), or $\${ for a literal \${`)
        return match
      }
      if (name === undefined) return '${'
      const v = envValue(env, name)
      if (v !== undefined) return v
      if (fallback !== undefined) return fallback
      problems.push(`${path || '(root)'}: environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)`)
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((item, i) => substitute(item, `${path}[${i}]`, env, problems, childSchemas(schemas, i), isSecret))
  if (value !== null && typeof value === 'object') {
    // fromEntries defines own properties: a "__proto__" key stays a key (reported as unknown).
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, keyPath(path, k), env, problems, childSchemas(schemas, k), isSecret)]))
  }
  return value
}

/** Whether a schema, or a branch of it (a feature's shorthand), is marked `secret: true`. */
function marksSecret (schema: TSchema): boolean {
  return schema.secret === true || (schema[Kind] === 'Union' && (schema.anyOf as TSchema[]).some(marksSecret))
}

/** The schemas a key (or, given a number, an item) of a value of `schemas` may be checked against, through unions. */
function childSchemas (schemas: TSchema[], key: string | number): TSchema[] {
  const out: TSchema[] = []
  const visit = (schema: TSchema): void => {
    if (schema[Kind] === 'Union') (schema.anyOf as TSchema[]).forEach(visit)
    else if (typeof key === 'number') {
      if (schema[Kind] === 'Array') out.push(schema.items as TSchema)
    } else if (schema[Kind] === 'Object' && Object.hasOwn(schema.properties as object, key)) out.push((schema.properties as Record<string, TSchema>)[key])
    else if (schema[Kind] === 'Record') out.push(...Object.values(schema.patternProperties as Record<string, TSchema>))
  }
  schemas.forEach(visit)
  return out
}

/**
 * Why a parsed config is refused before it is walked, if it is: deeper than
 * MAX_CONFIG_DEPTH or more than MAX_CONFIG_VALUES values. Iterative, so any depth is safe;
 * a value reached twice through YAML aliases counts twice, as the walks that follow see it.
 */
function checkShape (root: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[root, 1]]
  let count = 0
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!
    if (++count > MAX_CONFIG_VALUES) return `too many values: more than ${MAX_CONFIG_VALUES} keys, list items and scalars once YAML aliases are expanded`
    if (value === null || typeof value !== 'object') continue
    if (depth > MAX_CONFIG_DEPTH) return TOO_DEEP
    for (const child of Object.values(value)) stack.push([child, depth + 1])
  }
  return undefined
}

/** Whether a YAML text nests collections deeper than MAX_CONFIG_DEPTH, read from yaml's CST (built without recursion). */
function yamlTooDeep (text: string): boolean {
  const stack: Array<[CST.Token, number]> = []
  for (const token of new (yaml().Parser)().parse(text)) stack.push([token, 0])
  while (stack.length > 0) {
    const [token, outer] = stack.pop()!
    const depth = token.type === 'block-map' || token.type === 'block-seq' || token.type === 'flow-collection' ? outer + 1 : outer
    if (depth > MAX_CONFIG_DEPTH) return true
    if ('value' in token && typeof token.value === 'object' && token.value !== null) stack.push([token.value, depth])
    if ('items' in token) {
      for (const item of token.items) {
        if (item.key !== undefined && item.key !== null) stack.push([item.key, depth])
        if (item.value !== undefined) stack.push([item.value, depth])
      }
    }
  }
  return false
}
