/**
 * The WebSocket bench's reference (issue 18; bench/lib/ws-bench.ts): bare Fastify with
 * @fastify/websocket and nothing else, one route `GET /ws` whose handler does what the
 * spikard server's does with spikard's validation: every text message is parsed as JSON
 * and validated by its `type` (Ajv, the schemas of WS_MESSAGES), an invalid one answered
 * with an error frame (a problem object), an `echo` sent back, a `broadcast` sent to every
 * open socket of the server.
 */
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { Ajv } from 'ajv'
import { HOST, serve } from './common.js'
import { WS_MESSAGES } from './ws-messages.js'

await serve(async () => {
  const ajv = new Ajv()
  const validators = Object.fromEntries(Object.entries(WS_MESSAGES).map(([type, schema]) => [type, ajv.compile(schema)]))
  const app = Fastify()
  await app.register(websocket)
  app.register(async (app) => {
    app.get('/ws', { websocket: true }, (socket) => {
      socket.on('message', (data, isBinary) => {
        let message: { type?: unknown, seq?: number } | undefined
        try {
          message = isBinary ? undefined : JSON.parse(data.toString()) as typeof message
        } catch {}
        const check = typeof message?.type === 'string' ? validators[message.type] : undefined
        if (message === undefined || check === undefined || !check(message)) {
          socket.send(JSON.stringify({ type: 'about:blank', title: 'Invalid message', status: 400, detail: ajv.errorsText(check?.errors) }))
          return
        }
        if (message.type === 'echo') socket.send(JSON.stringify(message))
        else {
          const out = JSON.stringify({ type: 'broadcast', seq: message.seq, at: performance.timeOrigin + performance.now() })
          for (const client of app.websocketServer.clients) client.send(out)
        }
      })
    })
  })
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false } }
})
