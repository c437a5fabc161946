/**
 * A body served from memory: the document, the Redoc page and bundle. Each is compressed
 * once, with the codings the compression feature offers, rather than on every request (the
 * compression feature leaves a response that already has a `Content-Encoding` alone); each
 * representation has its own strong ETag, and a matching `If-None-Match` gets a 304.
 */
import { createHash } from 'node:crypto'
import { promisify } from 'node:util'
import { brotliCompress, constants, gzip } from 'node:zlib'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { negotiate, type Encoding } from '../compression/negotiate.js'
import { varyWith } from '../../src/vary.js'

export interface Served {
  type: string
  identity: Representation
  encoded: Partial<Record<Encoding, Representation>>
  /** The codings of `encoded`, in order: one array, so negotiation's answers are kept per document. */
  offered: readonly Encoding[]
}

interface Representation { body: Buffer, etag: string }

const compressors: Record<Encoding, (body: Buffer) => Promise<Buffer>> = {
  br: (body) => promisify(brotliCompress)(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 9, [constants.BROTLI_PARAM_SIZE_HINT]: body.length } }),
  gzip: (body) => promisify(gzip)(body, { level: 9 })
}

function representation (body: Buffer): Representation {
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"` }
}

/** `body` as `type`, and compressed with each of `encodings` (the compression feature's; none when it is off). */
export async function serve (body: string | Buffer, type: string, encodings: readonly Encoding[]): Promise<Served> {
  const identity = representation(Buffer.from(body))
  const encoded: Served['encoded'] = {}
  for (const encoding of encodings) encoded[encoding] = representation(await compressors[encoding](identity.body))
  return { type, identity, encoded, offered: [...encodings] }
}

export function send (request: FastifyRequest, reply: FastifyReply, served: Served): FastifyReply {
  const choice = negotiate(request.headers['accept-encoding'], served.offered)
  const chosen = choice === 'identity' ? served.identity : served.encoded[choice] as Representation
  reply.header('etag', chosen.etag).header('cache-control', 'no-cache')
  if (served.offered.length > 0) reply.header('vary', varyWith(reply.getHeader('vary'), 'Accept-Encoding'))
  // `*` matches any current representation (RFC 9110 13.1.2).
  if (request.headers['if-none-match']?.split(',').some((tag) => tag.trim() === '*' || tag.trim().replace(/^W\//, '') === chosen.etag) === true) return reply.code(304).send()
  if (choice !== 'identity') reply.header('content-encoding', choice)
  return reply.type(served.type).send(chosen.body)
}
