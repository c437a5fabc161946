import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The installed spikard version: the nearest package.json above this file (src/ or dist/src/). */
export function packageVersion (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
      if (pkg.name === 'spikard') return pkg.version
    } catch { /* keep climbing */ }
    const parent = dirname(dir)
    if (parent === dir) return 'unknown'
    dir = parent
  }
}
