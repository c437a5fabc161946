import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The nearest package.json at or above `dir` (that `accept` takes), parsed; undefined when there is none. */
export function nearestPackageJson (dir: string, accept: (pkg: Record<string, unknown>) => boolean = () => true): Record<string, unknown> | undefined {
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as unknown
      if (pkg !== null && typeof pkg === 'object' && accept(pkg as Record<string, unknown>)) return pkg as Record<string, unknown>
    } catch { /* none here, or not JSON: keep climbing */ }
    const parent = dirname(dir)
    if (parent === dir) return undefined
    dir = parent
  }
}

/** The installed spikard version: the nearest package.json above this file (src/ or dist/src/) named spikard. */
export function packageVersion (): string {
  const pkg = nearestPackageJson(dirname(fileURLToPath(import.meta.url)), (p) => p.name === 'spikard')
  return typeof pkg?.version === 'string' ? pkg.version : 'unknown'
}
