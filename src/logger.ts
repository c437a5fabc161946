/** The pino options of the server logger: level, destination, pretty printing and the redaction of secrets. */
import type { FastifyServerOptions } from 'fastify'
import { DEFAULT_SECRET_HEADERS } from '../plugins/logging/redact.js'
import { apiKeyCarriers } from '../plugins/auth/options.js'
import type { ResolvedConfig } from './config/schema.js'

export function loggerOptions (
  logger: ResolvedConfig['server']['logger'],
  logging: ResolvedConfig['logging'],
  auth: ResolvedConfig['auth'],
  stream: { write: (line: string) => unknown } | undefined
): Exclude<FastifyServerOptions['logger'], boolean | undefined> {
  return {
    level: logger.level,
    redact: {
      paths: [...DEFAULT_SECRET_HEADERS, ...(logging === false ? [] : logging.redactHeaders), ...apiKeyCarriers(auth).headers]
        .map((h) => h.toLowerCase())
        .flatMap((h) => [`req.headers["${h}"]`, `headers["${h}"]`, `res.headers["${h}"]`]),
      censor: '[REDACTED]'
    },
    ...(stream === undefined ? {} : { stream }),
    ...(logger.pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } } } : {})
  }
}
