/**
 * What `spikard openapi` and `spikard asyncapi` share: the document an app serves, from the
 * app built and made ready but never listening, on stdout or into a file. Standard output
 * carries the document and nothing else: the app's log lines go to stderr (or to
 * server.logger.file), and so does anything the app writes to stdout while it loads or closes.
 */
import { writeFile } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../config/load.js'
import type { ResolvedConfig } from '../config/schema.js'
import { appFailed } from './app-failed.js'

export const DOCUMENT_FORMATS = ['json', 'yaml'] as const
export type DocumentFormat = typeof DOCUMENT_FORMATS[number]

export interface DocumentArgs {
  config?: string
  format?: string
  out?: string
}

/** One document command: the feature that serves it, and how to read it from the ready app. */
export interface DocumentCommand {
  feature: 'openapi' | 'asyncapi'
  /** `OpenAPI`, `AsyncAPI`: for messages. */
  title: string
  /** Adjusts the config before the app is built (the feature is on). */
  prepare?: (config: ResolvedConfig) => void
  render: (app: FastifyInstance, format: DocumentFormat) => string
}

/** `--format`, else yaml when `--out` ends with .yaml or .yml, else json. */
function documentFormat (format: string | undefined, out: string | undefined): DocumentFormat {
  if (format !== undefined) {
    if (!(DOCUMENT_FORMATS as readonly string[]).includes(format)) throw new Error(`--format: expected json or yaml, found "${format}"`)
    return format as DocumentFormat
  }
  return out !== undefined && ['.yaml', '.yml'].includes(extname(out).toLowerCase()) ? 'yaml' : 'json'
}

export async function printDocument (args: DocumentArgs, { feature, title, prepare, render }: DocumentCommand): Promise<number> {
  const format = documentFormat(args.format, args.out)
  if (args.out === '') throw new Error('--out: expected a file path')
  const { file, config, raw } = loadConfig({ file: args.config })
  if (config[feature] === false) throw new Error(featureOff(feature, title, file, raw))
  prepare?.(config)

  // Log lines go to server.logger.file when set, else to stderr; pino-pretty would write
  // to stdout whatever the stream (it runs in its own transport), so it is off here.
  config.server.logger.pretty = false
  const baseDir = dirname(file)
  // Fastify and every feature load only for a config that loaded (see ./index.ts).
  const { createServer } = await import('../server.js')
  const stdout = redirectStdout()
  let document: string
  try {
    let app: FastifyInstance | undefined
    try {
      app = await createServer(config, { baseDir, ...(config.server.logger.file === undefined ? { logStream: process.stderr } : {}) })
      await app.ready()
    } catch (error) {
      // createServer closed the app it could not build; one that failed at ready() is closed here.
      await app?.close().catch(() => {})
      throw new Error(appFailed(error, file, baseDir, config.app))
    }
    try {
      document = render(app, format)
    } finally {
      await app.close()
    }
  } finally {
    stdout.restore()
  }

  if (args.out === undefined) {
    process.stdout.write(document)
    return 0
  }
  const out = resolve(args.out)
  try {
    await writeFile(out, document)
  } catch (error) {
    throw new Error(`--out: cannot write ${out} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  process.stderr.write(`spikard: wrote the ${title} document (${format}) to ${out}\n`)
  return 0
}

/** Why there is no document: the config turns the feature off, or production does. */
function featureOff (feature: string, title: string, file: string, raw: unknown): string {
  const given = raw !== null && typeof raw === 'object' && feature in raw
  return given
    ? `the ${feature} feature is off in ${file} (${feature}: false), so the app has no ${title} document; set ${feature}: true (or its options) to turn it on`
    : `the ${feature} feature is off: NODE_ENV=production turns it off unless the config sets it; add ${feature}: true to ${file} to turn it on`
}

/** Sends whatever is written to process.stdout (a console.log in the routes module) to stderr until restored. */
function redirectStdout (): { restore: () => void } {
  const write = process.stdout.write
  process.stdout.write = process.stderr.write.bind(process.stderr) as typeof process.stdout.write
  return { restore: () => { process.stdout.write = write } }
}
