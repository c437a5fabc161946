/**
 * The static feature's helpers with no Fastify runtime import: checking the mounts at
 * startup (roots, index names, spa files, prefixes), the immutable file test, the Accept
 * test of the spa fallback, and the refusals of @fastify/static and @fastify/send turned
 * into spikard's problems.
 */
import { realpathSync, statSync, type Stats } from 'node:fs'
import { opendir, realpath } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { isAbsolute, relative, resolve, sep } from 'node:path'
import type { Static } from '@sinclair/typebox'
import type { StaticMountSchema } from './options.js'
import type { Settings } from '../compression/settings.js'

/** A mount with its defaults filled in (the resolver fills them in inside the list too). */
export type Mount = Required<Static<typeof StaticMountSchema>>

/** A mount as served: its options, the real path of its root, and the spa file's path relative to the root. */
export interface CheckedMount {
  mount: Mount
  /** `static.mounts[0]`, for messages. */
  key: string
  /** The root, absolute (a relative root is relative to the working directory). */
  root: string
  /** The root with every symlink resolved: files served must stay under it unless followSymlinks. */
  realRoot: string
  /** The prefix with one trailing slash: `/assets/`. */
  prefix: string
}

/** `found nothing at /x`, `found a file at /x`: what a path turned out to be, for a config error. */
function found (path: string): { kind: 'directory' | 'file' | 'other', what: string } {
  try {
    const stat = statSync(path)
    if (stat.isDirectory()) return { kind: 'directory', what: `a directory at ${path}` }
    if (stat.isFile()) return { kind: 'file', what: `a file at ${path}` }
    return { kind: 'other', what: `something that is neither a file nor a directory at ${path}` }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    return { kind: 'other', what: code === 'ENOENT' || code === 'ENOTDIR' ? `nothing at ${path}` : `${path}, which cannot be read (${code ?? String(error)})` }
  }
}

/**
 * The mounts, each checked once at startup: its root an existing directory, its index a
 * plain file name, its spa file an existing file under the root, its prefix not another
 * mount's, and auth on when it asks for it. Every problem is listed, each naming its key.
 */
export function checkMounts (mounts: readonly Mount[], authOn: boolean): { checked: CheckedMount[], problems: string[] } {
  const problems: string[] = []
  const checked: CheckedMount[] = []
  const prefixes = new Map<string, string>()
  mounts.forEach((mount, i) => {
    const key = `static.mounts[${i}]`
    const root = resolve(mount.root)
    const prefix = mount.prefix.endsWith('/') ? mount.prefix : `${mount.prefix}/`
    let ok = true
    const rootIs = found(root)
    if (rootIs.kind !== 'directory') {
      problems.push(`${key}.root: expected an existing directory, found ${rootIs.what}`)
      ok = false
    }
    if (mount.index !== false && /[/\\]|^\.\.?$/.test(mount.index)) {
      problems.push(`${key}.index: expected a file name (no "/" or "\\"), found ${JSON.stringify(mount.index)}`)
      ok = false
    }
    // Node refuses such a header value when it is set: every file of the mount would be a 500.
    if (/[^\t\x20-\x7e\x80-\xff]/.test(mount.cacheControl)) {
      problems.push(`${key}.cacheControl: expected a header value (no CR, LF or other control character), found ${JSON.stringify(mount.cacheControl)}`)
      ok = false
    }
    if (mount.spa !== false && rootIs.kind === 'directory') {
      const file = resolve(root, mount.spa)
      const inside = relative(root, file)
      const spaIs = found(file)
      if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
        problems.push(`${key}.spa: expected a file path inside the root, found ${JSON.stringify(mount.spa)}`)
        ok = false
      } else if (spaIs.kind !== 'file') {
        problems.push(`${key}.spa: expected a file under the root, found ${spaIs.what}`)
        ok = false
      }
    }
    const other = prefixes.get(prefix)
    if (other !== undefined) {
      problems.push(`${key}.prefix: ${prefix} is also ${other}.prefix; give each mount a prefix of its own`)
      ok = false
    } else {
      prefixes.set(prefix, key)
    }
    if (mount.auth && !authOn) {
      problems.push(`${key}.auth: true protects the mount with the app's auth, and the auth feature is off; configure auth or remove ${key}.auth`)
      ok = false
    }
    if (ok) checked.push({ mount, key, root, realRoot: realpathSync(root), prefix })
  })
  return { checked, problems }
}

