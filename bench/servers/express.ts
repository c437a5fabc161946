/** Express 5 with its defaults (ETag and X-Powered-By included), express.json() and Ajv for the POST. */
import express from 'express'
import { pipeline } from 'node:stream'
import type { Server } from 'node:http'
import { closeHttpServer, HOST, itemValidator, PAYLOAD, ROUTES, serve, streamSource } from './common.js'

await serve(async () => {
  const validItem = itemValidator()
  const app = express()
  const get = (_req: express.Request, res: express.Response): void => { res.json(PAYLOAD) }
  app.get(ROUTES.json, get)
  app.get(ROUTES.jwt, get)
  app.get(ROUTES.limited, get)
  app.post(ROUTES.post, express.json(), (req, res) => {
    if (!validItem(req.body)) {
      res.status(422).json({ error: 'invalid body' })
      return
    }
    res.json(req.body)
  })
  app.get(ROUTES.stream, (_req, res) => {
    res.type('application/octet-stream')
    pipeline(streamSource(), res, () => {})
  })
  const server = await new Promise<Server>((resolve) => { const s = app.listen(0, HOST, () => resolve(s)) })
  return { server, close: () => closeHttpServer(server), info: { verifiesJwt: false, limitsRate: false } }
})
