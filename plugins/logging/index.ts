import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest, FastifyReply } from 'fastify'
import { resolveLoggingOptions, type LoggingOptions } from './options.js'
import { redactHeaders, redactQuery, secretHeaders } from './redact.js'
import { apiKeyCarriers } from '../auth/options.js'
import { routeConfig } from '../../src/fastify-internals.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Writes the access line of a request; for responses sent outside the route lifecycle. */
    spikardAccessLog?: (request: FastifyRequest, reply: FastifyReply) => void
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
 * onRequestAbort hook; it has no reply then, so no status, duration or size.
 */
async function spikardLogging (app: FastifyInstance, options: LoggingOptions): Promise<void> {
  const { level, headers, redactHeaders: extraHeaders, redactQuery: extraQuery } = resolveLoggingOptions(options)
  // A custom API-key header or query parameter is as secret as the default ones.
  const apiKey = apiKeyCarriers(app.spikard?.options.auth)
  const hidden = secretHeaders([...extraHeaders, ...apiKey.headers])
  const hiddenQuery = new Set([...extraQuery, ...apiKey.query].map((q) => q.toLowerCase()))

  function accessLog (request: FastifyRequest, reply: FastifyReply | undefined): void {
    const config = routeConfig(request)
    if (config.logging === false) return
    const url = request.url
    const q = url.indexOf('?')
    const length = reply?.getHeader('content-length')
    const line: Record<string, unknown> = {
      method: request.method,
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? undefined : redactQuery(url.slice(q + 1), hiddenQuery),
      route: config.url ?? null,
      status: reply?.statusCode,
      durationMs: reply === undefined ? undefined : Math.round(reply.elapsedTime * 1000) / 1000,
      bytes: length === undefined ? undefined : Number(length),
      aborted: reply === undefined ? true : undefined,
      remoteAddress: request.ip,
      // Who called, when authenticated: the JWT subject or the API key's name, never the credential.
      caller: request.identity === undefined ? undefined : `${request.identity.scheme}:${request.identity.id}`
    }
    if (headers) line.headers = redactHeaders(request.headers, hidden)
    request.log[level](line, reply === undefined ? 'request aborted' : 'request completed')
  }

  app.decorate('spikardAccessLog', accessLog)
  app.addHook('onResponse', function spikardAccessLog (request, reply, done) {
    accessLog(request, reply)
    done()
  })
  app.addHook('onRequestAbort', function spikardAccessLogAborted (request, done) {
    accessLog(request, undefined)
    done()
  })
}

export default fp(spikardLogging, { name: 'spikard-logging', fastify: '5.x' })
