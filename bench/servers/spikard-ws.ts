/**
 * The WebSocket bench's spikard server (issue 18; bench/lib/ws-bench.ts): spikard's
 * defaults (the access line to a file, as spikard-defaults writes it), one route `GET /ws`
 * doing what ws-bare.ts's does, with spikard doing the validation: the messages of
 * WS_MESSAGES declared as `config.websocket.receive` (an invalid one gets spikard's error
 * frame), an `echo` sent back with `socket.sendJson`, a `broadcast` sent to every open
 * socket through `app.spikard.rooms.broadcast`.
 */
import type { FastifyInstance } from 'fastify'
import { createServer } from '../../src/index.js'
import { HOST, logPath, serve } from './common.js'
import { WS_MESSAGES } from './ws-messages.js'

await serve(async () => {
  const log = logPath('spikard-ws')
  const app = await createServer({
    server: { logger: { file: log } },
    app: async (app: FastifyInstance) => {
      app.get('/ws', {
        websocket: true,
        config: { websocket: { receive: { oneOf: Object.values(WS_MESSAGES) } } }
      }, (socket) => {
        socket.on('message', (data) => {
          // Only messages that passed the route's schema reach this listener.
          const message = JSON.parse(data.toString()) as { type: 'echo' | 'broadcast', seq: number }
          if (message.type === 'echo') socket.sendJson(message)
          else void app.spikard.rooms.broadcast({ type: 'broadcast', seq: message.seq, at: performance.timeOrigin + performance.now() })
        })
      })
    }
  })
  await app.listen({ host: HOST, port: 0 })
  return { server: app.server, close: () => app.close(), info: { verifiesJwt: false, limitsRate: false, log } }
})
