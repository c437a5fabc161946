/**
 * The one risky choice only requests can reveal: proxy headers arriving while Fastify
 * does not believe them (`server.trustProxy` unset, or not trusting the peer: a hop count
 * trusts no one since Fastify 5.12). Ignoring them is right (a forged X-Forwarded-For
 * changes nothing), but behind a real proxy every client then has the proxy's address in
 * the access log and shares one rate-limit count, which is seldom what was meant. Warned
 * once; requests are looked at until the first one with a proxy header.
 */
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'

export class ProxyWatch {
  watching = true

  constructor (private readonly log: FastifyBaseLogger) {}

  look (request: FastifyRequest): void {
    const headers = request.headers
    const header = headers['x-forwarded-for'] !== undefined
      ? 'x-forwarded-for'
      : headers.forwarded !== undefined ? 'forwarded' : headers['x-real-ip'] !== undefined ? 'x-real-ip' : undefined
    if (header === undefined) return
    this.watching = false
    const peer = request.socket?.remoteAddress
    if (request.ip !== peer) return
    // Fastify defines `ips` only when trustProxy is set.
    const why = 'ips' in request
      ? 'server.trustProxy does not trust the peer they come from (a hop count trusts no proxy since Fastify 5.12: list the proxies\' addresses or CIDRs)'
      : 'server.trustProxy is not set'
    this.log.warn({ header, remoteAddress: peer },
      `requests carry ${header} but ${why}, so every client behind the proxy has the proxy's address, in the access log and for rate limits ` +
      '(all of them in one count) (logged once)')
  }
}
