/**
 * Reading an AsyncAPI document: @asyncapi/parser (every `$ref` resolved, other files
 * included, relative to the document), a 2.x document converted to 3.0 first with
 * @asyncapi/converter. Both are loaded here, on first use, so `spikard start` never pays
 * for them.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import type { AsyncAPIDocumentInterface, Diagnostic } from '@asyncapi/parser'
import { parse as parseYaml } from 'yaml'

/** A problem found in the document: where (a JSON path, and the line from 1 when known) and what. */
export interface Located { path: string, line: number | undefined, message: string, /** Another file than the document's (a `$ref` to it). */ file?: string }

export type Loaded =
  | { ok: true, document: AsyncAPIDocumentInterface, converted: string | undefined, warnings: Located[] }
  | { ok: false, errors: Located[], converted: string | undefined }

export async function loadDocument (file: string): Promise<Loaded> {
  const source = resolve(file)
  let text: string
  try {
    text = await readFile(source, 'utf8')
  } catch (error) {
    throw new Error(`cannot read ${source} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  let raw: unknown
  try {
    raw = parseYaml(text, { prettyErrors: true })
  } catch (error) {
    const line = (error as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line
    return { ok: false, converted: undefined, errors: [{ path: '$', line, message: `not YAML or JSON: ${(error as Error).message.split('\n')[0]}` }] }
  }
  const version = (raw as { asyncapi?: unknown } | null)?.asyncapi
  let converted: string | undefined
  if (typeof version === 'string' && version.startsWith('2.')) {
    const { convert } = await import('@asyncapi/converter')
    // The converter reports what it drops on the console: those lines become warnings.
    const notes: string[] = []
    const log = console.log
    const warn = console.warn
    console.log = console.warn = (...args: unknown[]) => { notes.push(args.map(String).join(' ').replace(/\s*\n\s*-?\s*/g, ' ')) }
    try {
      text = convert(text, '3.0.0') as string
    } catch (error) {
      return { ok: false, converted: undefined, errors: [{ path: '$', line: undefined, message: `cannot convert AsyncAPI ${version} to 3.0: ${(error as Error).message}` }] }
    } finally {
      console.log = log
      console.warn = warn
    }
    converted = [`converted from AsyncAPI ${version} to 3.0.0`, ...notes.map((n) => n.trim()).filter((n) => n !== '')].join('; ')
  }

  const { Parser, DiagnosticSeverity } = await import('@asyncapi/parser')
  const parser = new Parser()
  const { document, diagnostics } = await parser.parse(text, { source, validateOptions: { allowedSeverity: { warning: true, info: true, hint: true } } })
  const located = (d: Diagnostic): Located => ({
    path: jsonPath(d.path),
    // A converted document's lines are the conversion's, not the file's: left out.
    line: converted === undefined && d.range !== undefined ? d.range.start.line + 1 : undefined,
    message: d.message,
    ...(d.source === undefined || resolve(d.source) === source ? {} : { file: d.source })
  })
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error)
  if (errors.length > 0 || document === undefined) {
    return { ok: false, converted, errors: errors.length > 0 ? errors.map(located) : [{ path: '$', line: undefined, message: 'the parser returned no document' }] }
  }
  return { ok: true, document, converted, warnings: diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning && d.code !== 'asyncapi-latest-version').map(located) }
}

/** `['operations', 'readFeed', 'action']` is `$.operations.readFeed.action`; keys that are not identifiers are bracketed. */
function jsonPath (path: ReadonlyArray<string | number>): string {
  return '$' + path.map((p) => typeof p === 'number' ? `[${p}]` : /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(p) ? `.${p}` : `[${JSON.stringify(p)}]`).join('')
}
