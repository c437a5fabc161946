/** How the CLI reports an app that did not load: one problem per line, no stack trace. */
import { spawnSync } from 'node:child_process'
import { extname, resolve } from 'node:path'
import { inspect } from 'node:util'
import { SpikardConfigError } from '../errors.js'

/**
 * An app that did not load: a config error lists its own problems; anything else (the
 * routes module threw, imports a missing package, does not parse, failed when ready) is its
 * name and message, with where it happened in the user's code when known. `app` is the
 * config's `app`, resolved against `baseDir`.
 */
export function appFailed (error: unknown, file: string, baseDir: string, app?: string): string {
  // Options checked as the app is built came from this file too.
  if (error instanceof SpikardConfigError) return error.source === 'options' || error.source === 'config' ? new SpikardConfigError(error.problems, `config ${file}`).message : error.message
  if (!(error instanceof Error)) return `the app of ${file} did not load: it threw ${shown(error)}`
  const lines = error.message.split('\n').filter((line) => line.trim() !== '' && !/^\s+at /.test(line))
  const name = error.name !== 'Error' && error.name !== '' ? `${error.name}: ` : ''
  const where = userFrame(error.stack ?? '', baseDir) ?? (error instanceof SyntaxError && app !== undefined ? parseError(resolve(baseDir, app), baseDir) : undefined)
  return `the app of ${file} did not load: ${name}${lines[0] ?? '(no message)'}${where === undefined ? '' : ` (at ${where})`}` +
    lines.slice(1).map((line) => `\n  ${line.trim()}`).join('') + causes(error, new Set([error]))
}

/** A thrown value that is no Error as Node shows it (`{ message: 'x', code: 'E' }`, not `[object Object]`), on one line. */
function shown (value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : inspect(value, { depth: 2, breakLength: Infinity, maxStringLength: 200 })
}

/**
 * An error's causes (`new Error('no database', { cause })`; fetch's "fetch failed" keeps
 * the DNS or socket error there) and an AggregateError's errors (Node 20 connecting to
 * `localhost`), one line each: often the only words that say what went wrong.
 */
function causes (error: Error, seen: Set<unknown>): string {
  const inner = [...(error.cause === undefined ? [] : [error.cause]), ...(error instanceof AggregateError ? error.errors as unknown[] : [])]
  let text = ''
  // Checked as each is shown: one shown already (a cause deeper in another) or the tenth ends it.
  for (const cause of inner) {
    if (seen.has(cause) || seen.size >= 10) continue
    seen.add(cause)
    if (!(cause instanceof Error)) {
      text += `\n  caused by: ${shown(cause)}`
      continue
    }
    const name = cause.name !== 'Error' && cause.name !== '' ? `${cause.name}: ` : ''
    text += `\n  caused by: ${name}${cause.message.split('\n')[0] || '(no message)'}${causes(cause, seen)}`
  }
  return text
}

/**
 * The first place in the user's code a stack names: a syntax error's first line
 * (`file:///srv/app/routes.mjs:3`), else the first frame under the config's directory and
 * outside node_modules.
 */
function userFrame (stack: string, baseDir: string): string | undefined {
  const lines = stack.split('\n')
  const head = /^(file:\/\/\S+|\/\S+):(\d+)$/.exec(lines[0] ?? '')
  if (head !== null) return `${head[1].replace(/^file:\/\//, '')}:${head[2]}`
  for (const line of lines) {
    const frame = /^\s+at (?:.*? \()?(?:file:\/\/)?(\/[^()]+?:\d+:\d+)\)?$/.exec(line)
    if (frame !== null && frame[1].startsWith(baseDir + '/') && !frame[1].includes('/node_modules/')) return frame[1]
  }
  return undefined
}

/**
 * Where a JavaScript routes module fails to parse. Node keeps it out of the error an import
 * rejects with (it prints it only for an error nobody catches); `node --check` prints it.
 * TypeScript modules are left out: their loader's errors name the place already.
 */
function parseError (app: string, baseDir: string): string | undefined {
  if (!['.js', '.mjs', '.cjs'].includes(extname(app))) return undefined
  const checked = spawnSync(process.execPath, ['--check', app], { encoding: 'utf8', timeout: 10_000 })
  return userFrame(checked.stderr ?? '', baseDir)
}
