// neostandard, the Fastify organisation's style, with TypeScript.
import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'coverage/**']
})
