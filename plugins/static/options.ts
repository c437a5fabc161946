import { Type, type Static } from '@sinclair/typebox'
import { LiteralPath, optionsResolver, type Defaulted } from '../../src/schema.js'
import { isAbsolute, resolve } from 'node:path'
import type { FeatureDefinition } from '../../src/feature.js'

export const StaticMountSchema = Type.Object({
  root: Type.String({ minLength: 1, description: 'Directory served; a relative path is relative to the config file (in code: the working directory). It must exist.' }),
  prefix: Type.Optional(LiteralPath({ default: '/', description: 'URL path the mount answers under.' })),
  index: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)], {
    default: 'index.html',
    expected: 'a file name, or false',
    description: 'File served for a directory; `false` serves none (directories are never listed).'
  })),
  cacheControl: Type.Optional(Type.String({ default: 'public, max-age=0', description: 'The `Cache-Control` header of the files (revalidated with `ETag` and `Last-Modified`).' })),
  immutable: Type.Optional(Type.Boolean({
    default: false,
    description: 'Files whose names carry a content hash (a dot-separated segment of at least 8 hex characters, as in `app.3f9a1c2b.js`) get `Cache-Control: public, max-age=31536000, immutable`.'
  })),
  spa: Type.Optional(Type.Union([Type.String({ minLength: 1 }), Type.Literal(false)], {
    default: false,
    expected: 'a file path relative to the root, or false',
    description: 'Single-page app fallback: this file (e.g. `index.html`) for unknown paths under the prefix when the client accepts HTML.'
  })),
  precompressed: Type.Optional(Type.Boolean({ default: true, description: 'Serve a `.br` or `.gz` sibling of a file when the client accepts that coding. Siblings are looked for only if the root holds any `.br` or `.gz` file at startup.' })),
  followSymlinks: Type.Optional(Type.Boolean({ default: false, description: 'Serve files reached through symlinks that lead outside the root (refused by default).' })),
  auth: Type.Optional(Type.Boolean({ default: false, description: 'Require the app\'s auth for this mount (the `auth` feature must be on). Default: public.' }))
}, { additionalProperties: false })

export const StaticOptionsSchema = Type.Object({
  mounts: Type.Optional(Type.Array(StaticMountSchema, { default: [], description: 'The directories served: `static: [{ root: ./public, prefix: / }]`.' }))
}, { additionalProperties: false })

export type StaticOptions = Static<typeof StaticOptionsSchema>
export type ResolvedStaticOptions = Defaulted<typeof StaticOptionsSchema>
export const resolveStaticOptions = optionsResolver(StaticOptionsSchema, 'static')

export const staticFeature = {
  plugin: async () => await import('./index.js'),
  schema: StaticOptionsSchema,
  summary: 'Static files (@fastify/static) from one or more mounts, with caching headers, ranges and precompressed files, and every traversal refused. Off until mounts are configured.',
  enabledByDefault: false,
  shorthand: 'mounts',
  // A mount's root is relative to the config file.
  besideConfig: (o, baseDir) => ({ ...o, mounts: o.mounts.map((m) => isAbsolute(m.root) ? m : { ...m, root: resolve(baseDir, m.root) }) }),
  settings: (o) => o.mounts.map((m) => `${m.prefix ?? '/'}=${m.root}`).join(' ')
} satisfies FeatureDefinition<typeof StaticOptionsSchema, ResolvedStaticOptions>
