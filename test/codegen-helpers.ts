/**
 * Helpers for the `spikard asyncapi generate` tests: a generated project's tsconfig (this
 * repo's types: `spikard` is src/index.ts, the packages this repo's node_modules), the
 * repo's tsc run over it, and the comparison of two AsyncAPI documents' contracts.
 */
import { spawn } from 'node:child_process'
import { symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Parser, type AsyncAPIDocumentInterface } from '@asyncapi/parser'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))
type Json = Record<string, any>

/** Makes `dir` (holding generated projects in subfolders, or one at its top) a TypeScript project of its own, compiled with --strict. */
export async function asProject (dir: string): Promise<void> {
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir')
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n')
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      skipLibCheck: true,
      noEmit: true,
      types: ['node'],
      paths: { spikard: [join(ROOT, 'src/index.ts')] }
    },
    include: ['*.ts', '*/*.ts', join(ROOT, 'src/*.d.ts')]
  }, null, 2))
}

/** The repo's tsc on `dir`'s tsconfig: its exit code and output. */
export async function tsc (dir: string): Promise<{ code: number | null, output: string }> {
  const child = spawn(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { output += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { output += c })
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  return { code, output }
}

/** Without the parser's `x-parser-*` annotations. */
function plain (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(Object.entries(value).filter(([k]) => !k.startsWith('x-parser-')).map(([k, v]) => [k, plain(v)]))
}

/**
 * A document's contract, for comparing: each channel (address, messages with their payload
 * schemas) and each operation (action, channel, messages, reply's messages), by id. `only`:
 * the channels to keep (and their operations); `ignore`: message names to leave out (the
 * `problem` frame spikard adds to every WebSocket channel).
 */
export function contract (document: AsyncAPIDocumentInterface, only?: string[], ignore: string[] = []): Json {
  const keep = (id: string) => only === undefined || only.includes(id)
  const names = (list: Array<{ id: () => string }>) => list.map((m) => m.id()).filter((n) => !ignore.includes(n)).sort()
  const channels: Json = {}
  for (const c of document.channels().all()) {
    if (!keep(c.id())) continue
    channels[c.id()] = {
      address: c.address(),
      messages: Object.fromEntries(c.messages().all().filter((m) => !ignore.includes(m.id())).map((m) => [m.id(), plain(m.payload()?.json() ?? {})]).sort(([a], [b]) => String(a).localeCompare(String(b))))
    }
  }
  const operations: Json = {}
  for (const o of document.operations().all()) {
    const channel = o.channels().all()[0]?.id()
    if (channel === undefined || !keep(channel)) continue
    operations[o.id() as string] = { action: o.action(), channel, messages: names(o.messages().all()), reply: o.reply() === undefined ? undefined : names(o.reply()?.messages().all() ?? []) }
  }
  return { channels, operations }
}

export async function parse (text: string, source?: string): Promise<AsyncAPIDocumentInterface> {
  const { document, diagnostics } = await new Parser().parse(text, source === undefined ? {} : { source })
  if (document === undefined) throw new Error(diagnostics.filter((d) => d.severity === 0).map((d) => `${d.path.join('.')}: ${d.message}`).join('\n'))
  return document
}
