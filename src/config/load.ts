/** Finds, parses and validates a config file, substituting ${VAR} and ${VAR:-default} from the environment. */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { SpikardConfigError } from '../errors.js'
import { resolveConfig, type ResolvedConfig } from './schema.js'

export const CONFIG_FILES = ['spikard.config.json', 'spikard.config.yaml', 'spikard.config.yml']

export interface LoadedConfig {
  /** Absolute path of the file read. */
  file: string
  config: ResolvedConfig
}

export interface LoadConfigOptions {
  /** A config file path (`--config`); otherwise the first of CONFIG_FILES found in `cwd`. */
  file?: string
  cwd?: string
  env?: Record<string, string | undefined>
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
  if (!statSync(file).isFile()) throw new SpikardConfigError([`not a file: ${file}`], source)
  const text = readFileSync(file, 'utf8')
  let raw: unknown
  try {
    raw = extname(file) === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (error) {
    throw new SpikardConfigError([`not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`], source)
  }
  if (raw === null || raw === undefined) raw = {}
  const problems: string[] = []
  const substituted = substitute(raw, '', options.env ?? process.env, problems)
  if (problems.length > 0) throw new SpikardConfigError(problems, source)
  return { file, config: resolveConfig(substituted, { coerce: true, source }) }
}

const VARIABLE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/** Replaces ${VAR} and ${VAR:-default} (default when unset or empty, as in the shell) in every string. */
export function substitute (value: unknown, path: string, env: Record<string, string | undefined>, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(VARIABLE, (_match, name: string, fallback: string | undefined) => {
      const v = env[name]
      if (v !== undefined && v !== '') return v
      if (fallback !== undefined) return fallback
      problems.push(`${path || '(root)'}: environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)`)
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((item, i) => substitute(item, `${path}[${i}]`, env, problems))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, path === '' ? k : `${path}.${k}`, env, problems)]))
  }
  return value
}
