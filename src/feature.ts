/**
 * A feature's key in the root options: `false` (off), `true` (on, its defaults), an options
 * object (on), a scalar shorthand for its one main option (`bodyLimit: 512kb`), or absent:
 * then the feature's default state. Decodes to `false` or the fully defaulted options.
 */
import { Kind, Type, type StaticDecode, type TObject, type TSchema } from '@sinclair/typebox'
import { validate } from './schema.js'

export interface FeatureShape<T extends TObject = TObject> {
  schema: T
  /** One sentence: what the feature does (the README and `spikard check`). */
  summary: string
  /** On when its key is absent. */
  enabledByDefault: boolean
  /** The option a scalar value sets: `bodyLimit: '512kb'` is `bodyLimit: { max: '512kb' }`. */
  shorthand?: keyof T['properties'] & string
}

export function Feature<T extends TObject> ({ schema, summary, enabledByDefault, shorthand }: FeatureShape<T>) {
  const scalar = shorthand === undefined ? undefined : schema.properties[shorthand] as TSchema
  const branches: TSchema[] = [Type.Boolean(), schema]
  if (scalar !== undefined) branches.push(scalar)
  return Type.Transform(Type.Union(branches, {
    description: summary,
    default: enabledByDefault,
    expected: shorthand === undefined
      ? 'true, false or an options object'
      : `true, false, an options object or a ${shorthand} value (${describeScalar(scalar)})`
  }))
    .Decode((value): false | StaticDecode<T> => {
      if (value === false) return false
      if (value === true) return validate(schema, {})
      if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as StaticDecode<T>
      // The shorthand was checked (and decoded) by its own schema; the other options take their defaults.
      return { ...(validate(schema, {}) as object), [shorthand as string]: value } as StaticDecode<T>
    })
    .Encode((value) => value as never)
}

function describeScalar (schema: TSchema | undefined): string {
  if (schema === undefined) return ''
  return typeof schema.expected === 'string' ? schema.expected : String(schema[Kind]).toLowerCase()
}
