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
    description: 'Headers to redact besides `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key` and, in the access line, those named like a secret by the words of `redactQuery` (`x-auth-token`, `x-csrf-token`, `x-goog-api-key`).'
  })),
  redactQuery: Type.Optional(Type.Array(Type.String(), {
    default: [],
    description: 'Query parameters whose values are masked besides those named like secrets, matched case-insensitively on the whole name or its part before a `[` (`email` masks `email` and `email[0]`). ' +
      'Named like a secret: split at camelCase and letter/digit boundaries and at every other character (`-`, `_`, `.`, `[`, `]`...), a part or the parts joined is ' +
      '`token`, `secret`, `password`, `passwd`, `pwd`, `pass`, `passphrase`, `passcode`, `key`, `apikey`, `accesskey`, `secretkey`, `privatekey`, `signature`, `sig`, `credential`, `credentials`, ' +
      '`auth`, `authorization`, `bearer`, `jwt`, `code`, `session`, `sessionid`, `sid`, `otp` or `pin`, or ends with `token`, `secret`, `password`, `passwd` or `passphrase` ' +
      '(so `api_key`, `apiKey`, `X-Amz-Signature`, `key[0]`, `accessToken` are masked; `keyword`, `monkey`, `passenger`, `author` are not).'
  }))
}, { additionalProperties: false })

export type LoggingOptions = Static<typeof LoggingOptionsSchema>
export type ResolvedLoggingOptions = Defaulted<typeof LoggingOptionsSchema>

export const resolveLoggingOptions = optionsResolver(LoggingOptionsSchema, 'logging')

export const loggingFeature = {
  plugin: async () => await import('./index.js'),
  schema: LoggingOptionsSchema,
  summary: 'One structured JSON access line per request, secrets redacted.',
  enabledByDefault: true,
  secrets: (o) => ({ headers: o.redactHeaders, query: o.redactQuery }),
  settings: (o) => `level=${o.level}${o.headers ? ' headers' : ''}`,
  columns: [{ title: 'ACCESS LOG', value: (route, o) => o === false || route.config?.logging === false ? 'off' : 'on' }]
} satisfies FeatureDefinition<typeof LoggingOptionsSchema, ResolvedLoggingOptions>
