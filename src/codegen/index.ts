/**
 * `spikard asyncapi generate`: from an AsyncAPI document to typed WebSocket and SSE routes,
 * their handlers' stubs and (with `client`) a typed client. Writes nothing unless the
 * document is valid and has a channel spikard can serve.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { loadDocument, type Located } from './load.js'
import { buildModel } from './model.js'
import { GENERATED, handlersFile, handlersOf, messagesFile, routesFile } from './emit.js'
import { clientFile } from './client.js'

export interface GenerateOptions { out: string, client?: boolean, force?: boolean }

export interface GenerateResult {
  code: 0 | 1
  /** What to print on stderr, a line each (without the `spikard: ` prefix). */
  lines: string[]
}

const located = (d: Located): string => `${d.path}${d.file === undefined ? '' : ` in ${d.file}`}${d.line === undefined ? '' : ` (line ${d.line})`}: ${d.message}`

export async function generate (spec: string, options: GenerateOptions): Promise<GenerateResult> {
  const lines: string[] = []
  const loaded = await loadDocument(spec)
  if (loaded.converted !== undefined) lines.push(`note: ${loaded.converted}`)
  if (!loaded.ok) {
    lines.push(`${spec}: ${loaded.errors.length} error${loaded.errors.length === 1 ? '' : 's'}; nothing written`)
    for (const e of loaded.errors) lines.push(`error: ${located(e)}`)
    return { code: 1, lines }
  }
  for (const w of loaded.warnings) lines.push(`warning: ${located(w)}`)
  const model = buildModel(loaded.document)
  for (const w of model.warnings) lines.push(`warning: ${w}`)
  if (model.channels.length === 0) {
    lines.push(`${spec}: no WebSocket or HTTP (Server-Sent Events) channel to generate; nothing written`)
    return { code: 1, lines }
  }

  const out = resolve(options.out)
  const files: Array<[string, string, 'generated' | 'user']> = [
    ['messages.ts', messagesFile(model), 'generated'],
    ['routes.ts', routesFile(model), 'generated'],
    ['handlers.ts', handlersFile(model), 'user']
  ]
  if (options.client === true) files.push(['client.ts', clientFile(model), 'generated'])

  // Decide everything before writing anything.
  const plan: Array<[string, string]> = []
  for (const [name, text, owner] of files) {
    const path = join(out, name)
    const existing = await readFile(path, 'utf8').catch(() => undefined)
    if (existing === undefined || options.force === true) { plan.push([path, text]); continue }
    if (owner === 'user') {
      const missing = handlersOf(model).map((h) => h.name).filter((h) => !new RegExp(`export\\s+(async\\s+)?(function|const|let)\\s+${h}\\b`).test(existing))
      lines.push(`kept ${path}: it is yours (--force rewrites it)${missing.length === 0 ? '' : `; it lacks ${missing.join(', ')}, which routes.ts calls`}`)
      continue
    }
    if (!existing.startsWith(GENERATED)) {
      lines.push(`${path} exists and was not generated (no "${GENERATED.slice(3, 40)}..." first line); nothing written (--force overwrites it)`)
      return { code: 1, lines }
    }
    plan.push([path, text])
  }
  await mkdir(out, { recursive: true })
  for (const [path, text] of plan) await writeFile(path, text)
  lines.push(`wrote ${plan.map(([p]) => p).join(', ')} (${model.channels.length} channel${model.channels.length === 1 ? '' : 's'}: ${model.channels.map((c) => `${c.id} ${c.kind === 'sse' ? 'SSE' : 'WebSocket'} ${c.address}`).join(', ')})`)
  return { code: 0, lines }
}
