/**
 * `npm run test:unit`: the in-process test files, without those that fork processes, start
 * redis-server, run the CLI or pack the package (slow, and they need more than Node).
 */
import { spawnSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const PROCESS_TESTS = new Set([
  'test/cli.test.ts',
  'test/cli-asyncapi.test.ts',
  'test/cli-asyncapi-generate.test.ts',
  'test/cli-openapi.test.ts',
  'test/log-destination.test.ts',
  'test/package.test.ts',
  'test/plugins/rate-limit-redis.test.ts',
  'test/plugins/shutdown.test.ts',
  'test/plugins/shutdown-load.test.ts',
  'test/plugins/tasks-shutdown.test.ts'
])

const root = fileURLToPath(new URL('..', import.meta.url))
const files = ['test', 'test/plugins']
  .flatMap((dir) => readdirSync(new URL(`../${dir}/`, import.meta.url)).filter((f) => f.endsWith('.test.ts')).map((f) => `${dir}/${f}`))
  .filter((f) => !PROCESS_TESTS.has(f))
  .sort()

const run = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' })
process.exitCode = run.status ?? 1
