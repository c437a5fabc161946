/**
 * What a server got: the startup line and `spikard check` both say which features are on
 * (with their key settings, in the words of each feature's definition), which are off,
 * and one warning per risky choice. Pure: the options and a few server facts in, a plain
 * object out, so it is tested without a server and never reads a secret (a feature's
 * `settings()` names its scheme or store, never a key, a secret or a URL).
 */
import { features, type FeatureName, type ResolvedSpikardOptions } from './options.js'
import { formatBytes, formatDuration } from './feature.js'

/** What the options alone do not say: read from the Fastify instance or the config. */
export interface ServerFacts {
  /**
   * `server.trustProxy` as configured. Fastify's `initialConfig` does not keep it, so the
   * caller passes what it gave the factory; absent when unknown (no warning then).
   */
  trustProxy?: unknown
  /** Fastify's own body limit (`initialConfig.bodyLimit`): all that is left when the bodyLimit feature is off. */
  bodyLimit?: number
  /** The server logger's level (`app.log.level`, `server.logger.level`). */
  logLevel?: string
  /** Fastify's `pluginTimeout` (`initialConfig.pluginTimeout`), which bounds `app.close()`'s drain. */
  pluginTimeout?: number
  /** Whether Fastify answers requests itself during `app.close()` (its `return503OnClosing`); absent when unknown. */
  return503OnClosing?: boolean
}

/** The structured record of the startup line: `app.log.info(record, 'spikard features')`. */
export interface FeaturesRecord {
  /** Every feature that is on, in registration order, with its key settings (`on` when it has none). */
  features: Partial<Record<FeatureName, string>>
  /** The features that are off, in registration order. */
  off: FeatureName[]
}

export interface StartupSummary {
  record: FeaturesRecord
  /** One sentence per risky choice, starting with the option that causes it: what is risky, then what to do. */
  warnings: string[]
}

type Auth = Exclude<ResolvedSpikardOptions['auth'], false>

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }

export function startupSummary (options: ResolvedSpikardOptions, facts: ServerFacts = {}): StartupSummary {
  const record: FeaturesRecord = { features: {}, off: [] }
  for (const name of Object.keys(features) as FeatureName[]) {
    const value = options[name]
    if (value === false) record.off.push(name)
    else record.features[name] = (features[name].settings as (o: unknown) => string)(value) || 'on'
  }
  return { record, warnings: warnings(options, facts) }
}