/** Entries looked at before `hasPrecompressed` stops and assumes the root has siblings. */
const SCAN_LIMIT = 50_000

/**
 * Whether a root holds any `.br` or `.gz` file, looked at once, at startup. @fastify/static
 * looks for a sibling per coding the client accepts before it opens the file itself: each
 * miss is a readdir and a stat, most of the cost of a small file (bench/RESULTS.md). A root
 * without precompressed files skips those lookups; one too large to scan (past SCAN_LIMIT
 * entries) keeps them.
 */
export async function hasPrecompressed (root: string): Promise<boolean> {
  let seen = 0
  for await (const entry of await opendir(root, { recursive: true })) {
    if (entry.name.endsWith('.br') || entry.name.endsWith('.gz')) return true
    if (++seen >= SCAN_LIMIT) return true
  }
  return false
}

/** The path of the spa file as a URL under the mount's prefix (`/app/index.html`). */
export function spaUrl (m: CheckedMount): string | undefined {
  if (m.mount.spa === false) return undefined
  const path = relative(m.root, resolve(m.root, m.mount.spa)).split(sep).join('/')
  return m.prefix + path.split('/').map(encodeURIComponent).join('/')
}

/**
 * The table @fastify/send types files with (its documented `mime` export), required from
 * @fastify/static's own location so that it is the very instance serving the files, with
 * the default type @fastify/static gives it.
 */
const sendMime = createRequire(createRequire(import.meta.url).resolve('@fastify/static'))('@fastify/send').mime as {
  getType: (path: string) => string | null
  default_type: string
}

/**
 * Whether the compression feature (its global settings: a mount's routes take no `compress`
 * option) compresses the whole file at `path`, of `size` bytes, for a client that accepts
 * it: the test its onSend hook makes on a static file's 200 (a stream of a known size: its
 * length against the threshold, then its type). Decided from the path, since a 304 carries
 * no Content-Type.
 */
export function compressedWhole (settings: Settings, path: string, size: number): boolean {
  return size >= settings.threshold && settings.compressible(sendMime.getType(path) ?? sendMime.default_type)
}

/** A content-hashed name: a dot-separated segment of at least 8 hex digits (`app.3f9a1c2b.js`, `3f9a1c2b.css`). */
const HASHED = /(?:^|\.)[0-9a-f]{8,}(?:\.|$)/i

export const IMMUTABLE = 'public, max-age=31536000, immutable'

/** Whether the file at `path` (an absolute path; only its name counts) carries a content hash. */
export function isHashed (path: string): boolean {
  return HASHED.test(path.slice(path.lastIndexOf(sep) + 1))
}

/** Whether a file at `path` (a real path) is the root or under it. */
export function isInside (realRoot: string, path: string): boolean {
  return path === realRoot || path.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)
}

/** How many paths a mount remembers as checked (then it starts again). */
const CHECKED_PATHS = 10_000

/**
 * @fastify/send's `onFile` for one mount, called with the `stat` of the file it is about to
 * open (an index file or a .br sibling included). It throws NotAFile for anything but a
 * regular file: @fastify/send opens whatever the stat named, and opening a FIFO for reading
 * waits for a writer, holding one of libuv's four thread-pool threads (a few such requests
 * stall every file and DNS lookup of the process); a socket fails to open (a 500), and a
 * device (/dev/zero, reached with followSymlinks) has no size and sends bytes past the
 * Content-Length it announced. Then, unless followSymlinks, the symlink check.
 */
export function fileCheck (realRoot: string, followSymlinks: boolean): (path: string, stat: Stats) => Promise<void> | undefined {
  const insideRoot = followSymlinks ? undefined : symlinkCheck(realRoot)
  return function onFile (path, stat) {
    if (!stat.isFile()) throw new NotAFile(path)
    return insideRoot?.(path, stat)
  }
}

