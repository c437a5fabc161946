#!/usr/bin/env node
/** The `spikard` command: start a server from a config file, check one, or print its OpenAPI or AsyncAPI document. */
import { parseArgs } from 'node:util'
import { dirname } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { optionSources } from '../config/sources.js'
import { packageVersion } from '../package-json.js'
import { appFailed } from './app-failed.js'
import { exitOnSignals } from '../exit-on-signals.js'
import { DRAIN_BUDGET_MS, lifecycleOf } from '../lifecycle.js'

// Each command imports what it needs when it runs (Fastify and every feature only where an
// app is built, after its config has loaded): --help, --version, a usage error or a config
// that does not load answer without loading them (0.2 s of CPU against 1.1 s for --version).

const HELP = `spikard - a production preset for Fastify

Usage:
  spikard start [--config FILE] [--port N] [--host HOST]   start the server
  spikard check [--config FILE]                            validate the config; show the features, warnings,
                                                           where each option came from and every route
  spikard openapi [--config FILE] [--format json|yaml] [--out FILE]
                                                           print the OpenAPI document the server serves, without
                                                           listening: stdout holds the document alone (logs go
                                                           to stderr); JSON is indented by 2 spaces (the served
                                                           /openapi.json is compact), YAML is /openapi.yaml.
                                                           --out (-o) writes FILE instead; --format defaults to
                                                           yaml when FILE ends with .yaml or .yml, else json
  spikard asyncapi [--config FILE] [--format json|yaml] [--out FILE]
                                                           print the AsyncAPI document (WebSocket and SSE
                                                           routes) the same way; its servers, unless
                                                           asyncapi.servers is set, are server.host:server.port
  spikard asyncapi generate SPEC --out DIR [--client] [--force]
                                                           generate typed WebSocket and SSE routes from an
                                                           AsyncAPI document (3.0; 2.x is converted): DIR gets
                                                           messages.ts, routes.ts and handlers.ts (yours, kept
                                                           unless --force), and client.ts with --client
  spikard --help | --version

Without --config, spikard reads spikard.config.json, .yaml or .yml from the working directory.
`

function parse (argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string', short: 'o' },
        client: { type: 'boolean' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' }
      }
    })
  } catch (error) {
    const code = (error as { code?: string }).code
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new Error(`unknown option "${/'([^']+)'/.exec((error as Error).message)?.[1] ?? ''}" (see spikard --help)`)
    throw error
  }
}

/** The options each command takes (besides --help and --version); any other is refused. */
const COMMANDS = {
  start: ['config', 'port', 'host'],
  check: ['config', 'port', 'host'],
  openapi: ['config', 'format', 'out'],
  asyncapi: ['config', 'format', 'out', 'client', 'force']
} as const
type Command = keyof typeof COMMANDS

function isCommand (name: string | undefined): name is Command {
  return name !== undefined && Object.hasOwn(COMMANDS, name)
}

async function main (argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv)
  if (values.help === true) { process.stdout.write(HELP); return 0 }
  if (values.version === true) { process.stdout.write(`${packageVersion()}\n`); return 0 }
  const [command, ...extra] = positionals
  if (!isCommand(command)) {
    process.stderr.write(`spikard: ${command === undefined ? 'no command given' : `unknown command "${command}"`}\n\n${HELP}`)
    return 1
  }
  const refused = Object.keys(values).find((name) => !(COMMANDS[command] as readonly string[]).includes(name))
  if (refused !== undefined) throw new Error(`unknown option "--${refused}" for spikard ${command} (see spikard --help)`)
  if (command === 'asyncapi') return await (await import('./asyncapi.js')).asyncapi(values, extra)
  if (extra.length > 0) throw new Error(`unexpected argument "${extra[0]}"`)
  if (command === 'openapi') return await (await import('./openapi.js')).openapi(values)

  const { file, config, raw } = (await import('../config/load.js')).loadConfig({ file: values.config })
  const overrides: Record<string, string> = {}
  if (values.port !== undefined) {
    const port = Number(values.port)
    if (!/^\d+$/.test(values.port) || port > 65535) throw new Error(`--port: expected an integer from 0 to 65535, found "${values.port}"`)
    config.server.port = port
    overrides['server.port'] = '--port'
  }
  if (values.host !== undefined) {
    // Checked here: createServer would report it as server.host, a problem of the config file.
    if (values.host === '') throw new Error('--host: expected a host name or address, found ""')
    config.server.host = values.host
    overrides['server.host'] = '--host'
  }

  // check writes its report on stdout: what the app logs while it is built goes to stderr
  // (or to server.logger.file, which check thereby proves it can open).
  // pino-pretty writes to stdout whatever the stream, so check builds the app without it.
  const toStderr = command === 'check' && config.server.logger.file === undefined
  const built = command === 'check' ? { ...config, server: { ...config.server, logger: { ...config.server.logger, pretty: false } } } : config
  const { createServer } = await import('../server.js')
  let app: FastifyInstance | undefined
  try {
    app = await createServer(built, { baseDir: dirname(file), ...(toStderr ? { logStream: process.stderr } : {}) })
    if (command === 'check') await app.ready()
  } catch (error) {
    // createServer closed the app it could not build; one that failed at ready() is closed here.
    await app?.close().catch(() => {})
    throw new Error(appFailed(error, file, dirname(file), config.app))
  }
  if (command === 'check') {
    const sources = (await import('../config/sources.js')).optionSources(raw, config, process.env, { overrides })
    process.stdout.write(`${file}: valid\n\n${await checkReport(app, config.server, sources)}\n`)
    await app.close()
    return 0
  }
  return await start(app, config.server.host, config.server.port, (error) => appFailed(error, file, dirname(file), config.app))
}

