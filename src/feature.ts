/**
 * A feature's key in the root options: `false` (off), `true` (on, its defaults), an options
 * object (on), a scalar shorthand for its one main option (`bodyLimit: 512kb`), or absent:
 * then the feature's default state. Decodes to `false` or the fully defaulted options.
 */
import { Type, type StaticDecode, type TBoolean, type TObject, type TSchema, type TUnion } from '@sinclair/typebox'
import type { FastifyPluginAsync, FastifyServerOptions, RouteOptions } from 'fastify'
import { describe, validate } from './schema.js'
import type { SpikardErrorCode } from './errors.js'

export interface FeatureShape<T extends TObject = TObject, K extends keyof T['properties'] & string = keyof T['properties'] & string> {
  schema: T
  /** One sentence: what the feature does (the README and `spikard check`). */
  summary: string
  /** On when its key is absent. */
  enabledByDefault: boolean
  /** ...except when NODE_ENV is `production`: then on only when its key is set. */
  offInProduction?: boolean
  /** The option a scalar value sets: `bodyLimit: '512kb'` is `bodyLimit: { max: '512kb' }`. */
  shorthand?: K
}

/** The key's accepted values: a boolean, the options object, and the shorthand's value if there is one. */
type FeatureUnion<T extends TObject, K> = [K] extends [keyof T['properties']]
  ? TUnion<[TBoolean, T, T['properties'][K]]>
  : TUnion<[TBoolean, T]>

export function Feature<T extends TObject, K extends keyof T['properties'] & string = never> ({ schema, summary, enabledByDefault, shorthand }: FeatureShape<T, K>) {
  const scalar = shorthand === undefined ? undefined : schema.properties[shorthand] as TSchema
  const branches: TSchema[] = [Type.Boolean(), schema]
  if (scalar !== undefined) branches.push(scalar)
  // Built from a list, typed as the tuple it is: TypeBox infers a union's type from a tuple only.
  const union = Type.Union(branches, {
    description: summary,
    default: enabledByDefault,
    expected: shorthand === undefined
      ? 'true, false or an options object'
      : `true, false, an options object or ${describe(scalar as TSchema)} (its ${shorthand})`
  }) as unknown as FeatureUnion<T, K>
  return Type.Transform(union)
    .Decode((value): false | StaticDecode<T> => {
      if (value === false) return false
      if (value === true) return validate(schema, {})
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as StaticDecode<T>
      // The shorthand was checked (and decoded) by its own schema; the other options take their defaults.
      return { ...(validate(schema, {}) as object), [shorthand as string]: value } as StaticDecode<T>
    })
    .Encode((value) => value as never)
}

/** A per-route column of the route table `spikard check` prints. */
export interface RouteColumn<O> {
  title: string
  /** The route as registered (before any feature changed it), and the feature's options or `false` when it is off. */
  value: (route: RouteOptions, options: O | false) => string
}

/**
 * What a feature tells the root: its key's schema and default state, its key settings in
 * words (the startup line and `spikard check`), its route-table columns, and how to load its
 * plugin. No Fastify runtime import, so the config loader and the CLI can read it cheaply.
 */
export interface FeatureDefinition<T extends TObject = TObject, O = any> extends FeatureShape<T> {
  /**
   * The feature's Fastify plugin, imported when the root registers the feature: a feature
   * that is off loads nothing of its own (@fastify/swagger, fast-jwt, @fastify/static...),
   * which saves start-up time and heap.
   */
  plugin: () => Promise<{ default: FastifyPluginAsync<any> }>
  /** The settings that matter at a glance, e.g. `max=1mb decode=on`. */
  settings: (options: O) => string
  columns?: Array<RouteColumn<O>>
  /** Options the Fastify factory needs from the feature, from the server's creation on (createServer, spikardFastifyOptions). */
  factory?: (options: O) => Partial<FastifyServerOptions> & { http?: Record<string, unknown> }
  /** Options the Fastify factory needs when the feature is off (`shutdown: false`: app.close() still runs the drain hooks, with their budget). */
  factoryWhenOff?: () => Partial<FastifyServerOptions>
  /** Header and query parameter names whose values are secrets: masked in every log line. */
  secrets?: (options: O) => { headers: string[], query: string[] }
  /** Defaults found next to the config file (createServer's `baseDir`), filled in before the plugin is registered. */
  besideConfig?: (options: O, baseDir: string) => O
  /** What the feature adds to the OpenAPI document (plugins/openapi), so no user writes it by hand. */
  openapi?: FeatureOpenApi<O>
}

/** A response header in the OpenAPI document. */
export interface HeaderDoc { description: string, schema: { type: 'string' | 'integer' } }

/** What a feature adds to one route's operation. */
export interface OperationDoc {
  /**
   * Errors the route may answer with, by their code in src/errors.ts (which gives the
   * status, title and meaning); `status` where the feature's options change it, `note` for
   * this route's setting (`limit 1mb`), `headers` for the headers the error carries.
   */
  errors?: Array<{ code: SpikardErrorCode, status?: number, note?: string, headers?: Record<string, HeaderDoc> }>
  /** Headers on every response of the route, its successes and its problems. */
  headers?: Record<string, HeaderDoc>
  /** The route's security requirement: alternatives, `[]` for a public route. */
  security?: Array<Record<string, string[]>>
  /** Sentences for the operation's description (`Rate limit: 100/1m.`). */
  notes?: string[]
}

export interface FeatureOpenApi<O> {
  /** The route as registered, with the features' decisions on its config; undefined when the feature adds nothing. */
  operation?: (route: RouteOptions, options: O) => OperationDoc | undefined
  /** `components.securitySchemes`, and the document's `security` (any one scheme suffices). */
  security?: (options: O) => { schemes: Record<string, Record<string, unknown>>, requirement: Array<Record<string, string[]>> }
}

/** `1mb`, `512kb`, `100b`: the largest binary unit that divides it. */
export function formatBytes (bytes: number): string {
  if (bytes >= 1024 ** 2 && bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}mb`
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024}kb`
  return `${bytes}b`
}

/** `1m`, `30s`, `1h`, `90s`, `1500ms`: the largest unit that divides it. */
export function formatDuration (ms: number): string {
  if (ms === 0) return '0'
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
