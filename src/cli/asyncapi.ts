/**
 * `spikard asyncapi`: the AsyncAPI document the server serves at /asyncapi.json (or
 * /asyncapi.yaml), from an app built and made ready but never listening, on stdout or into
 * a file, as `spikard openapi` does for the OpenAPI one. Standard output carries the
 * document and nothing else. Without `asyncapi.servers`, its servers are where
 * `spikard start` would listen (`server.host` and `server.port`; 0.0.0.0 is localhost); none
 * when the port is 0, chosen only when the server listens.
 */
import { printDocument, type DocumentArgs } from './document.js'

export interface AsyncApiArgs extends DocumentArgs { client?: boolean, force?: boolean }

export async function asyncapi (args: AsyncApiArgs, positionals: string[] = []): Promise<number> {
  if (positionals[0] === 'generate') return await generateCommand(args, positionals.slice(1))
  if (positionals.length > 0) throw new Error(`unexpected argument "${positionals[0]}" (spikard asyncapi generate SPEC --out DIR generates code)`)
  for (const flag of ['client', 'force'] as const) if (args[flag] !== undefined) throw new Error(`--${flag} belongs to spikard asyncapi generate`)
  // Loaded here, as the feature's own code: generate needs none of it (see ./index.ts).
  const [{ yaml }, { listeningUrl }] = await Promise.all([import('../../plugins/asyncapi/index.js'), import('../../plugins/asyncapi/servers.js')])
  return await printDocument(args, {
    feature: 'asyncapi',
    title: 'AsyncAPI',
    prepare: (config) => {
      if (config.asyncapi === false || config.asyncapi.servers.length > 0) return
      const { host, port } = config.server
      if (port === 0) {
        process.stderr.write('spikard: server.port is 0 (chosen when the server listens): the document names no server; set asyncapi.servers to name one\n')
        return
      }
      config.asyncapi.servers = [{ url: listeningUrl({ address: host, family: host.includes(':') ? 'IPv6' : 'IPv4', port }) }]
    },
    // What the onReady hook serialized for /asyncapi.json and /asyncapi.yaml.
    render: (app, format) => format === 'json' ? `${JSON.stringify(app.asyncapi(), null, 2)}\n` : yaml(app.asyncapi())
  })
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
