import { Type, type Static } from '@sinclair/typebox'
import { LogLevel, optionsResolver, type Defaulted } from '../../src/schema.js'
import type { FeatureDefinition } from '../../src/feature.js'

export const LoggingOptionsSchema = Type.Object({
  level: Type.Optional(LogLevel({
    default: 'info',
    description: 'Log level of the access line.'
  })),
  headers: Type.Optional(Type.Boolean({
    default: false,
    description: 'Include the request headers in the access line (sensitive ones redacted).'
  })),
  redactHeaders: Type.Optional(Type.Array(Type.String(), {
    default: [],
    description: 'Headers to redact besides `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and `x-api-key`.'
  })),
  redactQuery: Type.Optional(Type.Array(Type.String(), {
    default: [],
    description: 'Query parameters to mask besides those named like secrets (`token`, `key`, `api_key`, `password`, `secret`, ...).'
  }))
}, { additionalProperties: false })

export type LoggingOptions = Static<typeof LoggingOptionsSchema>
export type ResolvedLoggingOptions = Defaulted<typeof LoggingOptionsSchema>

export const resolveLoggingOptions = optionsResolver(LoggingOptionsSchema, 'logging')

export const loggingFeature = {
  schema: LoggingOptionsSchema,
  summary: 'One structured JSON access line per request, secrets redacted.',
  enabledByDefault: true,
  shorthand: 'level',
  settings: (o) => `level=${o.level}${o.headers ? ' headers' : ''}`,
  columns: [{ title: 'ACCESS LOG', value: (route, o) => o === false || route.config?.logging === false ? 'off' : 'on' }]
} satisfies FeatureDefinition<typeof LoggingOptionsSchema, ResolvedLoggingOptions>
