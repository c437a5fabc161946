/**
 * A message payload's JSON Schema as a TypeScript type: what a handler and the client see.
 * Covers what payloads use (type, const, enum, properties and required, items, additional
 * properties, allOf/anyOf/oneOf, nullable types); anything else is `unknown`, which is
 * never wrong, only less precise. The schema stays the contract: it is what gets validated.
 */
import { comment, key } from './names.js'

type Json = Record<string, any>

export function tsType (schema: unknown, indent = ''): string {
  if (schema === true || schema === undefined) return 'unknown'
  if (schema === false) return 'never'
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return 'unknown'
  const s = schema as Json
  if ('const' in s) return literal(s.const)
  if (Array.isArray(s.enum)) return s.enum.length === 0 ? 'never' : s.enum.map(literal).join(' | ')
  const parts: string[] = []
  const union = s.oneOf ?? s.anyOf
  if (Array.isArray(union) && union.length > 0) parts.push(`(${union.map((m: unknown) => tsType(m, indent)).join(' | ')})`)
  if (Array.isArray(s.allOf) && s.allOf.length > 0) parts.push(...s.allOf.map((m: unknown) => `(${tsType(m, indent)})`))
  const own = ownType(s, indent)
  if (own !== undefined) parts.push(own)
  return parts.length === 0 ? 'unknown' : parts.join(' & ')
}

/** The type the schema's own keywords say (type, properties, items), or undefined when they say nothing. */
function ownType (s: Json, indent: string): string | undefined {
  const types: string[] | undefined = typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? s.type : undefined
  const objectish = s.properties !== undefined || s.additionalProperties !== undefined || s.required !== undefined
  if (types === undefined) return objectish ? objectType(s, indent) : s.items !== undefined ? arrayType(s, indent) : undefined
  const each = types.map((t) => {
    switch (t) {
      case 'string': return 'string'
      case 'number': case 'integer': return 'number'
      case 'boolean': return 'boolean'
      case 'null': return 'null'
      case 'array': return arrayType(s, indent)
      case 'object': return objectType(s, indent)
      default: return 'unknown'
    }
  })
  return each.length === 1 ? each[0] : `(${each.join(' | ')})`
}

function arrayType (s: Json, indent: string): string {
  if (Array.isArray(s.items)) return `[${s.items.map((i: unknown) => tsType(i, indent)).join(', ')}, ...unknown[]]`
  return `Array<${tsType(s.items, indent)}>`
}

function objectType (s: Json, indent: string): string {
  const properties = (s.properties ?? {}) as Json
  const required = new Set<string>(Array.isArray(s.required) ? s.required : [])
  const inner = `${indent}  `
  const lines = Object.entries(properties).map(([name, schema]) => {
    const description = (schema as Json)?.description
    const doc = comment(typeof description === 'string' ? description : undefined, inner)
    return `${doc}${inner}${key(name)}${required.has(name) ? '' : '?'}: ${tsType(schema, inner)}`
  })
  // Required keys the schema gives no schema for are still there.
  for (const name of required) if (!(name in properties)) lines.push(`${inner}${key(name)}: unknown`)
  const extra = s.additionalProperties
  if (lines.length === 0) return extra === false ? 'Record<string, never>' : `Record<string, ${extra === undefined || extra === true ? 'unknown' : tsType(extra, indent)}>`
  const body = `{\n${lines.join('\n')}\n${indent}}`
  // An index signature would have to admit every property's type: other keys are left open as unknown.
  return extra === false || extra === undefined ? body : `${body} & Record<string, unknown>`
}

function literal (value: unknown): string {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value)
  return 'unknown'
}
