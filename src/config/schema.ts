/** The whole config: server settings, the user's routes module and every feature key. */
import { Type, type Static } from '@sinclair/typebox'
import { LogLevel, Size, validate, type Defaulted } from '../schema.js'
import { checkAcrossFeatures, offInProduction, SpikardOptionsSchema } from '../options.js'

export const ServerSchema = Type.Object({
  host: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'Address to listen on. Use `0.0.0.0` to accept connections from other hosts.' })),
  port: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, default: 8000, description: 'Port to listen on (`0` picks a free one).' })),
  trustProxy: Type.Optional(Type.Union([
    Type.Boolean(),
    Type.Integer({ minimum: 0 }),
    Type.String({ minLength: 1 }),
    Type.Array(Type.String({ minLength: 1 }))
  ], {
    default: false,
    expected: 'false, true, a hop count, or proxy addresses/CIDRs (a string or a list)',
    description: 'Which proxies to believe for the client address (`X-Forwarded-For`): Fastify\'s `trustProxy`. Off by default, so forged headers change nothing.'
  })),
  logger: Type.Optional(Type.Object({
    level: Type.Optional(LogLevel({ default: 'info', description: 'Lowest level written.' })),
    pretty: Type.Optional(Type.Boolean({ default: false, description: 'Human-readable lines (pino-pretty) for development instead of JSON.' })),
    file: Type.Optional(Type.String({ minLength: 1, description: 'Append log lines to this file (relative to the config file) instead of stdout. Opened at startup: a file that cannot be opened fails the start.' })),
    buffer: Type.Optional(Size({
      default: 0,
      maximum: 1024 * 1024,
      maximumText: '1mb',
      description: 'Bytes of log lines to gather before a write; a line waits at most 1 s for the buffer to fill. Lines are written in the background either way; `0` gathers the lines of at most 10 ms (up to 64 KiB) into one write. A buffer makes fewer writes when traffic is light; under heavy load it makes more than `0` does once it is smaller than 10 ms of lines. What is not written yet is flushed when the server closes and when the process exits, and lost only if the process is killed (SIGKILL) or dies in native code; a buffer holds more of it.'
    }))
  }, { additionalProperties: false, default: {}, description: 'The server logger (pino, JSON lines on stdout).' }))
}, { additionalProperties: false, default: {} })

export const ConfigSchema = Type.Object({
  server: Type.Optional(ServerSchema),
  app: Type.Optional(Type.String({ minLength: 1, description: 'Path, relative to the config file, of a JS or TS module whose default export is a Fastify plugin with your routes.' })),
  ...SpikardOptionsSchema.properties
}, { additionalProperties: false })

/** A whole config, as written in spikard.config.{json,yaml,yml} or passed to createServer. */
export type SpikardConfig = Static<typeof ConfigSchema>
export type ResolvedConfig = Defaulted<typeof ConfigSchema> & { app?: string }
export type ServerOptions = ResolvedConfig['server']

export function resolveConfig (config: unknown, options: { coerce?: boolean, source?: string } = {}): ResolvedConfig {
  const settings = { source: 'config', ...options }
  return checkAcrossFeatures(offInProduction(config, validate(ConfigSchema, config, settings) as ResolvedConfig), settings.source)
}
