// The raw node:http server of raw.ts, as plain JavaScript (small JSON GET only), for
// `bench/run.ts --tsx-check`: is a server run through tsx's loader any slower per request
// than the same code run by plain node? Self-contained on purpose: it imports no .ts file,
// so it also runs under `node` without `--import tsx`.
import { createServer } from 'node:http'

const PAYLOAD = { hello: 'world', id: 42, tags: ['fast', 'safe'], active: true, score: 0.5 }

const server = createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/json' || req.url === '/jwt' || req.url === '/limited')) {
    const body = JSON.stringify(PAYLOAD)
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    return res.end(body)
  }
  const body = JSON.stringify({ error: 'not found' })
  res.writeHead(404, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
  res.end(body)
})

server.listen(0, '127.0.0.1', () => {
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    setTimeout(() => process.exit(1), 5000).unref()
    server.close(() => process.exit(0))
    server.closeAllConnections()
  }
  const { port } = server.address()
  if (process.send) {
    process.on('message', (message) => { if (message?.type === 'stop') stop() })
    process.on('disconnect', stop)
    process.send({ type: 'ready', port, info: { verifiesJwt: false, limitsRate: false } })
  } else {
    console.log(`listening on http://127.0.0.1:${port}`)
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  }
})
