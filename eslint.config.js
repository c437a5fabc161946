// neostandard, the Fastify organisation's style, with TypeScript.
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**']
  }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited, and `void getter` a read
      // for its effect (Fastify creates request.signal's controller on first read).
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
