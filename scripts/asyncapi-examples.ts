/**
 * Runs `spikard asyncapi generate` over the AsyncAPI specification's examples and prints how
 * many parse, how many have WebSocket or HTTP channels and generate, and how many of those
 * compile under `tsc --strict`. The examples are not in this repository: extract them from
 * github.com/asyncapi/spec at a tag, then point this script at them:
 *
 *     git -C <spec clone> archive v3.0.0 examples | tar -x -C /tmp/asyncapi-spec-3.0.0
 *     npx tsx scripts/asyncapi-examples.ts /tmp/asyncapi-spec-3.0.0/examples
 *
 * (or ASYNCAPI_EXAMPLES=<dir>; test/codegen-examples.test.ts runs the same when it is set).
 * Fragments without an `asyncapi` key (files other documents reference) are not counted.
 */
import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { spawnSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { generate } from '../src/codegen/index.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export interface ExampleResult { file: string, version: string, parsed: boolean, generated: boolean, compiled: boolean | undefined, detail: string }

async function documents (dir: string): Promise<Array<{ file: string, version: string }>> {
  const found: Array<{ file: string, version: string }> = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !/\.(ya?ml|json)$/.test(entry.name)) continue
    const file = join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name)
    let version: unknown
    try { version = (parseYaml(await readFile(file, 'utf8')) as { asyncapi?: unknown } | null)?.asyncapi } catch { continue }
    if (typeof version === 'string' && version.startsWith('3.')) found.push({ file, version })
  }
  return found.sort((a, b) => a.file.localeCompare(b.file))
}

export async function runExamples (dir: string): Promise<ExampleResult[]> {
  const out = await mkdtemp(join(tmpdir(), 'spikard-examples-'))
  try {
    const results: ExampleResult[] = []
    const projects = new Map<string, ExampleResult>()
    for (const [i, { file, version }] of (await documents(dir)).entries()) {
      const project = join(out, `p${i}`)
      const r = await generate(file, { out: project, client: true })
      const parsed = !r.lines.some((l) => l.startsWith('error: '))
      const result: ExampleResult = { file: relative(dir, file), version, parsed, generated: r.code === 0, compiled: undefined, detail: r.lines.filter((l) => !l.startsWith('wrote ')).join('\n') }
      results.push(result)
      if (r.code === 0) projects.set(`p${i}`, result)
    }
    if (projects.size > 0) {
      await symlink(join(ROOT, 'node_modules'), join(out, 'node_modules'), 'dir')
      await writeFile(join(out, 'package.json'), '{ "type": "module" }\n')
      await writeFile(join(out, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', skipLibCheck: true, noEmit: true, types: ['node'], paths: { spikard: [join(ROOT, 'src/index.ts')] } },
        include: ['*/*.ts', join(ROOT, 'src/*.d.ts')]
      }))
      const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(out, 'tsconfig.json')], { encoding: 'utf8' })
      const output = tsc.stdout + tsc.stderr
      for (const [name, result] of projects) {
        const errors = output.split('\n').filter((l) => l.startsWith(`${name}/`))
        result.compiled = errors.length === 0
        if (errors.length > 0) result.detail += `\n${errors.join('\n')}`
      }
      if (tsc.status !== 0 && [...projects.values()].every((r) => r.compiled === true)) throw new Error(`tsc failed outside the generated projects:\n${output}`)
    }
    return results
  } finally {
    await rm(out, { recursive: true, force: true })
  }
}

export function summary (results: readonly ExampleResult[]): string {
  const count = (f: (r: ExampleResult) => boolean) => results.filter(f).length
  return `${results.length} AsyncAPI 3.x documents: ${count((r) => r.parsed)} parse, ${count((r) => r.generated)} have WebSocket or HTTP channels and generate, ${count((r) => r.compiled === true)} of those compile under tsc --strict`
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = process.argv[2] ?? process.env.ASYNCAPI_EXAMPLES
  if (dir === undefined) {
    process.stderr.write('usage: tsx scripts/asyncapi-examples.ts <dir with the AsyncAPI spec\'s examples> (or ASYNCAPI_EXAMPLES=<dir>)\n')
    process.exit(2)
  }
  const results = await runExamples(dir)
  for (const r of results) process.stdout.write(`${r.parsed ? 'parse' : 'FAIL '} ${r.generated ? 'generate' : '--------'} ${r.compiled === undefined ? '-------' : r.compiled ? 'compile' : 'FAIL   '}  ${r.file} (${r.version})\n${r.detail === '' ? '' : r.detail.replace(/^/gm, '      ') + '\n'}`)
  process.stdout.write(`${summary(results)}\n`)
}
