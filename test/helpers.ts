/** Shared test helpers: build an app with captured log lines, listen on a real socket, match UUIDs. */
import net from 'node:net'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { AddressInfo } from 'node:net'
import assert from 'node:assert/strict'
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify'
import { createServer, type CreateServerConfig } from '../src/server.js'
import spikard from '../src/spikard.js'
import { SpikardConfigError } from '../src/errors.js'
import { CLI } from './compiled-cli.js'

/**
 * Set (a reason to skip) when the tests that only run tsc (the packed declarations in a
 * strict consumer, the generated AsyncAPI projects) ran already in this CI run, on
 * another Node: what tsc reports does not depend on Node's version. `.ci/run` sets
 * SPIKARD_TYPE_CHECKED=1 for its second run, as it runs the lint and the type check once.
 */
export const typeChecked = process.env.SPIKARD_TYPE_CHECKED === '1' && 'type-checked in the first Node run of .ci/run (tsc does not depend on Node\'s version)'

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** A fresh directory holding `files` (name to text), removed when the test ends. */
export function tempDir (t: { after: (fn: () => void) => void }, files: Record<string, string> = {}): string {
  const d = mkdtempSync(join(tmpdir(), 'spikard-test-'))
  t.after(() => rmSync(d, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text)
  return d
}

export interface TestApp { app: FastifyInstance, logs: Array<Record<string, any>> }

/** The problems of the SpikardConfigError `fn` throws; fails when it throws nothing or something else. */
export function refusal (fn: () => unknown): string[] {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof SpikardConfigError, `expected a SpikardConfigError, got ${String(error)}`)
    return error.problems
  }
  assert.fail('expected a SpikardConfigError, nothing was thrown')
}

/**
 * Asserts that `options` for `feature` are refused with exactly `problems`, both ways a
 * user meets them: by createServer (its message lists each problem) and by
 * `app.register(spikard)` on an instance of their own, at ready().
 */
export async function assertOptionsRefused (feature: string, options: unknown, problems: string[]): Promise<void> {
  const where = `${feature}: ${JSON.stringify(options)}`
  const list = problems.map((p) => `  - ${p}`).join('\n')
  const refused = (error: unknown): true => {
    assert.ok(error instanceof SpikardConfigError, `${where}: ${String(error)}`)
    assert.deepStrictEqual(error.problems, problems, where)
    // The message is the list and nothing else ("config" when the config schema refused it,
    // "options" when the feature's plugin did).
    assert.ok([`Invalid spikard config:\n${list}`, `Invalid spikard options:\n${list}`].includes(error.message), error.message)
    return true
  }
  await assert.rejects(createServer({ [feature]: options, server: { logger: { level: 'silent' } } } as CreateServerConfig), refused)
  const app = Fastify()
  try {
    app.register(spikard, { [feature]: options } as never)
    await assert.rejects(async () => { await app.ready() }, refused)
  } finally {
    await app.close()
  }
}

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

export interface RawResponse {
  status: number
  statusLine: string
  /** Header values by lower-cased name, repeated headers joined with ", ". */
  headers: Record<string, string>
  /** Every value of each header, in order. */
  all: Record<string, string[]>
  body: string
}

/** Writes raw bytes (latin1) on a fresh connection and reads until the server closes it. */
export function rawRequest (port: number, data: Buffer | string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1')
    socket.setTimeout(5000, () => { socket.destroy(); reject(new Error(`no response; got ${JSON.stringify(received)}`)) })
    socket.on('data', (chunk) => { received += chunk })
    socket.on('error', (error) => { if (received === '') reject(error) })
    socket.on('close', () => {
      const split = received.indexOf('\r\n\r\n')
      if (split === -1) return reject(new Error(`not an HTTP response: ${JSON.stringify(received)}`))
      const [statusLine, ...lines] = received.slice(0, split).split('\r\n')
      const all: Record<string, string[]> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        const name = line.slice(0, colon).trim().toLowerCase();
        (all[name] ??= []).push(line.slice(colon + 1).trim())
      }
      const headers = Object.fromEntries(Object.entries(all).map(([name, values]) => [name, values.join(', ')]))
      resolve({ status: Number(statusLine.split(' ')[1]), statusLine, headers, all, body: received.slice(split + 4) })
    })
    socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data)
  })
}

/** Resolves once `condition()` holds (polled every 2 ms); fails after `ms`, naming `what`. */
export async function until (condition: () => boolean, what: string, ms = 5000): Promise<number> {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms: ${what}`)
    await sleep(2)
  }
  return Date.now() - start
}

/** Rejects when `promise` takes longer than `ms`. */
export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

export interface CliResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

/**
 * Runs the `spikard` CLI (compiled: ./compiled-cli.ts) in `cwd` to completion, killed after `timeoutMs`
 * (and when the test ends), without the test runner's NODE_ENV, NODE_OPTIONS and context.
 */
export async function runCli (args: string[], { cwd, env = {}, t, timeoutMs = 30_000 }: { cwd: string, env?: Record<string, string>, t?: { after: (fn: () => void) => void }, timeoutMs?: number }): Promise<CliResult> {
  const base: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['NODE_ENV', 'NODE_TEST_CONTEXT', 'NODE_OPTIONS']) delete base[name]
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t?.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  // 'close' comes after 'exit' and after both pipes have ended.
  const closed = new Promise<Pick<CliResult, 'code' | 'signal'>>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })))
  return { ...await withTimeout(closed, timeoutMs, `spikard ${args.join(' ')}`), stdout, stderr }
}