/**
 * The body of `spikard check`, in sections a blank line apart: the features (on with their
 * key settings, or off), one `warning:` line per risky choice (none: no section), every
 * option with its value and where it came from, and the route table.
 */
async function checkReport (app: FastifyInstance, server: { trustProxy: unknown, logger: { level: string } }, sources: ReturnType<typeof optionSources>): Promise<string> {
  const [{ features }, { startupSummary }, { formatTable, routeTable }] = await Promise.all([import('../options.js'), import('../summary.js'), import('./routes.js')])
  const { options, routes } = app.spikard
  const { record, warnings } = startupSummary(options, { trustProxy: server.trustProxy, bodyLimit: app.initialConfig.bodyLimit, logLevel: server.logger.level })
  const featureRows = (Object.keys(features) as Array<keyof typeof features>).map((name) => {
    const settings = record.features[name]
    return settings === undefined ? [name, 'off'] : [name, 'on', settings === 'on' ? '' : settings]
  })
  return [
    formatTable([['FEATURE', 'STATE', 'SETTINGS'], ...featureRows]),
    ...[[...warnings, ...sources.warnings].map((w) => `warning: ${w}`).join('\n')].filter((s) => s !== ''),
    formatTable([['OPTION', 'VALUE', 'SOURCE'], ...sources.options.map((o) => [o.path, o.value, o.source])]),
    routeTable(routes, options)
  ].join('\n\n')
}

/** Listens; `failed` words an error of the app as it gets ready. */
async function start (app: FastifyInstance, host: string, port: number, failed: (error: unknown) => string): Promise<number> {
  // Signal handlers go in before listening, so a SIGTERM sent the moment the server
  // reports ready (or during startup) still closes it gracefully. The shutdown feature,
  // when on with `signals`, installed its own when the app was built; otherwise a basic
  // graceful close, as the feature's: SIGTERM or SIGINT closes the app and exits, within
  // shutdown.timeout when the feature is on without `signals`, else within the budget the
  // drain hooks are told without the feature (DRAIN_BUDGET_MS, 30 s).
  // When that time runs out, the drain under way is aborted before the exit, as with the
  // feature's own handler, so the drain hooks name and stop what they leave unfinished (tasks).
  const { shutdown } = app.spikard.options
  const lifecycle = lifecycleOf(app)
  let closing = false
  const uninstall = shutdown !== false && shutdown.signals
    ? undefined
    : exitOnSignals({
      log: app.log,
      timeout: shutdown === false ? DRAIN_BUDGET_MS : shutdown.timeout,
      pending: () => ({ pendingDrainHooks: lifecycle.pendingDrainHooks }),
      expire: () => { lifecycle.abortDrain() },
      close: async () => {
        closing = true
        await app.close()
        return true
      }
    })
  try {
    await app.listen({ host, port })
  } catch (error) {
    uninstall?.()
    await app.close().catch(() => {})
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`port ${port} on ${host} is already in use`)
    // The socket's own failures (EACCES on a low port, EADDRNOTAVAIL) as they are; the rest is the app's, getting ready.
    if ((error as NodeJS.ErrnoException).syscall !== undefined) throw error
    throw new Error(failed(error))
  }
  // A signal arrived while the app was getting ready: the server is closing, not ready.
  if (closing || app.spikard.phase !== 'serving') return -1
  const address = app.server.address()
  const where = typeof address === 'object' && address !== null
    ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
    : String(address)
  process.stdout.write(`spikard listening on ${where}\n`)
  return -1 // keep running
}

/**
 * A command that has finished (check, openapi, asyncapi, or any that failed) exits even
 * where the app left something running that closing it did not stop (an interval, a
 * database connection opened as the routes module loads, with no onClose hook): `spikard
 * check` in CI would otherwise wait forever. The timer keeps nothing alive itself, so a
 * process with nothing left exits at once, as before.
 */
function finish (code: number): void {
  process.exitCode = code
  setTimeout(() => {
    process.stderr.write('spikard: something the app started (a timer, a socket, a connection) was still running after the app closed; exiting anyway\n')
    process.exit(code)
  }, 1000).unref()
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) finish(code)
}, (error: Error) => {
  process.stderr.write(`spikard: ${error.message}\n`)
  finish(1)
})
