/** The floor: node:http with a switch on the URL, JSON.stringify per response, Ajv for the POST. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createReadStream } from 'node:fs'
import { pipeline, type Readable } from 'node:stream'
import { constants, createGzip } from 'node:zlib'
import { closeHttpServer, generatorSource, HOST, itemValidator, PAYLOAD, requestedBytes, ROUTES, serve, streamFile, streamSource } from './common.js'

const validItem = itemValidator()

function json (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/**
 * The reference of the streaming lines (issue 17): the source piped as it is, or through
 * gzip at spikard's default settings (level 6, flushed per chunk) when the request accepts
 * gzip, so the gzip case compares the same work.
 */
function pipeSource (req: IncomingMessage, res: ServerResponse, source: AsyncIterable<Buffer> | Readable): void {
  if (/\bgzip\b/.test(req.headers['accept-encoding'] ?? '')) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' })
    pipeline(source, createGzip({ level: 6, flush: constants.Z_SYNC_FLUSH }), res, () => {})
    return
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream' })
  pipeline(source, res, () => {})
}

function post (req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      return json(res, 400, { error: 'malformed body' })
    }
    if (!validItem(body)) return json(res, 422, { error: 'invalid body' })
    json(res, 200, body)
  })
}

await serve(async () => {
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      switch (req.url) {
        case ROUTES.json:
        case ROUTES.jwt:
        case ROUTES.limited:
          return json(res, 200, PAYLOAD)
        case ROUTES.stream:
          res.writeHead(200, { 'content-type': 'application/octet-stream' })
          pipeline(streamSource(), res, () => {})
          return
        case ROUTES.streamFile:
          return pipeSource(req, res, createReadStream(streamFile()))
      }
      if (req.url?.startsWith(ROUTES.streamGen) === true) return pipeSource(req, res, generatorSource(requestedBytes(req.url)))
    } else if (req.method === 'POST' && req.url === ROUTES.post) {
      return post(req, res)
    }
    json(res, 404, { error: 'not found' })
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  return { server, close: () => closeHttpServer(server), info: { verifiesJwt: false, limitsRate: false } }
})
