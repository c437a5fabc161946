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

/**
 * Longer than any IP address's text (45 characters, and a zone id such as `%eth0`): with
 * `trustProxy: true`, or a hop count larger than the proxies in front, `request.ip` is
 * whatever X-Forwarded-For says, up to the 16 KiB of Node's header limit.
 */
const MAX_ADDRESS = 64

/**
 * The count key of an address: IPv4 as is, IPv6 as its /`subnet` network (memoised: parsing
 * IPv6 is not cheap). Text no address can be is counted as its SHA-256 and not memoised: a
 * client choosing a new 16 KiB "address" each time would otherwise keep 16 KiB per count
 * (10,000 counts per limit) and per memo entry.
 */
export function addressKeyer (subnet: number): (address: string) => string {
  const memo = new Map<string, string>()
  return (address) => {
    if (address.length > MAX_ADDRESS) return `#${createHash('sha256').update(address).digest('base64url')}`
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

/** An allow-list entry naming one of spikard's own identities (see identityOf). */
const IDENTITY = /^(?:jwt|apiKey):/

/** Entries meant as an address or a range, valid or not ("10.0.0.256", "10.0.0.0/33"). */
const ADDRESS_LIKE = /^(?:[0-9.]+|[0-9a-f]*:[0-9a-f:.]*)(?:%\w+)?(?:\/\d*)?$/i

/** An IPv4 address as an unsigned 32-bit number, or -1 when it is not one. No allocation. */
export function ipv4Number (address: string): number {
  let value = 0
  let part = -1
  let parts = 0
  for (let i = 0; i <= address.length; i++) {
    const c = i === address.length ? 46 /* . */ : address.charCodeAt(i)
    if (c === 46) {
      if (part < 0 || part > 255 || ++parts > 4) return -1
      value = value * 256 + part
      part = -1
    } else if (c >= 48 && c <= 57) {
      part = part < 0 ? c - 48 : part * 10 + c - 48
    } else {
      return -1
    }
  }
  return parts === 4 ? value : -1
}

/**
 * Callers never limited: addresses and CIDR ranges (whatever keyBy is), and exact key
 * values. IPv4 ranges are compared as numbers (Node's BlockList costs microseconds a
 * check); IPv6 ones go through a BlockList, its answers memoised.
 */
export class AllowList {
  readonly hasAddresses: boolean
  /** Every entry that is not an address: what an identity limit matches (`<scheme>:<id>`). */
  readonly values: Set<string> | undefined
  /**
   * The entries a header or cookie limit matches: all but spikard's own identities
   * (`jwt:...`, `apiKey:...`), which a client could otherwise send as a header or cookie
   * value to leave every header- or cookie-keyed limit.
   */
  readonly plainValues: Set<string> | undefined
  readonly #v4: Array<[from: number, to: number]> = []
  readonly #v6 = new BlockList()
  readonly #v6Memo = new Map<string, boolean>()

  /** Throws a SpikardConfigError naming each entry that looks like an address or a range but is not one. */
  constructor (entries: string[]) {
    const problems: string[] = []
    const values = new Set<string>()
    let v6 = false
    entries.forEach((entry, i) => {
      // An IPv4-mapped entry is its IPv4 address, as client addresses are.
      const parsed = parseAddressEntry(MAPPED_IPV4.test(entry) ? entry.slice(7) : entry)
      if (parsed === undefined) {
        if (ADDRESS_LIKE.test(entry)) problems.push(`rateLimit.allowList[${i}]: expected an IP address, a CIDR range (10.0.0.0/8) or a key, found ${JSON.stringify(entry)}`)
        else values.add(entry)
      } else if (parsed.family === 'ipv4') {
        const bits = parsed.prefix ?? 32
        const size = 2 ** (32 - bits)
        const from = Math.floor(ipv4Number(parsed.address) / size) * size
        this.#v4.push([from, from + size - 1])
      } else {
        v6 = true
        if (parsed.prefix === undefined) this.#v6.addAddress(parsed.address, 'ipv6')
        else this.#v6.addSubnet(parsed.address, parsed.prefix, 'ipv6')
      }
    })
    if (problems.length > 0) throw new SpikardConfigError(problems)
    this.hasAddresses = this.#v4.length > 0 || v6
    this.values = values.size > 0 ? values : undefined
    const plain = [...values].filter((v) => !IDENTITY.test(v))
    this.plainValues = plain.length > 0 ? new Set(plain) : undefined
  }

  /** Whether a client address (IPv4-mapped ones already made IPv4) is on the list. */
  hasAddress (address: string): boolean {
    if (address.indexOf(':') === -1) {
      const n = ipv4Number(address)
      if (n < 0) return false
      for (const [from, to] of this.#v4) if (n >= from && n <= to) return true
      return false
    }
    if (address.length > MAX_ADDRESS) return false
    let allowed = this.#v6Memo.get(address)
    if (allowed === undefined) {
      try {
        allowed = this.#v6.check(address, 'ipv6')
      } catch {
        allowed = false
      }
      if (this.#v6Memo.size >= 4096) this.#v6Memo.clear()
      this.#v6Memo.set(address, allowed)
    }
    return allowed
  }
}
