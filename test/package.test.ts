/**
 * The packed package, as a user gets it: `npm pack` (its prepack builds dist/), a fresh
 * ESM project that `npm install`s the tarball, then the library, `spikard/testing` and
 * the `spikard` bin used from that project only.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { constants, existsSync } from 'node:fs'
import { access, mkdir, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { UUID, withTimeout } from './helpers.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  main: string
  types: string
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
}

/** npm settings worth keeping from the environment; the rest of npm_* (set when run under `npm test`) could point npm at this repo. */
const NPM_KEEP = new Set(['userconfig', 'globalconfig', 'cache', 'cafile', 'registry', 'noproxy', 'proxy', 'https_proxy', 'strict_ssl'].map((k) => `npm_config_${k}`))

function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) && !NPM_KEEP.has(key.toLowerCase())) continue
    if (['NODE_TEST_CONTEXT', 'NODE_OPTIONS', 'PORT', 'HOST', 'LOG_LEVEL'].includes(key)) continue
    env[key] = value
  }
  return env
}

interface Result { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

const children = new Set<ChildProcess>()

function launch (command: string, args: string[], options: SpawnOptions): ChildProcess {
  // Own process group, so cleanup reaches what npx/npm start below them.
  const child = spawn(command, args, { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function killGroup (child: ChildProcess): void {
  if (child.pid === undefined) return
  try { process.kill(-child.pid, 'SIGKILL') } catch { /* already gone */ }
}


function collect (child: ChildProcess): { stdout: () => string, stderr: () => string, done: Promise<Result> } {
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const done = new Promise<Result>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { stdout: () => stdout, stderr: () => stderr, done }
}

async function run (command: string, args: string[], cwd: string, timeout: number): Promise<Result> {
  const child = launch(command, args, { cwd })
  try {
    return await withTimeout(collect(child).done, timeout, `${command} ${args.join(' ')}`)
  } finally {
    killGroup(child)
  }
}

function ok (r: Result, what: string): Result {
  assert.equal(r.code, 0, `${what} exited ${r.code ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
  return r
}

/** Every file path a package.json field points at. */
function targets (): string[] {
  const out = [pkg.main, pkg.types, ...Object.values(pkg.bin)]
  for (const entry of Object.values(pkg.exports)) out.push(...(typeof entry === 'string' ? [entry] : Object.values(entry)))
  return out.map((p) => p.replace(/^\.\//, ''))
}

describe('the packed package', { timeout: 300_000 }, () => {
  let work = ''
  let project = ''
  let packed: { filename: string, files: Array<{ path: string, mode: number }> }

  before(async () => {
    work = await realpath(await mkdtemp(join(tmpdir(), 'spikard-pack-')))
    project = join(work, 'project')
    const r = ok(await run('npm', ['pack', '--json', '--pack-destination', work], ROOT, 120_000), 'npm pack')
    packed = (JSON.parse(r.stdout) as Array<typeof packed>)[0]
    await mkdir(project)
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'spikard-user', version: '1.0.0', private: true, type: 'module' }, null, 2))
    ok(await run('npm', ['install', join(work, packed.filename), '--no-audit', '--no-fund', '--prefer-offline'], project, 180_000), 'npm install')
  })

  after(async () => {
    for (const child of children) killGroup(child)
    if (work !== '') await rm(work, { recursive: true, force: true })
  })

  it('holds every file package.json points at, and nothing but the build, README and package.json', () => {
    const files = packed.files.map((f) => f.path)
    for (const target of targets()) assert.ok(files.includes(target), `package.json points at ${target}, which is not in the tarball`)
    for (const file of files) {
      assert.match(file, /^(package\.json|README\.md|dist\/(src|plugins)\/.+\.(js|d\.ts|js\.map))$/, `unexpected file in the tarball: ${file}`)
    }
    // A build that does not clean dist/ would ship files whose source is gone.
    for (const file of files.filter((f) => f.startsWith('dist/'))) {
      const source = file.replace(/^dist\//, '').replace(/(\.d\.ts|\.js\.map|\.js)$/, '.ts')
      assert.ok(existsSync(join(ROOT, source)), `${file} is in the tarball but ${source} does not exist (stale dist/)`)
    }
  })

  it('installs a runnable bin: a node shebang and an executable link', async () => {
    const bin = join(project, 'node_modules', 'spikard', pkg.bin.spikard)
    assert.match(await readFile(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/)
    await access(join(project, 'node_modules', '.bin', 'spikard'), constants.X_OK)
  })

  it('imports spikard, createServer and spikard/testing in an ESM script and answers inject() with a request id', async () => {
    await writeFile(join(project, 'use.mjs'), `
import Fastify from 'fastify'
import spikard, { spikard as named, createServer, PROBLEM_CONTENT_TYPE } from 'spikard'
import { createTestApp } from 'spikard/testing'

const out = { sameExport: spikard === named, problemType: PROBLEM_CONTENT_TYPE }

// The plugin on the user's own Fastify instance.
const app = Fastify()
await app.register(spikard, { requestId: true })
app.get('/hello', async (request) => ({ hello: 'world', requestId: request.id }))
const hello = await app.inject({ url: '/hello', headers: { 'x-request-id': 'user-req-1' } })
const fresh = await app.inject({ url: '/hello' })
const missing = await app.inject({ url: '/missing' })
out.plugin = {
  hello: { status: hello.statusCode, header: hello.headers['x-request-id'], body: hello.json() },
  fresh: { header: fresh.headers['x-request-id'], body: fresh.json() },
  missing: { status: missing.statusCode, contentType: missing.headers['content-type'], body: missing.json() }
}
await app.close()

// createServer with a routes plugin in code.
const server = await createServer({ server: { logger: { level: 'silent' } }, requestId: { header: 'x-trace-id' }, app: async (a) => { a.get('/x', async (request) => ({ id: request.id })) } })
const x = await server.inject({ url: '/x', headers: { 'x-trace-id': 'trace-7' } })
out.createServer = { status: x.statusCode, header: x.headers['x-trace-id'], body: x.json() }
await server.close()

// spikard/testing.
const test = await createTestApp({ requestId: true, app: async (a) => { a.get('/t', async () => ({ ok: true })) } })
const t = await test.inject('/t')
out.testing = { status: t.statusCode, header: t.headers['x-request-id'], body: t.json() }
await test.close()

console.log(JSON.stringify(out))
`)
    const r = ok(await run(process.execPath, ['use.mjs'], project, 60_000), 'node use.mjs')
    assert.equal(r.stderr, '')
    const out = JSON.parse(r.stdout)
    assert.equal(out.sameExport, true)
    assert.equal(out.problemType, 'application/problem+json')
    assert.deepEqual(out.plugin.hello, { status: 200, header: 'user-req-1', body: { hello: 'world', requestId: 'user-req-1' } })
    assert.match(out.plugin.fresh.header, UUID)
    assert.deepEqual(out.plugin.fresh.body, { hello: 'world', requestId: out.plugin.fresh.header })
    assert.equal(out.plugin.missing.status, 404)
    assert.match(out.plugin.missing.contentType, /^application\/problem\+json/)
    assert.deepEqual(out.plugin.missing.body, {
      type: 'https://spikard.dev/errors/not-found',
      title: 'Not Found',
      status: 404,
      detail: 'No route matches GET /missing',
      instance: '/missing',
      requestId: out.plugin.missing.body.requestId
    })
    assert.match(out.plugin.missing.body.requestId, UUID)
    assert.deepEqual(out.createServer, { status: 200, header: 'trace-7', body: { id: 'trace-7' } })
    assert.equal(out.testing.status, 200)
    assert.match(out.testing.header, UUID)
    assert.deepEqual(out.testing.body, { ok: true })
  })

  it('npx spikard --version prints the version', async () => {
    // --no: never fetch a "spikard" from the registry; -- : the flags are the bin's, not npx's.
    const r = ok(await run('npx', ['--no', '--', 'spikard', '--version'], project, 60_000), 'npx spikard --version')
    assert.equal(r.stdout, `${pkg.version}\n`)
  })

  it('npx spikard check and start run a .ts app module; the server answers with request ids and exits 0 on SIGTERM', async () => {
    await writeFile(join(project, 'spikard.config.yaml'), 'server:\n  port: 1\napp: ./app.ts\nrequestContext: true\nrequestId: true\nlogging: true\n')
    await writeFile(join(project, 'app.ts'), `import type { FastifyInstance } from 'fastify'
import { requestContext } from 'spikard'

interface Hello { hello: string, requestId: string, contextId: string | null, pid: number }

export default async function routes (app: FastifyInstance): Promise<void> {
  app.get('/hello', async (request): Promise<Hello> => ({
    hello: 'world',
    requestId: String(request.id),
    contextId: requestContext.get('requestId') ?? null,
    pid: process.pid
  }))
}
`)
    const check = ok(await run('npx', ['--no', '--', 'spikard', 'check', '--config', 'spikard.config.yaml'], project, 60_000), 'npx spikard check')
    assert.deepEqual(check.stdout.split('\n').filter((l) => l !== '').map((l) => l.trim().split(/ {2,}/)), [
      [`${join(project, 'spikard.config.yaml')}: valid`],
      ['METHOD', 'PATH', 'AUTH', 'RATE LIMIT', 'BODY LIMIT', 'TIMEOUT', 'COMPRESSION', 'ACCESS LOG'],
      ['GET', '/hello', 'off', 'off', '1mb', 'off', 'off', 'on']
    ])

    const child = launch('npx', ['--no', '--', 'spikard', 'start', '--config', 'spikard.config.yaml', '--port', '0'], { cwd: project })
    try {
      const output = collect(child)
      const url = await withTimeout(new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', () => {
          const m = /^spikard listening on (http:\/\/\S+)$/m.exec(output.stdout())
          if (m !== null) resolve(m[1])
        })
        child.once('exit', (code) => reject(new Error(`npx spikard start exited ${code} before listening:\n${output.stdout()}\n${output.stderr()}`)))
      }), 60_000, 'npx spikard start to listen')
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/)

      const fresh = await fetch(`${url}/hello`)
      const id = fresh.headers.get('x-request-id') ?? ''
      assert.equal(fresh.status, 200)
      assert.match(id, UUID)
      const body = await fresh.json() as { pid: number }
      // The user's module, compiled by tsx, shares spikard's request context.
      assert.deepEqual(body, { hello: 'world', requestId: id, contextId: id, pid: body.pid })

      const kept = await fetch(`${url}/hello`, { headers: { 'x-request-id': 'from-the-client' } })
      assert.equal(kept.headers.get('x-request-id'), 'from-the-client')

      // npx does not pass SIGTERM on to the command it runs, so signal the server itself;
      // npx then exits with the server's exit code.
      process.kill(body.pid, 'SIGTERM')
      const exit = await withTimeout(output.done, 20_000, 'spikard to exit after SIGTERM')
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, exit.stderr)
      assert.equal(exit.stderr, '')
    } finally {
      killGroup(child)
    }
  })
})
