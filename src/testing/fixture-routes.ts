/**
 * The routes a fixture declares, built from a small handler language (see `FixtureHandler`
 * and fixture-schema.ts): reply, throw, sleep, stream chunks, ndjson, echo, background
 * tasks that record, Server-Sent Events and WebSocket answers.
 */
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, RouteOptions } from 'fastify'
import type { WebSocket } from 'ws'
import { ndjson } from '../index.js'
import { valueAt } from './match.js'

/** Bytes in a fixture: text, or base64. */
export type FixtureChunk = string | { base64: string }

/** A WebSocket close: its code and reason. */
export interface FixtureClose { code?: number, reason?: string }

/** What a fixture route's handler does (exactly one of reply, throw, stream, ndjson, echo, recorded, sse, websocket). */
export interface FixtureHandler {
  /** Milliseconds to wait first. */
  sleep?: number
  reply?: { status?: number, headers?: Record<string, string>, body?: unknown }
  /** Throws an Error with this message (and statusCode). */
  throw?: { message: string, status?: number }
  /** Sends these chunks as a stream: a Node Readable (default), an async generator or a web ReadableStream. */
  stream?: { chunks: FixtureChunk[], contentType?: string, headers?: Record<string, string>, source?: 'readable' | 'generator' | 'web' }
  /** Returns `ndjson()` of these values. */
  ndjson?: unknown[]
  /** Replies with `{ method, params, query, body }`. */
  echo?: true
  /** Also adds background tasks that each record the request body (after `sleep` ms). */
  task?: { count?: number, sleep?: number }
  /** Replies with what the tasks recorded so far. */
  recorded?: true
  /** Server-Sent Events, on a route with `{ sse: true }`: each step sends an event, sleeps, or sends `{ event: 'resumed', data: { lastEventId } }`. */
  sse?: Array<{ send?: Record<string, unknown>, sleep?: number, lastEventId?: true }>
  /** A WebSocket route: messages sent on open, answers by message `type` (`$message`, `$message/<pointer>` filled in), echo of the rest, closes by message `type`. */
  websocket?: { open?: unknown[], on?: Record<string, unknown>, echo?: true, close?: Record<string, FixtureClose> }
}

/** A route a fixture declares. */
export interface FixtureRoute {
  method: HTTPMethods
  url: string
  /** Plain-JSON route options: schema, bodyLimit, sse, config... */
  options?: Record<string, unknown>
  handler: FixtureHandler
}

export const bytesOf = (chunk: FixtureChunk): string | Buffer => typeof chunk === 'string' ? chunk : Buffer.from(chunk.base64, 'base64')

/** A plugin registering the routes; the bodies the routes' background tasks record are shared among them. */
export function fixtureRoutes (routes: FixtureRoute[]): (app: FastifyInstance) => Promise<void> {
  const recorded: unknown[] = []
  return async (app) => {
    for (const route of routes) {
      const { websocket } = route.handler
      if (websocket !== undefined) {
        app.route({ ...route.options, method: route.method, url: route.url, websocket: true, handler: socketHandler(websocket) } as unknown as RouteOptions)
      } else {
        app.route({ ...route.options, method: route.method, url: route.url, handler: httpHandler(route.handler, recorded) })
      }
    }
  }
}

/** Waits `ms`, or less when the client goes away (or the app closes): then false, and the handler stops. */
async function waited (ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal })
    return true
  } catch {
    return false
  }
}

function httpHandler (h: FixtureHandler, recorded: unknown[]) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    if (h.sleep !== undefined && !await waited(h.sleep, request.signal)) return
    const tasks = h.task === undefined ? 0 : h.task.count ?? 1
    for (let i = 0; i < tasks; i++) {
      request.tasks.add(async function record (ctx) {
        await sleep(h.task?.sleep ?? 0, undefined, { signal: ctx.signal })
        recorded.push(request.body ?? null)
      })
    }
    if (h.recorded === true) return recorded
    if (h.throw !== undefined) throw Object.assign(new Error(h.throw.message), h.throw.status === undefined ? {} : { statusCode: h.throw.status })
    if (h.stream !== undefined) {
      if (h.stream.headers !== undefined) reply.headers(h.stream.headers)
      return await reply.type(h.stream.contentType ?? 'text/plain').send(streamOf(h.stream.chunks.map(bytesOf), h.stream.source))
    }
    if (h.ndjson !== undefined) return ndjson(generate(h.ndjson))
    if (h.echo === true) return { method: request.method, params: request.params, query: request.query, body: request.body ?? null }
    if (h.sse !== undefined) {
      for (const step of h.sse) {
        if (step.sleep !== undefined && !await waited(step.sleep, request.signal)) return
        if (step.lastEventId === true) await reply.sse.send({ event: 'resumed', data: { lastEventId: request.headers['last-event-id'] ?? null } })
        if (step.send !== undefined) await reply.sse.send(step.send as never)
      }
      return
    }
    if (h.reply?.headers !== undefined) reply.headers(h.reply.headers)
    return await reply.code(h.reply?.status ?? 200).send(h.reply?.body ?? null)
  }
}

async function * generate<T> (items: T[]): AsyncGenerator<T> {
  yield * items
}

function streamOf (chunks: Array<string | Buffer>, source: 'readable' | 'generator' | 'web' = 'readable'): unknown {
  if (source === 'generator') return generate(chunks)
  if (source === 'readable') return Readable.from(chunks)
  return new ReadableStream<Uint8Array>({
    start (controller) {
      for (const chunk of chunks) controller.enqueue(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : new Uint8Array(chunk))
      controller.close()
    }
  })
}

/** `$message` and `$message/<pointer>` strings, anywhere in the value, replaced by (parts of) the message. */
function fill (template: unknown, message: unknown): unknown {
  if (typeof template === 'string' && (template === '$message' || template.startsWith('$message/'))) return valueAt(message, template.slice(8))
  if (Array.isArray(template)) return template.map((t) => fill(t, message))
  if (template !== null && typeof template === 'object') return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, fill(v, message)]))
  return template
}

type SpikardSocket = WebSocket & { sendJson?: (value: unknown) => void }

function socketHandler (h: NonNullable<FixtureHandler['websocket']>) {
  return (socket: SpikardSocket): void => {
    const sendJson = (value: unknown): void => { socket.sendJson === undefined ? socket.send(JSON.stringify(value)) : socket.sendJson(value) }
    for (const message of h.open ?? []) sendJson(message)
    socket.on('message', (data: Buffer, binary: boolean) => {
      let message: unknown
      if (!binary) {
        try {
          message = JSON.parse(data.toString())
        } catch {}
      }
      const type = (message as { type?: unknown } | undefined)?.type
      if (typeof type === 'string' && h.close !== undefined && Object.hasOwn(h.close, type)) return socket.close(h.close[type].code, h.close[type].reason)
      if (typeof type === 'string' && h.on !== undefined && Object.hasOwn(h.on, type)) return sendJson(fill(h.on[type], message))
      if (h.echo === true) socket.send(data, { binary })
    })
  }
}
