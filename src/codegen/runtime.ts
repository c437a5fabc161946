/**
 * The validator the generated messages.ts carries, as source text: the generated client
 * must run in browsers and on Node without spikard or Ajv, so it checks messages against
 * their JSON Schemas with this small one. It knows the keywords message payloads use
 * (type, const, enum, properties, required, additionalProperties, items, min/max and their
 * exclusive forms, minLength/maxLength, pattern, minItems/maxItems, uniqueItems,
 * allOf/anyOf/oneOf/not, multipleOf, min/maxProperties) and ignores the others (format
 * among them, as spikard's own validation does). The server validates with Ajv, through
 * spikard's WebSocket and SSE features; both read the same schemas.
 */
export const VALIDATOR_SOURCE = `/** A JSON Schema, as the validator below reads it. */
export type JsonSchema = boolean | { readonly [keyword: string]: unknown }

/** What is wrong with \`value\` (empty: it matches), each as \`<JSON pointer>: <reason>\`. */
export function validate (schema: JsonSchema, value: unknown, path = ''): string[] {
  if (schema === true) return []
  if (schema === false) return [\`\${path || '/'}: no value is allowed here\`]
  const s = schema as Record<string, any>
  const at = path || '/'
  const errors: string[] = []
  const kind = typeOf(value)
  if (s.type !== undefined) {
    const types: string[] = Array.isArray(s.type) ? s.type : [s.type]
    if (!types.some((t) => t === kind || (t === 'number' && kind === 'integer'))) return [\`\${at}: must be \${types.join(' or ')}\`]
  }
  if ('const' in s && !equal(s.const, value)) errors.push(\`\${at}: must be \${JSON.stringify(s.const)}\`)
  if (Array.isArray(s.enum) && !s.enum.some((e: unknown) => equal(e, value))) errors.push(\`\${at}: must be one of \${s.enum.map((e: unknown) => JSON.stringify(e)).join(', ')}\`)
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) errors.push(\`\${at}: must be >= \${s.minimum}\`)
    if (typeof s.maximum === 'number' && value > s.maximum) errors.push(\`\${at}: must be <= \${s.maximum}\`)
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) errors.push(\`\${at}: must be > \${s.exclusiveMinimum}\`)
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) errors.push(\`\${at}: must be < \${s.exclusiveMaximum}\`)
    if (typeof s.multipleOf === 'number' && Math.abs(value / s.multipleOf - Math.round(value / s.multipleOf)) > 1e-9) errors.push(\`\${at}: must be a multiple of \${s.multipleOf}\`)
  }
  if (typeof value === 'string') {
    const length = [...value].length
    if (typeof s.minLength === 'number' && length < s.minLength) errors.push(\`\${at}: must have at least \${s.minLength} characters\`)
    if (typeof s.maxLength === 'number' && length > s.maxLength) errors.push(\`\${at}: must have at most \${s.maxLength} characters\`)
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) errors.push(\`\${at}: must match \${s.pattern}\`)
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) errors.push(\`\${at}: must have at least \${s.minItems} items\`)
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) errors.push(\`\${at}: must have at most \${s.maxItems} items\`)
    if (s.uniqueItems === true && value.some((v, i) => value.findIndex((w) => equal(v, w)) !== i)) errors.push(\`\${at}: must have unique items\`)
    if (Array.isArray(s.items)) s.items.forEach((item: JsonSchema, i: number) => { if (i < value.length) errors.push(...validate(item, value[i], \`\${path}/\${i}\`)) })
    else if (s.items !== undefined) value.forEach((v, i) => { errors.push(...validate(s.items as JsonSchema, v, \`\${path}/\${i}\`)) })
  }
  if (kind === 'object') {
    const object = value as Record<string, unknown>
    const keys = Object.keys(object)
    const properties = (s.properties ?? {}) as Record<string, JsonSchema>
    for (const key of Array.isArray(s.required) ? s.required as string[] : []) if (!(key in object)) errors.push(\`\${at}: must have property \${key}\`)
    for (const key of keys) {
      const child = \`\${path}/\${key.replace(/~/g, '~0').replace(/\\//g, '~1')}\`
      if (Object.hasOwn(properties, key)) errors.push(...validate(properties[key], object[key], child))
      else if (s.additionalProperties === false) errors.push(\`\${child}: is not allowed\`)
      else if (s.additionalProperties !== undefined && s.additionalProperties !== true) errors.push(...validate(s.additionalProperties as JsonSchema, object[key], child))
    }
    if (typeof s.minProperties === 'number' && keys.length < s.minProperties) errors.push(\`\${at}: must have at least \${s.minProperties} properties\`)
    if (typeof s.maxProperties === 'number' && keys.length > s.maxProperties) errors.push(\`\${at}: must have at most \${s.maxProperties} properties\`)
  }
  if (Array.isArray(s.allOf)) for (const member of s.allOf) errors.push(...validate(member, value, path))
  if (Array.isArray(s.anyOf) && !s.anyOf.some((member: JsonSchema) => validate(member, value, path).length === 0)) errors.push(\`\${at}: must match a schema in anyOf\`)
  if (Array.isArray(s.oneOf) && s.oneOf.filter((member: JsonSchema) => validate(member, value, path).length === 0).length !== 1) errors.push(\`\${at}: must match exactly one schema in oneOf\`)
  if (s.not !== undefined && validate(s.not as JsonSchema, value, path).length === 0) errors.push(\`\${at}: must not match the schema in not\`)
  return errors
}

function typeOf (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

function equal (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
}

/** The first of \`names\` whose schema \`value\` matches, or undefined. */
export function identify<Name extends string> (schemas: Readonly<Record<Name, JsonSchema>>, names: readonly Name[], value: unknown): Name | undefined {
  return names.find((name) => validate(schemas[name], value).length === 0)
}
`
