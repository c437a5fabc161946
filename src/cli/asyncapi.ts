/**
 * `spikard asyncapi`: the AsyncAPI document the server serves at /asyncapi.json (or
 * /asyncapi.yaml), from an app built and made ready but never listening, on stdout or into
 * a file, as `spikard openapi` does for the OpenAPI one. Standard output carries the
 * document and nothing else. Without `asyncapi.servers`, its servers are where
 * `spikard start` would listen (`server.host` and `server.port`; 0.0.0.0 is localhost).
 */
import { writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../config/load.js'
import { createServer } from '../server.js'
import { yaml } from '../../plugins/asyncapi/index.js'
import { listeningUrl } from '../../plugins/asyncapi/servers.js'
import { appFailed, openapiFormat, redirectStdout, type OpenApiArgs } from './openapi.js'

export interface AsyncApiArgs extends OpenApiArgs { client?: boolean, force?: boolean }

export async function asyncapi (args: AsyncApiArgs, positionals: string[] = []): Promise<number> {
  if (positionals[0] === 'generate') return await generateCommand(args, positionals.slice(1))
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}" (spikard asyncapi generate SPEC --out DIR generates code)`)
  for (const flag of ['client', 'force'] as const) if (args[flag] !== undefined) throw new Error(`--${flag} belongs to spikard asyncapi generate`)
  const format = openapiFormat(args.format, args.out)
  if (args.out === '') throw new Error('--out: expected a file path')
  const { file, config, raw } = loadConfig({ file: args.config })
  if (config.asyncapi === false) throw new Error(featureOff(file, raw))
  if (config.asyncapi.servers.length === 0) {
    const { host, port } = config.server
    config.asyncapi.servers = [{ url: listeningUrl({ address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port }) }]
  }

  // Log lines go to server.logger.file when set, else to stderr (pino-pretty would write to stdout).
  config.server.logger.pretty = false
  const baseDir = dirname(file)
  const stdout = redirectStdout()
  let document: string
  try {
    let app: FastifyInstance | undefined
    try {
      app = await createServer(config, { baseDir, ...(config.server.logger.file === undefined ? { logStream: process.stderr } : {}) })
      await app.ready()
    } catch (error) {
      await app?.close().catch(() => {})
      throw new Error(appFailed(error, file, baseDir))
    }
    try {
      // What the onReady hook serialized for /asyncapi.json and /asyncapi.yaml.
      document = format === 'json' ? `${JSON.stringify(app.asyncapi(), null, 2)}\n` : yaml(app.asyncapi())
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
  process.stderr.write(`spikard: wrote the AsyncAPI document (${format}) to ${out}\n`)
  return 0
}

/** `spikard asyncapi generate SPEC --out DIR [--client] [--force]` (src/codegen/, loaded only here). */
async function generateCommand (args: AsyncApiArgs, positionals: string[]): Promise<number> {
  const [spec, ...extra] = positionals
  if (spec === undefined) throw new Error('asyncapi generate: expected the AsyncAPI document (spikard asyncapi generate SPEC --out DIR)')
  if (extra.length > 0) throw new Error(`unexpected argument "${extra[0]}"`)
  for (const flag of ['config', 'format'] as const) if (args[flag] !== undefined) throw new Error(`--${flag} does not apply to spikard asyncapi generate`)
  if (args.out === undefined || args.out === '') throw new Error('asyncapi generate: --out DIR is required (where the files go)')
  const { generate } = await import('../codegen/index.js')
  const result = await generate(spec, { out: args.out, client: args.client === true, force: args.force === true })
  for (const line of result.lines) process.stderr.write(`spikard: ${line}\n`)
  return result.code
}

/** Why there is no document: the config turns the feature off, or production does. */
function featureOff (file: string, raw: unknown): string {
  const given = raw !== null && typeof raw === 'object' && 'asyncapi' in raw
  return given
    ? `the asyncapi feature is off in ${file} (asyncapi: false), so the app has no AsyncAPI document; set asyncapi: true (or its options) to turn it on`
    : `the asyncapi feature is off: NODE_ENV=production turns it off unless the config sets it; add asyncapi: true to ${file} to turn it on`
}
