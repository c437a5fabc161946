import spikard from './spikard.js'

export default spikard
export { spikard }
export { createServer, spikardFastifyOptions, type CreateServerOptions, type CreateServerConfig } from './server.js'
export { loadAppModule } from './app-module.js'
export { loadConfig, findConfigFile, CONFIG_FILES, type LoadedConfig, type LoadConfigOptions } from './config/load.js'
export { resolveConfig, ConfigSchema, type SpikardConfig, type ResolvedConfig, type ServerOptions } from './config/schema.js'
export { resolveSpikardOptions, SpikardOptionsSchema, type SpikardOptions, type ResolvedSpikardOptions } from './options.js'
export { errors, errorDefinitions, SpikardConfigError, PROBLEM_TYPE_BASE, type SpikardErrorCode } from './errors.js'
export { PROBLEM_CONTENT_TYPE, type Problem, type FieldError } from './problem-details.js'
export { parseDuration, parseSize } from './schema.js'
export { ndjson, NDJSON_CONTENT_TYPE } from '../plugins/stream/ndjson.js'
export { fileStream, type FileStreamOptions } from '../plugins/stream/file.js'
export type { StreamOptions } from '../plugins/stream/options.js'
export { SseEventError } from '../plugins/sse/index.js'
export type { SseEvent } from '../plugins/sse/events.js'
export type { SseOptions } from '../plugins/sse/options.js'
export type { StaticOptions } from '../plugins/static/options.js'
export type { OpenApiOptions } from '../plugins/openapi/options.js'
export type { RequestContextOptions } from '../plugins/request-context/options.js'
export type { RequestIdOptions } from '../plugins/request-id/options.js'
export type { LoggingOptions } from '../plugins/logging/options.js'
export type { CorsOptions } from '../plugins/cors/options.js'
export type { ShutdownOptions } from '../plugins/shutdown/options.js'
export type { TasksOptions } from '../plugins/tasks/options.js'
export type { TaskContext, TaskFunction, TaskSpec, TaskStats, AppTasks, RequestTasks } from '../plugins/tasks/index.js'
export type { DrainHook, DrainContext, LifecyclePhase } from './lifecycle.js'
export type { DurationText, SizeText } from './schema.js'
export type { HealthOptions } from '../plugins/health/options.js'
export type { BodyLimitOptions } from '../plugins/body-limit/options.js'
export type { TimeoutOptions } from '../plugins/timeout/options.js'
export type { CompressionOptions } from '../plugins/compression/options.js'
export type { RouteCompressOptions } from '../plugins/compression/index.js'
export type { AuthOptions } from '../plugins/auth/options.js'
export type { AuthIdentity, AuthUser, JwtClaims, RouteAuth, RouteAuthOptions, AuthScheme, ClaimValue } from '../plugins/auth/index.js'
export type { RateLimitOptions } from '../plugins/rate-limit/options.js'
/** The request context's store (`requestContext: true`): `requestContext.get('requestId')`, `requestContext.get('log')`. */
export { requestContext } from '@fastify/request-context'

// What the features declare on Fastify's types, kept in the published declarations: the
// `sse` and `websocket` route options (@fastify/sse's and @fastify/websocket's, with
// `reply.sse` and the socket handler), `config.rateLimit`, `config.logging` and the other
// route settings. The plugins themselves are loaded only when their feature is on
// (src/spikard.ts), so nothing else in the declarations refers to them.
export type {} from '@fastify/sse'
export type {} from '@fastify/websocket'
export type {} from '../plugins/asyncapi/index.js'
export type {} from '../plugins/logging/index.js'
export type {} from '../plugins/openapi/index.js'
export type {} from '../plugins/rate-limit/index.js'
export type {} from '../plugins/shutdown/index.js'
export type {} from '../plugins/timeout/index.js'
export type {} from '../plugins/websocket/index.js'
