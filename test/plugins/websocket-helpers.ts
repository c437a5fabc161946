/** WebSocket test helpers: a listening app, a real `ws` client with a bounded message queue, refused upgrades read raw. */
import net from 'node:net'
import type { TestContext } from 'node:test'
import type { FastifyPluginAsync } from 'fastify'
import WebSocket, { type ClientOptions } from 'ws'
import type { CreateServerConfig } from '../../src/server.js'
import { build, listen, withTimeout } from '../helpers.js'

export const KEY = 'k-websocket-test-key-0123456789abcdef'
export const TYPE = 'https://spikard.dev/errors/'

/** A listening app (logs at info, parsed), closed when the test ends. */
export async function serve (t: TestContext, config: CreateServerConfig, routes: FastifyPluginAsync) {
  const built = await build({ server: { logger: { level: 'info' } }, ...config }, routes)
  t.after(() => built.app.close())
  const { url, port } = await listen(built.app)
  return { ...built, ws: url.replace('http', 'ws'), port }
}

export interface Client {
  socket: WebSocket
  /** The 101's headers. */
  headers: Record<string, string | string[] | undefined>
  /** The next message (text as a string, binary as a Buffer), within 2 s. */
  next: () => Promise<string | Buffer>
  /** The next message parsed as JSON. */
  json: () => Promise<unknown>
  /** Resolves with the close code and reason; rejects 3 s after it is first read (not after the connect). */
  closed: Promise<{ code: number, reason: string }>
}

/** Opens a real ws client; rejects within 2 s. */
export async function connect (t: TestContext, url: string, protocols?: string[], options: ClientOptions = {}): Promise<Client> {
  const socket = new WebSocket(url, protocols, options)
  t.after(() => socket.terminate())
  const queue: Array<string | Buffer> = []
  const waiters: Array<(m: string | Buffer) => void> = []
  socket.on('message', (data: Buffer, isBinary) => {
    const m = isBinary ? data : data.toString()
    const w = waiters.shift()
    if (w !== undefined) w(m)
    else queue.push(m)
  })
  const closed = new Promise<{ code: number, reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })))
  let headers: Client['headers'] = {}
  socket.on('upgrade', (response) => { headers = response.headers })
  await withTimeout(new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) }), 2000, `open ${url}`)
  const next = async (): Promise<string | Buffer> => await withTimeout(new Promise<string | Buffer>((resolve) => {
    const m = queue.shift()
    if (m !== undefined) resolve(m)
    else waiters.push(resolve)
  }), 2000, 'the next message')
  // The close's bound starts when a test first waits for it: started at the connect, it
  // failed (an unhandled rejection) every test that kept a socket open 3 s without waiting
  // for its close, as a loaded machine made the rooms test (2.3 s when quiet) do.
  let bounded: Promise<{ code: number, reason: string }> | undefined
  return {
    socket,
    headers,
    next,
    json: async () => JSON.parse(String(await next())),
    get closed () { return (bounded ??= withTimeout(closed, 3000, 'the close')) }
  }
}

/** An upgrade request's raw answer: its status, headers and body (read until the server closes the socket; a 101 at its head). */
export interface Answer { status: number, headers: Record<string, string>, body: string }

/** An upgrade request sent raw, and the HTTP response it gets (within 2 s). */
export async function upgrade (port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const lines = [
    `GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${port}`, 'Connection: Upgrade', 'Upgrade: websocket',
    'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)
  ]
  return await withTimeout(new Promise<Answer>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    const parse = (): Answer => {
      const split = received.indexOf('\r\n\r\n')
      const [statusLine, ...rest] = received.slice(0, split).split('\r\n')
      const found: Record<string, string> = {}
      for (const line of rest) {
        const colon = line.indexOf(':')
        found[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      return { status: Number(statusLine.split(' ')[1]), headers: found, body: received.slice(split + 4) }
    }
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      received += chunk
      if (received.startsWith('HTTP/1.1 101') && received.includes('\r\n\r\n')) {
        socket.destroy()
        resolve(parse())
      }
    })
    socket.on('error', reject)
    // Not a 101: the server must close the socket once its answer is written.
    socket.on('close', () => { if (received.includes('\r\n\r\n')) resolve(parse()); else reject(new Error(`no answer: ${JSON.stringify(received)}`)) })
    socket.write(lines.join('\r\n') + '\r\n\r\n')
  }), 2000, `upgrade ${path}`)
}

/** A problem's body as the error handler renders it. */
export function problem (type: string, title: string, status: number, detail: string, instance: string): Record<string, unknown> {
  return { type: TYPE + type, title, status, detail, instance }
}

/** A refused upgrade's HTTP response as a real `ws` client reads it (its `unexpected-response`): status, headers and body, within 2 s. */
export async function refusedUpgrade (url: string): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> {
  const socket = new WebSocket(url)
  return await withTimeout(new Promise((resolve, reject) => {
    socket.once('open', () => { socket.terminate(); reject(new Error(`${url}: upgraded (101), expected a refusal`)) })
    socket.on('error', reject)
    socket.once('unexpected-response', (request, response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.once('end', () => {
        request.destroy()
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body })
      })
    })
  }), 2000, `refused upgrade ${url}`)
}
