/**
 * Route schemas as AsyncAPI payloads. A schema shared with `app.addSchema` is written once,
 * in `components.schemas`, under a name from its `$id` (`http://example.com/item.json` is
 * `item`), and every `$ref` to it (`item#`, `http://example.com/item.json#/properties/id`)
 * points there. No Fastify runtime import.
 */

type Json = Record<string, any>

export interface SchemaComponents {
  /** A copy of `schema` (plain JSON: TypeBox's symbols dropped) whose references to shared schemas point into `components.schemas`. */
  payload: (schema: unknown) => Json
  /** The shared schemas the payloads given so far reference, directly or through one another, by component name. */
  components: () => Record<string, Json>
}

/** `shared`: the app's schemas by `$id`, as `app.getSchemas()` gives them. */
export function schemaComponents (shared: Record<string, unknown>): SchemaComponents {
  const names = componentNames(Object.keys(shared))
  const used = new Map<string, Json>()

  function rewrite (value: unknown, self: string | undefined): unknown {
    if (Array.isArray(value)) return value.map((item) => rewrite(item, self))
    if (value === null || typeof value !== 'object') return value
    const out: Json = {}
    for (const [key, item] of Object.entries(value)) {
      if (key === '$id' && self !== undefined) continue
      const rewritten = key === '$ref' && typeof item === 'string' ? reference(item, self) : rewrite(item, self)
      // A property named `__proto__` (JSON.parse made it an own key) stays one: assigned, it would set the prototype.
      Object.defineProperty(out, key, { value: rewritten, enumerable: true, writable: true, configurable: true })
    }
    return out
  }

  /** A reference to a shared schema, or a local one inside a shared schema, as a pointer into the document. */
  function reference (ref: string, self: string | undefined): string {
    const hash = ref.indexOf('#')
    const id = hash === -1 ? ref : ref.slice(0, hash)
    const pointer = hash === -1 ? '' : ref.slice(hash + 1)
    if (id === '' && self !== undefined) return `#/components/schemas/${self}${pointer}`
    const name = names.get(id)
    if (name === undefined) return ref
    include(id, name)
    return `#/components/schemas/${name}${pointer}`
  }

  function include (id: string, name: string): void {
    if (used.has(name)) return
    used.set(name, {})
    used.set(name, rewrite(JSON.parse(JSON.stringify(shared[id])), name) as Json)
  }

  return {
    payload: (schema) => rewrite(JSON.parse(JSON.stringify(schema)), undefined) as Json,
    components: () => Object.fromEntries([...used].sort(([a], [b]) => a.localeCompare(b)))
  }
}

/**
 * Each `$id`'s component name: its last path segment without `.json` or a trailing `#`,
 * reduced to the characters AsyncAPI allows in a key; `<name>-<n>` when two reduce to the
 * same one (in the order the ids were added).
 */
function componentNames (ids: string[]): Map<string, string> {
  const names = new Map<string, string>()
  const taken = new Set<string>()
  for (const id of ids) {
    const base = id.replace(/#$/, '').replace(/^.*\//, '').replace(/\.json$/, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'schema'
    let name = base
    for (let n = 2; taken.has(name); n++) name = `${base}-${n}`
    taken.add(name)
    names.set(id, name)
    names.set(id.replace(/#$/, ''), name)
  }
  return names
}
