/** Shared test helpers: build an app with captured log lines, listen on a real socket, match UUIDs. */
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { createServer, type CreateServerConfig } from '../src/server.js'

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

export interface TestApp { app: FastifyInstance, logs: Array<Record<string, any>> }

/** createServer with the given config and routes; every log line is parsed into `logs`. */
export async function build (config: CreateServerConfig, routes?: FastifyPluginAsync): Promise<TestApp> {
  const logs: Array<Record<string, any>> = []
  const logStream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) if (line.trim() !== '') logs.push(JSON.parse(line))
      callback()
    }
  })
  const app = await createServer({ ...config, ...(routes === undefined ? {} : { app: routes }) }, { logStream })
  return { app, logs }
}

/** Listens on 127.0.0.1 on a free port; returns the base URL and the port. */
export async function listen (app: FastifyInstance): Promise<{ url: string, port: number }> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}`, port }
}
