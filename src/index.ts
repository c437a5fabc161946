import spikard from './spikard.js'

export default spikard
export { spikard }
export { createServer, spikardFastifyOptions, loadAppModule, type CreateServerOptions, type CreateServerConfig } from './server.js'
export { loadConfig, findConfigFile, CONFIG_FILES, type LoadedConfig, type LoadConfigOptions } from './config/load.js'
export { resolveConfig, ConfigSchema, type SpikardConfig, type ResolvedConfig, type ServerOptions } from './config/schema.js'
export { resolveSpikardOptions, SpikardOptionsSchema, type SpikardOptions, type ResolvedSpikardOptions } from './options.js'
export { errors, errorDefinitions, SpikardConfigError, PROBLEM_TYPE_BASE, type SpikardErrorCode } from './errors.js'
export { PROBLEM_CONTENT_TYPE, type Problem, type FieldError } from './problem-details.js'
export { parseDuration, parseSize } from './schema.js'
export type { RequestIdOptions } from '../plugins/request-id/options.js'
export type { LoggingOptions } from '../plugins/logging/options.js'
export { requestContext } from '@fastify/request-context'
