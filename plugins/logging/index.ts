import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import { resolveLoggingOptions, type LoggingOptions } from './options.js'
import { loggedTarget, redactHeaders, redactQuery, secretNames } from '../../src/redact.js'
import { routeConfig } from '../../src/fastify-internals.js'
import { ProxyWatch } from './proxies.js'
import { logsOwnAbort, streamedOf } from '../stream/state.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Writes the access line of a request; for responses sent outside the route lifecycle.
     * No reply: the request was aborted before any response (an upgrade the client left).
     * `aborted`: the response closed before it ended (an event stream the client left).
     */
    spikardAccessLog?: (request: FastifyRequest, reply: FastifyReply | undefined, aborted?: boolean) => void
  }
  interface FastifyContextConfig {
    /** `false` keeps this route out of the access log (health probes, for instance). */
    logging?: boolean
  }
}

/**
 * One access line per request. Written by hand rather than with Fastify's request logging,
 * which prints two lines ("incoming request", "request completed"), logs the raw URL with
 * its query string, and cannot be told which headers are secret.
 *
 * A request that never completes (the client went away first, or a streamed response
 * failed half-way) gets its line too, marked `aborted: true`, from Fastify's
 * onRequestAbort hook; it has no reply then, so no status, duration or size. A streamed
 * response (the stream feature) has them: its line, completed or aborted, says the body
 * bytes written and, when spikard cut it, why (`cut`: error, idle-timeout, shutdown); an
 * aborted one gets its line from the stream feature when the response closes, and an open
 * event stream's from the sse feature, with its status and duration.
 */
async function spikardLogging (app: FastifyInstance, options: LoggingOptions): Promise<void> {
  const resolved = resolveLoggingOptions(options)
  const { level, headers } = resolved
  // This feature's own names and the other features' (a custom API-key header or parameter).
  const { headers: hidden, query: hiddenQuery } = secretNames({ ...app.spikard?.options, logging: resolved })

  const proxies = new ProxyWatch(app.log)

  function accessLog (request: FastifyRequest, reply: FastifyReply | undefined, closedEarly = false): void {
    if (proxies.watching) proxies.look(request)
    const config = routeConfig(request)
    if (config.logging === false) return
    const url = loggedTarget(request.url)
    const q = url.indexOf('?')
    const length = reply?.getHeader('content-length')
    const streamed = streamedOf(request)
    if (streamed !== null) streamed.logged = true
    const aborted = reply === undefined || closedEarly || streamed?.aborted === true
    const line: Record<string, unknown> = {
      method: request.method,
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? undefined : redactQuery(url.slice(q + 1), hiddenQuery),
      route: config.url ?? null,
      status: reply?.statusCode,
      durationMs: reply === undefined ? undefined : Math.round(reply.elapsedTime * 1000) / 1000,
      bytes: streamed !== null && (streamed.piped || length === undefined) ? streamed.bytes : length === undefined ? undefined : Number(length),
      aborted: aborted ? true : undefined,
      cut: streamed?.cut,
      remoteAddress: request.ip,
      // Who called, when authenticated: the JWT subject or the API key's name, never the credential.
      caller: request.identity === undefined ? undefined : `${request.identity.scheme}:${request.identity.id}`
    }
    if (headers) line.headers = redactHeaders(request.headers, hidden)
    request.log[level](line, aborted ? 'request aborted' : 'request completed')
  }

  app.decorate('spikardAccessLog', accessLog)
  app.addHook('onResponse', function spikardAccessLog (request, reply, done) {
    accessLog(request, reply)
    done()
  })
  app.addHook('onRequestAbort', function spikardAccessLogAborted (request, done) {
    // A streamed response's line is written when its response closes, with its status and
    // bytes; an open event stream's too (kLogsOwnAbort), with its status.
    if (streamedOf(request) === null && !logsOwnAbort(request)) accessLog(request, undefined)
    done()
  })
}

export default fp(spikardLogging, { name: 'spikard-logging', fastify: '5.x' })
