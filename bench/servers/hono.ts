/** Hono on @hono/node-server with its defaults; Ajv for the POST; the stream as a web stream (Readable.toWeb). */
import { Hono } from 'hono'
import { serve as honoServe } from '@hono/node-server'
import type { Server } from 'node:http'
import { Readable } from 'node:stream'
import { closeHttpServer, HOST, itemValidator, PAYLOAD, ROUTES, serve, streamSource } from './common.js'

await serve(async () => {
  const validItem = itemValidator()
  const app = new Hono()
  app.get(ROUTES.json, (c) => c.json(PAYLOAD))
  app.get(ROUTES.jwt, (c) => c.json(PAYLOAD))
  app.get(ROUTES.limited, (c) => c.json(PAYLOAD))
  app.post(ROUTES.post, async (c) => {
    let body: unknown
    try {
      body = await c.req.json()
    } catch {
      return c.json({ error: 'malformed body' }, 400)
    }
    if (!validItem(body)) return c.json({ error: 'invalid body' }, 422)
    return c.json(body)
  })
  app.get(ROUTES.stream, () => new Response(Readable.toWeb(streamSource()) as ReadableStream, { headers: { 'content-type': 'application/octet-stream' } }))
  const server = await new Promise<Server>((resolve) => {
    const s = honoServe({ fetch: app.fetch, hostname: HOST, port: 0 }, () => resolve(s as Server))
  })
  return { server, close: () => closeHttpServer(server), info: { verifiesJwt: false, limitsRate: false } }
})