function warnings (o: ResolvedSpikardOptions, facts: ServerFacts): string[] {
  const out: string[] = []
  const warn = (when: boolean, message: string): void => { if (when) out.push(message) }
  const { auth, rateLimit, bodyLimit, timeout, shutdown, logging, compression, openapi, asyncapi } = o

  warn(facts.trustProxy === true,
    'server.trustProxy is true: any client can forge X-Forwarded-For and so choose its own address, in the logs and for rate limits; ' +
    'list your proxies\' addresses (server.trustProxy: 10.0.0.0/8) or give their hop count instead')
  const level = facts.logLevel
  warn(level === 'debug' || level === 'trace',
    `server.logger.level is ${level}: ${level} lines carry request details and cost throughput; use info in production`)
  warn(level === 'silent', 'server.logger.level is silent: errors, warnings and access lines are all dropped; use info in production')
  // pino drops lines below the logger's level: the access line would silently vanish.
  if (logging !== false && level !== undefined && level !== 'silent') {
    warn(LEVELS[logging.level] < LEVELS[level],
      `logging.level is ${logging.level}, below server.logger.level (${level}): no access line is written; set logging.level to ${level} or higher`)
  }

  if (auth !== false) {
    warn(rateLimit === false,
      'rateLimit is off while auth is on: API keys and tokens can be guessed at full speed; turn rate limiting on (rateLimit: 100)')
    // Defaulted<> types both schemes as present; each is absent unless configured.
    const apiKey = auth.apiKey as Auth['apiKey'] | undefined
    const jwt = auth.jwt as Auth['jwt'] | undefined
    if (apiKey !== undefined && apiKey.query !== false) {
      out.push(`auth.apiKey.query is "${apiKey.query}": API keys in URLs end up in browser histories and proxy and server logs; ` +
        `have clients send the ${apiKey.header} header and set auth.apiKey.query to false`)
    }
    if (jwt !== undefined) {
      warn(!jwt.requiredClaims.includes('exp'),
        'auth.jwt.requiredClaims leaves out exp: a token without an expiry stays valid forever once issued; keep exp in the list')
      // A shared identity provider signs tokens for many services: without `aud`, one meant for another is accepted here.
      warn((jwt.jwksUrl !== false || [jwt.publicKey].flat().length > 0) && [jwt.audience].flat().length === 0,
        'auth.jwt.audience is empty: any token your identity provider signs, for any service, is accepted; set auth.jwt.audience to this API\'s audience')
      warn(jwt.leeway > 300_000,
        `auth.jwt.leeway is ${formatDuration(jwt.leeway)}: tokens stay valid that long after they expire; clocks need seconds, not minutes (leeway: 30s)`)
    }
  }

  if (rateLimit !== false) {
    warn(rateLimit.max === 0, 'rateLimit.max is 0: every request is refused with 429 (0 is not "unlimited"); set a limit, or turn rate limiting off')
    const clientChosen = rateLimit.keyBy.startsWith('header:') || rateLimit.keyBy.startsWith('cookie:')
    warn(clientChosen,
      `rateLimit.keyBy is ${rateLimit.keyBy}: the client chooses that value and gets a fresh count by sending a new one each time; ` +
      (auth === false
        ? 'key by ip, unless a gateway in front sets or checks it'
        : 'key by identity (the authenticated caller), unless a gateway in front sets or checks it'))
    warn(rateLimit.keyBy === 'identity' && auth === false,
      'rateLimit.keyBy is identity but auth is off: no request has an identity, so every count is by address; configure auth or key by ip')
  }

  warn(bodyLimit === false,
    `bodyLimit is off: only Fastify's own limit (${facts.bodyLimit === undefined ? 'bodyLimit' : formatBytes(facts.bodyLimit)}) applies, to the bytes received, ` +
    'and compressed bodies are not decoded under a limit; turn it on (bodyLimit: 1mb)')

  warn(timeout === false,
    'timeout is off: a handler that never answers holds its connection and memory until the client gives up, and slow clients get Node\'s lax defaults; ' +
    'turn it on (timeout: 30s)')
  if (timeout !== false) {
    warn(timeout.handler === 0,
      'timeout.handler is 0: a handler that never answers holds its connection and memory until the client gives up; set one (timeout.handler: 30s)')
    warn(timeout.status === 408 && timeout.handler > 0,
      'timeout.status is 408: browsers resend a request answered 408 on a reused connection, so a slow handler with side effects (a POST) runs again; use 503 (the default) or 504')
    for (const key of ['headers', 'request'] as const) {
      warn(timeout[key] === 0,
        `timeout.${key} is 0: a client sending ${key === 'headers' ? 'its headers' : 'its request'} a byte at a time holds a connection open forever (slowloris); ` +
        `set one (timeout.${key}: ${key === 'headers' ? '10s' : '60s'})`)
    }
  }

  if (shutdown !== false && facts.pluginTimeout !== undefined) {
    warn(facts.pluginTimeout > 0 && facts.pluginTimeout < shutdown.timeout,
      `Fastify's pluginTimeout (${formatDuration(facts.pluginTimeout)}) is shorter than shutdown.timeout (${formatDuration(shutdown.timeout)}): ` +
      `app.close() gives up on the drain at ${formatDuration(facts.pluginTimeout)} ("Plugin did not start in time"); create Fastify with the options of spikardFastifyOptions(), or a pluginTimeout above the budget`)
  }
  warn(shutdown !== false && facts.return503OnClosing === true,
    'Fastify\'s return503OnClosing is on: from the moment app.close() begins, Fastify answers every request itself with a plain JSON 503 ' +
    '(liveness included), so shutdown.preCloseDelay serves nothing and the 503s are not problem details; ' +
    'create Fastify with the options of spikardFastifyOptions(), or return503OnClosing: false')
  warn(shutdown === false,
    'shutdown is off: a SIGTERM (every deploy) is not turned into a graceful shutdown: readiness does not turn 503 first and in-flight requests get no time budget; ' +
    'turn it on (shutdown: 30s)')

  // Outside production the docs are on by default and public on purpose; in production only when asked for.
  if (openapi !== false) {
    warn(!openapi.auth && process.env.NODE_ENV === 'production',
      `openapi is on and public in production: every route, parameter and schema of the API is listed for anyone at ${[openapi.json, openapi.yaml, openapi.docs, openapi.redoc].filter((p) => p !== false).join(', ')}; ` +
      'protect it (openapi.auth: true) or turn it off (openapi: false) unless the API is public')
  }

  if (asyncapi !== false) {
    warn(!asyncapi.auth && process.env.NODE_ENV === 'production',
      `asyncapi is on and public in production: every WebSocket and event-stream channel and its messages are listed for anyone at ${[asyncapi.json, asyncapi.yaml, asyncapi.docs].filter((p) => p !== false).join(', ')}; ` +
      'protect it (asyncapi.auth: true) or turn it off (asyncapi: false) unless the API is public')
  }

  if (compression !== false && compression.encodings.includes('br')) {
    warn(compression.brotliQuality >= 10,
      `compression.brotliQuality is ${compression.brotliQuality}: each response costs 60 to 100 times the CPU of quality 4 (some 50 ms for 50 kB of JSON), ` +
      'so a few clients can saturate the server; use 4 to 6 for dynamic responses')
  }
  return out
}
