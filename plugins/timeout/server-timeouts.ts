/**
 * Node's server-level timeouts from the timeout options. Checked and derived once, and
 * shared by createServer (the Fastify factory options) and the plugin (`app.server`, so
 * registering spikard on your own instance gets them too). No Fastify runtime import.
 */
import { SpikardConfigError } from '../../src/errors.js'
import { restartConnectionsCheck } from '../../src/fastify-internals.js'
import type { Server } from 'node:http'
import type { ResolvedTimeoutOptions } from './options.js'

export interface ServerTimeouts {
  headersTimeout: number
  requestTimeout: number
  keepAliveTimeout: number
  /** How often Node looks for connections past headersTimeout or requestTimeout. */
  connectionsCheckingInterval: number
}

/**
 * Validates the combination (Node refuses `headersTimeout > requestTimeout` when both are
 * set, and silently turns a timer longer than ~24.8 days into 1 ms) and derives the
 * checking interval: Node enforces headersTimeout and requestTimeout only when its
 * connection check runs (every 30 s by default), so a 10 s headers timeout would really be
 * 10-40 s. A tenth of the shortest of the two keeps enforcement within 10 % of the
 * configured value (10 s -> checked every second), bounded to 25 ms - 30 s.
 */
export function serverTimeouts (options: ResolvedTimeoutOptions, source?: string): ServerTimeouts {
  const { headers, request, keepAlive } = options
  const problems: string[] = []
  if (headers > 0 && request > 0 && headers > request) {
    problems.push(`timeout.headers: must not exceed timeout.request (${request} ms), found ${headers} ms`)
  }
  if (problems.length > 0) throw new SpikardConfigError(problems, source)

  const shortest = Math.min(...[headers, request].filter((ms) => ms > 0))
  const connectionsCheckingInterval = Number.isFinite(shortest) ? Math.min(30_000, Math.max(25, Math.ceil(shortest / 10))) : 30_000
  return { headersTimeout: headers, requestTimeout: request, keepAliveTimeout: keepAlive, connectionsCheckingInterval }
}

/**
 * The Fastify factory options for the timeouts (createServer passes them): the server
 * timeouts only (the handler timeout is the plugin's, not Fastify's `handlerTimeout`).
 * `headersTimeout` and the checking interval are http.createServer options only, hence
 * `http`; Fastify sets `requestTimeout` and `keepAliveTimeout` itself after creating the
 * server, hence both places.
 */
export function timeoutFactoryOptions (options: ResolvedTimeoutOptions, source?: string) {
  const { headersTimeout, requestTimeout, keepAliveTimeout, connectionsCheckingInterval } = serverTimeouts(options, source)
  return {
    requestTimeout,
    keepAliveTimeout,
    http: { headersTimeout, requestTimeout, connectionsCheckingInterval }
  }
}

/**
 * Sets the timeouts on a server, created by spikard or not. Node reads
 * `connectionsCheckingInterval` once, when the server starts listening: on a server already
 * listening the new interval would never apply, and a 10 s headers timeout would still be
 * checked every 30 s (10-40 s in practice), so the check is restarted. (The servers of
 * localhost's other addresses, created in listen(), get them from `app.server`:
 * mirrorServerSetup in src/fastify-internals.ts.)
 */
export function applyServerTimeouts (server: Server, timeouts: ServerTimeouts): void {
  Object.assign(server, timeouts)
  restartConnectionsCheck(server)
}
