import { Type, type Static } from '@sinclair/typebox'
import { Size, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatBytes, type FeatureDefinition } from '../../src/feature.js'

export const CompressionOptionsSchema = Type.Object({
  encodings: Type.Optional(Type.Array(Type.Union([Type.Literal('br'), Type.Literal('gzip')]), {
    default: ['br', 'gzip'],
    description: 'Encodings offered, in order of preference when the client weighs them equally.'
  })),
  threshold: Type.Optional(Size({
    default: 1024,
    description: 'Buffered responses smaller than this are sent uncompressed; streams are always compressed.'
  })),
  brotliQuality: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 11,
    default: 4,
    description: 'Brotli quality, 0-11. zlib\'s default (11) is far too slow for dynamic responses.'
  })),
  gzipLevel: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: 9,
    default: 6,
    description: 'Gzip level, 1-9.'
  }))
}, { additionalProperties: false })

export type CompressionOptions = Static<typeof CompressionOptionsSchema>
export type ResolvedCompressionOptions = Defaulted<typeof CompressionOptionsSchema>
export const resolveCompressionOptions = optionsResolver(CompressionOptionsSchema, 'compression')

export const compressionFeature = {
  plugin: async () => await import('./index.js'),
  schema: CompressionOptionsSchema,
  summary: 'Brotli and gzip response compression, never for event streams or partial content.',
  enabledByDefault: true,
  settings: (o) => `${o.encodings.join(',')} threshold=${formatBytes(o.threshold)}`,
  columns: [{ title: 'COMPRESSION', value: (route, o) => o === false || (route as { compress?: unknown }).compress === false ? 'off' : 'on' }]
} satisfies FeatureDefinition<typeof CompressionOptionsSchema, ResolvedCompressionOptions>
