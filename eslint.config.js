// neostandard, the Fastify organisation's style, with TypeScript.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    // What git ignores (dist, node_modules, scratch files) is not linted either.
    ignores: [...resolveIgnoresFromGitignore(), 'bench/results/**', 'coverage/**']
  }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited, and `void getter` a read
      // for its effect (Fastify creates request.signal's controller on first read).
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
