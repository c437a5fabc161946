/**
 * The `spikard` CLI as compiled JavaScript, for the tests that run it as a child process
 * (about a hundred per run of the suite). Through tsx's loader a child costs 1.8 s of CPU
 * before it does anything, against 0.7 s compiled: most of the suite's CPU went there.
 * Compiled as the package ships it: src/ and plugins/ transpiled file by file (esbuild,
 * which tsx uses too), the package.json beside them, no loader in the child.
 *
 * The output is keyed by a hash of the sources, under node_modules/.cache/, so the test
 * files running in parallel compile it once and a change to any source compiles it again.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { transformSync } from 'esbuild'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CACHE = join(ROOT, 'node_modules/.cache/spikard-cli')
const STALE_MS = 60 * 60_000

function compile (): string {
  const sources: Array<[string, string]> = []
  for (const top of ['src', 'plugins']) {
    for (const file of readdirSync(join(ROOT, top), { recursive: true, encoding: 'utf8' }).sort()) {
      if (file.endsWith('.ts') && !file.endsWith('.d.ts')) sources.push([join(top, file), readFileSync(join(ROOT, top, file), 'utf8')])
    }
  }
  const pkg = readFileSync(join(ROOT, 'package.json'))
  const { compilerOptions } = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: Record<string, unknown> }
  const hash = createHash('sha256').update(pkg)
  for (const [path, text] of sources) hash.update(path).update('\0').update(text).update('\0')
  const out = join(CACHE, hash.digest('hex').slice(0, 16))
  if (existsSync(out)) return out

  // Written aside, then renamed into place: a test file running beside this one may be doing the same.
  const partial = `${out}.${process.pid}`
  for (const [path, text] of sources) {
    const { code } = transformSync(text, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: path, tsconfigRaw: { compilerOptions } })
    const dest = join(partial, path.replace(/\.ts$/, '.js'))
    mkdirSync(dirname(dest), { recursive: true })
    writeFileSync(dest, code)
  }
  writeFileSync(join(partial, 'package.json'), pkg)
  try {
    renameSync(partial, out)
  } catch {
    rmSync(partial, { recursive: true, force: true })
  }
  // Earlier sources' output, an hour old (another test file may be removing it too).
  for (const name of readdirSync(CACHE)) {
    const dir = join(CACHE, name)
    try {
      if (dir !== out && Date.now() - statSync(dir).mtimeMs > STALE_MS) rmSync(dir, { recursive: true, force: true })
    } catch { /* gone already */ }
  }
  return out
}

/** The compiled `src/cli/index.js`, compiled now if the sources changed. */
export const CLI = join(compile(), 'src/cli/index.js')
