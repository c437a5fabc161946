/**
 * `name`, else `<prefix><Name>` when a prefix is given, else `name2`, `name3`...: the first
 * not in `taken`, which then takes it. For ids and names that must not collide (OpenAPI
 * operation ids, AsyncAPI channel and operation ids, generated identifiers).
 */
export function unique (name: string, taken: Set<string>, prefix = ''): string {
  let candidate = name
  if (taken.has(candidate) && prefix !== '') candidate = `${prefix}${name}`
  for (let n = 2; taken.has(candidate); n++) candidate = `${name}${n}`
  taken.add(candidate)
  return candidate
}
