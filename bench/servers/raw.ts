/** The floor: node:http with a switch on the URL, JSON.stringify per response, Ajv for the POST. */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { pipeline } from 'node:stream'
import { closeHttpServer, HOST, itemValidator, PAYLOAD, ROUTES, serve, streamSource } from './common.js'

const validItem = itemValidator()

function json (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
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
      }
    } else if (req.method === 'POST' && req.url === ROUTES.post) {
      return post(req, res)
    }
    json(res, 404, { error: 'not found' })
  })
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve))
  return { server, close: () => closeHttpServer(server), info: { verifiesJwt: false, limitsRate: false } }
})
