/**
 * What a count belongs to: the client address (grouped, IPv6 by network), a header or cookie
 * value, or the authenticated identity; and the allow-list. Everything that can be decided
 * at startup is: the per-request work is a few property reads and, at most, one string
 * concatenation (a SHA-256 only for long values or when the counts go to Redis).
 */
import { createHash } from 'node:crypto'
import { createRequire } from 'node:module'
import { BlockList } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import { parseAddressEntry, type KeyBy } from './options.js'

// @fastify/rate-limit is loaded untyped on purpose: importing its types would also load its
// `config.rateLimit` declaration, which types route limits as its own options (no `keyBy`).
const require = createRequire(import.meta.url)
const { normalizeIP } = require('@fastify/rate-limit') as { normalizeIP: (ip: string, ipv6Subnet: number) => string }

const MAPPED_IPV4 = /^::ffff:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i

/**
 * The client address as Fastify resolved it (`request.ip`: the socket peer, or what
 * `trustProxy` lets X-Forwarded-For say), an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what
 * a dual-stack listener reports for IPv4 clients) as its IPv4 address. Empty when the
 * socket is already gone.
 */
export function clientAddress (request: FastifyRequest): string {
  const ip = request.ip as string | undefined
  if (ip === undefined) return ''
  return ip.charCodeAt(0) === 58 /* : */ && MAPPED_IPV4.test(ip) ? ip.slice(7) : ip
}

/** The count key of an address: IPv4 as is, IPv6 as its /`subnet` network (memoised: parsing IPv6 is not cheap). */
export function addressKeyer (subnet: number): (address: string) => string {
  const memo = new Map<string, string>()
  return (address) => {
    if (address.indexOf(':') === -1) return address
    let key = memo.get(address)
    if (key === undefined) {
      try {
        key = normalizeIP(address, subnet)
      } catch {
        key = address.toLowerCase()
      }
      if (memo.size >= 4096) memo.clear()
      memo.set(address, key)
    }
    return key
  }
}

/** The authenticated identity set by the auth feature, as `<scheme>:<id>`; read through a guard, not a type. */
export function identityOf (request: FastifyRequest): string | undefined {
  const identity = (request as { identity?: unknown }).identity
  if (identity === null || typeof identity !== 'object') return undefined
  const { scheme, id } = identity as { scheme?: unknown, id?: unknown }
  return typeof scheme === 'string' && typeof id === 'string' && id !== '' ? `${scheme}:${id}` : undefined
}

/** The value of cookie `name` in a Cookie header (unquoted), without parsing the others. */
export function cookieValue (header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  let start = 0
  while (start < header.length) {
    while (header.charCodeAt(start) === 32) start++
    let end = header.indexOf(';', start)
    if (end === -1) end = header.length
    if (header.startsWith(name, start) && header.charCodeAt(start + name.length) === 61 /* = */) {
      let value = header.slice(start + name.length + 1, end).trim()
      if (value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34) value = value.slice(1, -1)
      return value === '' ? undefined : value
    }
    start = end + 1
  }
  return undefined
}

export interface Keyer {
  /** The key's own value (header, cookie, identity), undefined when the request has none: then the address counts. */
  value: ((request: FastifyRequest) => string | undefined) | undefined
  /** The store key of a value. */
  key: (value: string) => string
}

/**
 * How a keyBy setting reads its value. Values are kept apart from addresses by a prefix; a
 * value over 64 characters, or any value when the counts go to Redis (API keys would
 * otherwise sit in a shared server's key space), is stored as its SHA-256.
 */
export function keyer (keyBy: KeyBy, hashAll: boolean): Keyer {
  if (keyBy === 'ip') return { value: undefined, key: (v) => v }
  const [kind, name] = keyBy === 'identity' ? ['id', ''] : [keyBy.slice(0, keyBy.indexOf(':')), keyBy.slice(keyBy.indexOf(':') + 1)]
  const prefix = `${kind}:`
  const key = (value: string): string =>
    hashAll || value.length > 64 ? `${prefix}#${createHash('sha256').update(value).digest('base64url')}` : prefix + value
  if (kind === 'id') return { value: identityOf, key }
  if (kind === 'header') {
    const header = name.toLowerCase()
    return {
      key,
      value: (request) => {
        const value = request.headers[header]
        return typeof value === 'string' && value !== '' ? value : undefined
      }
    }
  }
  return { key, value: (request) => cookieValue(request.headers.cookie, name) }
}

/** Entries that are meant as an address or a range, valid or not ("10.0.0.256", "10.0.0.0/33"). */
const ADDRESS_LIKE = /^(?:[0-9.]+|[0-9a-f]*:[0-9a-f:.]*)(?:%\w+)?(?:\/\d*)?$/i

/** Callers never limited: addresses and CIDR ranges (whatever keyBy is), and exact key values. */
export class AllowList {
  readonly addresses: BlockList | undefined
  readonly values: Set<string> | undefined

  /** Throws a SpikardConfigError naming each entry that looks like an address or a range but is not one. */
  constructor (entries: string[]) {
    const problems: string[] = []
    const addresses = new BlockList()
    const values = new Set<string>()
    let hasAddresses = false
    entries.forEach((entry, i) => {
      const parsed = parseAddressEntry(entry)
      if (parsed !== undefined) {
        hasAddresses = true
        if (parsed.prefix === undefined) addresses.addAddress(parsed.address, parsed.family)
        else addresses.addSubnet(parsed.address, parsed.prefix, parsed.family)
      } else if (ADDRESS_LIKE.test(entry)) {
        problems.push(`rateLimit.allowList[${i}]: expected an IP address, a CIDR range (10.0.0.0/8) or a key, found ${JSON.stringify(entry)}`)
      } else {
        values.add(entry)
      }
    })
    if (problems.length > 0) throw new SpikardConfigError(problems)
    this.addresses = hasAddresses ? addresses : undefined
    this.values = values.size > 0 ? values : undefined
  }

  hasAddress (address: string): boolean {
    return this.addresses !== undefined && address !== '' && this.addresses.check(address, address.indexOf(':') === -1 ? 'ipv4' : 'ipv6')
  }
}
