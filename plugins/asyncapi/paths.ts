/**
 * A route's path as an AsyncAPI channel: its address (`/chat/:room` is `/chat/{room}`), its
 * parameters and its id (`chatByRoom`). No Fastify runtime import.
 */

type Json = Record<string, any>

/** Fastify's wildcard `*` has no name AsyncAPI accepts: it is `{wildcard}` in the address. */
const WILDCARD = 'wildcard'

/** A path segment's parameters: `:id`, `:id(^\\d+$)`, several in one segment (`:from-:to`), `*`. */
const PARAM = /:([A-Za-z0-9_]+)(\([^)]*\))?|\*/g

/**
 * The address and parameters of a route's path. Each parameter takes what AsyncAPI 3 lets
 * it say from the route's `schema.params`: its description, enum, default and examples
 * (as strings: an address is text); a regular expression goes into its description.
 */
export function channelAddress (url: string, params: unknown): { address: string, parameters: Json } {
  const properties = ((params as Json | undefined)?.properties ?? {}) as Record<string, Json>
  const parameters: Json = {}
  const address = url.replace(PARAM, (match: string, name: string | undefined, regex: string | undefined) => {
    const key = name ?? WILDCARD
    const schema = properties[name ?? '*'] ?? {}
    const text = (values: unknown) => Array.isArray(values) ? values.map(String) : undefined
    const description = [
      schema.description,
      name === undefined ? 'The rest of the path.' : undefined,
      regex === undefined ? undefined : `Matches \`${regex.slice(1, -1)}\`.`
    ].filter((s) => typeof s === 'string' && s !== '').join(' ')
    const enumeration = text(schema.enum) ?? (schema.const === undefined ? undefined : [String(schema.const)])
    const examples = text(schema.examples)
    parameters[key] = {
      ...(description === '' ? {} : { description }),
      ...(enumeration === undefined ? {} : { enum: enumeration }),
      ...(schema.default === undefined ? {} : { default: String(schema.default) }),
      ...(examples === undefined ? {} : { examples })
    }
    return `{${key}}`
  })
  return { address, parameters }
}

/** `/chat/:room/history` is `chatByRoomHistory`, `/` is `root`: stable, from the path. */
export function channelId (url: string): string {
  const words = url.split('/').filter((s) => s !== '').flatMap((segment) => {
    const param = segment.startsWith(':') || segment === '*'
    const name = segment === '*' ? WILDCARD : segment.replace(/\([^)]*\)/g, '')
    const parts = name.split(/[^A-Za-z0-9]+/).filter((p) => p !== '')
    return param ? ['by', ...parts] : parts
  })
  if (words.length === 0) return 'root'
  return words.map((w, i) => i === 0 ? w[0].toLowerCase() + w.slice(1) : w[0].toUpperCase() + w.slice(1)).join('')
}
