/**
 * Request body decoding: the `Content-Encoding` values spikard accepts, and the stream a
 * preParsing hook hands Fastify in place of an encoded body. Fastify reads that stream
 * with its own limit counting, so the limit holds on the decoded bytes.
 */
import type { ServerResponse } from 'node:http'
import { Readable, Transform } from 'node:stream'
import zlib from 'node:zlib'
import { errors } from '../../src/errors.js'

export interface Coding {
  /** Makes the zlib stream that undoes the coding. */
  create: () => Transform
  /** Ends "The request body is not valid ..." when the body does not decode. */
  name: string
}

// Looked up on each use rather than captured, so a test can watch the streams made.
const gzip: Coding = { create: () => zlib.createGunzip(), name: 'gzip' }
const deflate: Coding = { create: () => zlib.createInflate(), name: 'deflate' }
const brotli: Coding = { create: () => zlib.createBrotliDecompress(), name: 'Brotli' }

/**
 * Accepted `Content-Encoding` values (lower-cased, trimmed): a Coding to undo, or `null`
 * for none. A list of codings ("gzip, br") is no key, so it is unsupported like an
 * unknown one. "x-gzip" is gzip (RFC 9110 §8.4.1.3); "deflate" is the zlib format.
 */
export function acceptedCodings (decode: boolean): Map<string, Coding | null> {
  const none: Array<[string, Coding | null]> = [['identity', null], ['', null]]
  return new Map(decode ? [...none, ['gzip', gzip], ['x-gzip', gzip], ['deflate', deflate], ['br', brotli]] : none)
}

/**
 * The decoded body. No zlib stream is made and no byte is read until Fastify reads: a
 * body refused on its Content-Length, or never parsed (GET), is left to Node, which
 * drains it so the connection can carry the next request.
 *
 * It counts the decoded bytes against the route's limit itself: Fastify counts only for its
 * own parsers and those added with `parseAs`; a stream parser of the user's (a CSV or
 * upload parser) would otherwise be handed a gzip bomb inflated without end. And the bytes
 * sent: Fastify compares them with the limit only as decoded bytes arrive, so encoded
 * padding that decodes to nothing (empty deflate blocks, five bytes each) could follow the
 * last decoded byte without end, where a plain chunked body stops at the limit and a
 * Content-Length over it is refused from the headers.
 */
export class DecodedBody extends Readable {
  /** Encoded bytes read so far; Fastify checks them against Content-Length and the limit. */
  receivedEncodedLength = 0
  readonly #encoded: Readable
  readonly #coding: Coding
  readonly #limit: number
  #decoded = 0
  #zlib: Transform | undefined

  constructor (encoded: Readable, response: ServerResponse, coding: Coding, limit: number) {
    super()
    this.#encoded = encoded
    this.#coding = coding
    this.#limit = limit
    // When the limit trips Fastify stops listening but leaves the stream flowing, and zlib
    // would inflate the rest of a bomb into the void. Whatever ends the exchange (an
    // error response, the client leaving, the body fully read) releases zlib here.
    response.once('close', () => this.destroy())
  }

  override _read (): void {
    if (this.#zlib !== undefined) {
      this.#zlib.resume()
      return
    }
    const inflate = this.#zlib = this.#coding.create()
    inflate.on('data', (chunk: Buffer) => {
      this.#decoded += chunk.length
      if (this.#decoded > this.#limit) return this.destroy(new errors.SPK_ERR_BODY_TOO_LARGE(this.#limit))
      if (!this.push(chunk)) inflate.pause()
    })
    inflate.on('end', () => this.push(null))
    inflate.on('error', () => this.destroy(new errors.SPK_ERR_MALFORMED_BODY(this.#coding.name)))
    this.#encoded.on('data', this.#count)
    this.#encoded.on('error', this.#fail)
    this.#encoded.pipe(inflate)
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#zlib !== undefined) {
      this.#encoded.unpipe(this.#zlib)
      this.#encoded.off('data', this.#count)
      this.#zlib.destroy()
    }
    callback(error)
  }

  readonly #count = (chunk: Buffer): void => {
    this.receivedEncodedLength += chunk.length
    if (this.receivedEncodedLength > this.#limit) this.destroy(new errors.SPK_ERR_BODY_TOO_LARGE(this.#limit))
  }

  /** The client went away mid-body: Fastify sees the same error it would without decoding. */
  readonly #fail = (error: Error): void => { this.destroy(error) }
}

/**
 * A plain body counted against `limit` as Fastify reads it: past the limit it fails with
 * SPK_ERR_BODY_TOO_LARGE, as Fastify's own count does. For the routes whose Fastify limit
 * is larger than spikard's (see index.ts); an encoded body is counted by DecodedBody.
 */
export class LimitedBody extends Transform {
  #received = 0
  readonly #source: Readable

  constructor (source: Readable, readonly limit: number) {
    super()
    this.#source = source
    source.on('error', (error) => this.destroy(error))
    source.pipe(this)
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.#received += chunk.length
    if (this.#received > this.limit) {
      this.#source.unpipe(this)
      return callback(new errors.SPK_ERR_BODY_TOO_LARGE(this.limit))
    }
    callback(null, chunk)
  }
}
