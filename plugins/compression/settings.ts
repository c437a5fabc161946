/**
 * Compression settings, computed once per route when it is added: the encodings offered,
 * the threshold, which content types compress, and the zlib options (the global ones, or a
 * route's `compress` object merged over them).
 */
import { createRequire } from 'node:module'
import { brotliCompressSync, constants, gzipSync, type BrotliOptions, type ZlibOptions } from 'node:zlib'
import { Type } from '@sinclair/typebox'
import { validate } from '../../src/schema.js'
import { SpikardConfigError } from '../../src/errors.js'
import type { ResolvedCompressionOptions } from './options.js'
import type { Encoding } from './negotiate.js'

export interface Settings {
  /** Offered, in order of preference. */
  encodings: Encoding[]
  /** Buffered bodies smaller than this (bytes) are sent as they are. Streams always compress. */
  threshold: number
  compressible: (contentType: string) => boolean
  brotliOptions: BrotliOptions
  zlibOptions: ZlibOptions
  /** Buffered bodies up to this size (bytes) are compressed synchronously; larger ones on zlib's thread pool. */
  syncThreshold: number
}

/**
 * How large a buffered body is compressed synchronously: at gzip level 6 about 1 ms per
 * 64 KiB on the benchmark machine, the event loop's budget for one response; larger bodies
 * go to zlib's thread pool, still with an exact Content-Length.
 */
const SYNC_THRESHOLD = 64 * 1024

type TypeTest = RegExp | ((contentType: string) => boolean)

// Which types compress, after the default test below: the IANA-based database most of the
// ecosystem (compressible, @fastify/compress) consults.
const mimeDb = createRequire(import.meta.url)('mime-db') as Record<string, { compressible?: boolean } | undefined>
// Text, JSON, XML and their +suffix types, newline-delimited JSON (`ndjson()` streams,
// which mime-db does not list), and octet streams (what @fastify/compress also compresses
// by default).
const DEFAULT_TYPES = /^text\/(?!event-stream)|(?:\+|\/)json(?:;|$)|\/(?:x-)?ndjson(?:;|$)|\/jsonl(?:;|$)|(?:\+|\/)text(?:;|$)|(?:\+|\/)xml(?:;|$)|octet-stream(?:;|$)/u
// Never compressed, whatever a route's customTypes or a future mime-db say: an event
// stream must reach the client event by event.
const EVENT_STREAM = /^\s*text\/event-stream\s*(?:;|$)/i

/** A route's custom test, else the default one, then mime-db; event streams never. */
function compressibleTypes (custom?: TypeTest): (contentType: string) => boolean {
  const test = custom instanceof RegExp ? (type: string) => custom.test(type) : custom ?? ((type: string) => DEFAULT_TYPES.test(type))
  return (type) => !EVENT_STREAM.test(type) &&
    (test(type) || mimeDb[type.split(';', 1)[0].trim().toLowerCase()]?.compressible === true)
}

export function globalSettings ({ encodings, threshold, brotliQuality, gzipLevel }: ResolvedCompressionOptions): Settings {
  if (encodings.length === 0) throw new SpikardConfigError(['compression.encodings: expected at least one of "br" or "gzip", found []'])
  // Flushed after every write, so a stream's chunks reach the client as they are produced;
  // a buffered body is written once and compressed in one go, so it costs nothing there.
  const brotliOptions: BrotliOptions = { params: { [constants.BROTLI_PARAM_QUALITY]: brotliQuality }, flush: constants.BROTLI_OPERATION_FLUSH }
  const zlibOptions: ZlibOptions = { level: gzipLevel, flush: constants.Z_SYNC_FLUSH }
  return {
    encodings: [...encodings],
    threshold,
    compressible: compressibleTypes(),
    brotliOptions,
    zlibOptions,
    syncThreshold: SYNC_THRESHOLD
  }
}

const RouteCompressSchema = Type.Union([
  Type.Literal(false),
  Type.Object({
    threshold: Type.Optional(Type.Integer({ minimum: 0 })),
    encodings: Type.Optional(Type.Array(Type.Union([Type.Literal('br'), Type.Literal('gzip')]))),
    syncThreshold: Type.Optional(Type.Integer({ minimum: 0 })),
    // Checked below: the schema walker knows no RegExp, function or open object.
    customTypes: Type.Optional(Type.Any()),
    brotliOptions: Type.Optional(Type.Any()),
    zlibOptions: Type.Optional(Type.Any())
  }, { additionalProperties: false })
], { expected: 'false or an object' })

/** A route's `compress` object: these settings over the global ones. */
export interface RouteCompress {
  threshold?: number
  encodings?: Encoding[]
  syncThreshold?: number
  customTypes?: TypeTest
  brotliOptions?: BrotliOptions
  zlibOptions?: ZlibOptions
}

const isObject = (v: unknown): boolean => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * A route's `compress` object over the global settings, checked when the route is
 * registered: `{ threshold: 128 }` keeps the configured encodings, gzip level and brotli
 * quality.
 */
export function routeSettings (global: Settings, compress: unknown, route: string): Settings {
  const o = validate(RouteCompressSchema, compress, { path: 'compress', source: route }) as RouteCompress
  const problems: string[] = []
  if (o.encodings?.length === 0) problems.push('compress.encodings: expected at least one of "br" or "gzip", found []')
  if (o.customTypes !== undefined && !(o.customTypes instanceof RegExp) && typeof o.customTypes !== 'function') {
    problems.push('compress.customTypes: expected a RegExp or a function')
  }
  for (const key of ['brotliOptions', 'zlibOptions'] as const) {
    if (o[key] !== undefined && !isObject(o[key])) problems.push(`compress.${key}: expected an object`)
  }
  if (problems.length > 0) throw new SpikardConfigError(problems, route)

  const encodings = o.encodings ?? global.encodings
  const threshold = o.threshold ?? global.threshold
  const brotliOptions = { ...global.brotliOptions, ...o.brotliOptions, params: { ...global.brotliOptions.params, ...o.brotliOptions?.params } }
  const zlibOptions = { ...global.zlibOptions, ...o.zlibOptions }
  // zlib checks its options only when a compressor is made: a level of 42 or params that
  // are not an object would fail every compressed response of the route with a 500. One
  // empty body compressed now makes them fail here, naming the key.
  const trials = [['brotliOptions', () => brotliCompressSync(Buffer.alloc(0), brotliOptions)], ['zlibOptions', () => gzipSync(Buffer.alloc(0), zlibOptions)]] as const
  for (const [key, trial] of trials) {
    if (o[key] === undefined) continue
    try {
      trial()
    } catch (error) {
      problems.push(`compress.${key}: ${(error as Error).message}`)
    }
  }
  if (problems.length > 0) throw new SpikardConfigError(problems, route)
  return {
    encodings,
    threshold,
    compressible: o.customTypes === undefined ? global.compressible : compressibleTypes(o.customTypes),
    brotliOptions,
    zlibOptions,
    syncThreshold: o.syncThreshold ?? global.syncThreshold
  }
}