/**
 * The symlink check of one mount, for @fastify/send's `onFile`: throws OutsideRoot for a
 * file whose real path is not under the root. A path is resolved (`realpath`, a round trip
 * through the thread pool per request, about a tenth of a static file's cost) once, then
 * remembered with the device and inode its stat gave: while the same path still leads to
 * the same file, it was checked. A symlink retargeted, or a directory on the way swapped
 * for one, leads to another inode and is resolved again. Only files that exist reach
 * `onFile`, so the paths remembered are files of the mount.
 */
export function symlinkCheck (realRoot: string): (path: string, stat: Stats) => Promise<void> | undefined {
  const checked = new Map<string, { dev: number, ino: number }>()
  async function resolveAndCheck (path: string, stat: Stats): Promise<void> {
    if (!isInside(realRoot, await realpath(path))) throw new OutsideRoot(path)
    if (checked.size >= CHECKED_PATHS) checked.clear()
    checked.set(path, { dev: stat.dev, ino: stat.ino })
  }
  return function onFile (path, stat) {
    const known = checked.get(path)
    if (known !== undefined && known.ino === stat.ino && known.dev === stat.dev) return undefined
    return resolveAndCheck(path, stat)
  }
}

/**
 * Whether the Accept header names an HTML type (`text/html`, `application/xhtml+xml`)
 * with a weight above zero, as a browser's navigation does. `*\/*` alone does not count:
 * it is what `fetch()` and API clients send, and they want the 404 problem.
 */
export function acceptsHtml (accept: string | undefined): boolean {
  if (accept === undefined) return false
  for (const entry of accept.split(',')) {
    const [type, ...params] = entry.split(';')
    const name = type.trim().toLowerCase()
    if (name !== 'text/html' && name !== 'application/xhtml+xml') continue
    const q = params.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='))
    if (q === undefined || Number(q.slice(2)) > 0) return true
  }
  return false
}

/** A file reached through a symlink that leads out of the root (thrown from @fastify/send's onFile). */
export class OutsideRoot extends Error {
  readonly path: string
  constructor (path: string) {
    super('the file is reached through a symlink that leads outside the root')
    this.path = path
  }
}

/** A suffix range of non-zero length (`-500`) in a byte range set: one the smallest file satisfies. */
const SUFFIX_RANGE = /^\s*-\s*0*[1-9]\d*\s*$/

/**
 * Whether a Range header that @fastify/send found unsatisfiable holds a suffix range of
 * non-zero length: RFC 9110 §14.1.1 counts it satisfiable whatever the file's length, and
 * §14.1.2 makes it the whole file when the file is shorter than the suffix.
 */
export function coversWholeFile (range: string | undefined): boolean {
  if (range === undefined) return false
  const eq = range.indexOf('=')
  if (eq === -1 || range.slice(0, eq).trim().toLowerCase() !== 'bytes') return false
  return range.slice(eq + 1).split(',').some((spec) => SUFFIX_RANGE.test(spec))
}

/** Something that is not a regular file: a FIFO, a socket, a device (thrown from @fastify/send's onFile). */
export class NotAFile extends Error {
  readonly path: string
  constructor (path: string) {
    super('not a regular file')
    this.path = path
  }
}

/** What @fastify/static or @fastify/send answered with instead of a file. */
export type Refusal = { kind: 'refused' } | { kind: 'range', size: number } | undefined

/**
 * Refusals of @fastify/static (FST_STATIC_FORBIDDEN_PATH: `..`, `.` or empty segments,
 * backslashes) and of @fastify/send (http-errors, without a `code`: 400 for a path that does
 * not decode or holds a NUL byte, 403 for `..`, a dotfile or a directory without an index
 * file, 416 for a range past the end): undefined for any other error.
 */
export function refusal (error: unknown): Refusal {
  if (error === null || typeof error !== 'object') return undefined
  const e = error as { code?: unknown, statusCode?: unknown, headers?: Record<string, unknown> }
  if (e.code === 'FST_STATIC_FORBIDDEN_PATH') return { kind: 'refused' }
  if (e.code !== undefined) return undefined
  if (e.statusCode === 400 || e.statusCode === 403) return { kind: 'refused' }
  if (e.statusCode === 416) {
    const size = /\/(\d+)$/.exec(String(e.headers?.['Content-Range'] ?? ''))
    return { kind: 'range', size: size === null ? 0 : Number(size[1]) }
  }
  return undefined
}
