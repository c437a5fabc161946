/**
 * The packed package, as a user gets it: `npm pack` (its prepack builds dist/), a fresh
 * ESM project that `npm install`s the tarball (fastify comes as its peer; tsx, an optional
 * peer, does not), then the library, its declarations under `strict` without skipLibCheck,
 * `spikard/testing` and the `spikard` bin used from that project only. Last, `npm start`
 * in this repo, stopped by a signal to npm.
 */
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process'
import { createHash } from 'node:crypto'
import { constants, existsSync } from 'node:fs'
import { access, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { typeChecked, UUID, withTimeout } from './helpers.js'
import { nodeStripsTypes } from '../src/app-module.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  main: string
  types: string
  bin: Record<string, string>
  exports: Record<string, string | Record<string, string>>
  devDependencies: Record<string, string>
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

/**
 * `npm pack` (its prepack builds dist/ with tsc) of the sources as they are now, kept in
 * node_modules/.cache/spikard-pack/ by a hash of everything that goes into the tarball:
 * the second Node of .ci/run installs the tarball the first one packed, as a user of
 * either Node would get the same one.
 */
async function packOnce (): Promise<{ tarball: string, packed: { filename: string, files: Array<{ path: string, mode: number }> } }> {
  const hash = createHash('sha256')
  const inputs = ['package.json', 'README.md', 'tsconfig.json', 'tsconfig.build.json']
  for (const top of ['src', 'plugins']) {
    for (const file of (await readdir(join(ROOT, top), { recursive: true })).sort()) inputs.push(join(top, file))
  }
  for (const file of inputs) {
    if ((await stat(join(ROOT, file))).isFile()) hash.update(file).update('\0').update(await readFile(join(ROOT, file))).update('\0')
  }
  const dir = join(ROOT, 'node_modules/.cache/spikard-pack', hash.digest('hex').slice(0, 16))
  if (!existsSync(join(dir, 'pack.json'))) {
    const partial = `${dir}.${process.pid}`
    await mkdir(partial, { recursive: true })
    const r = ok(await run('npm', ['pack', '--json', '--pack-destination', partial], ROOT, 120_000), 'npm pack')
    await writeFile(join(partial, 'pack.json'), r.stdout)
    await rm(dir, { recursive: true, force: true })
    await rename(partial, dir)
  }
  const packed = (JSON.parse(await readFile(join(dir, 'pack.json'), 'utf8')) as Array<{ filename: string, files: Array<{ path: string, mode: number }> }>)[0]
  return { tarball: join(dir, packed.filename), packed }
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
    const pack = await packOnce()
    packed = pack.packed
    await mkdir(project)
    await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'spikard-user', version: '1.0.0', private: true, type: 'module' }, null, 2))
    ok(await run('npm', ['install', pack.tarball, '--no-audit', '--no-fund', '--prefer-offline'], project, 180_000), 'npm install')
  })

  it('installs fastify as its peer, and neither tsx nor pino-pretty (optional peers)', () => {
    assert.ok(existsSync(join(project, 'node_modules', 'fastify', 'package.json')))
    assert.ok(!existsSync(join(project, 'node_modules', 'tsx')), 'tsx was installed')
    assert.ok(!existsSync(join(project, 'node_modules', 'pino-pretty')), 'pino-pretty was installed')
  })

  it('its declarations compile in a strict consumer without skipLibCheck, spikard and spikard/testing', { skip: typeChecked }, async () => {
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        noEmit: true,
        // A TypeScript user has @types/node; borrowed from this repo rather than installed.
        types: ['node'],
        typeRoots: [join(ROOT, 'node_modules', '@types')]
      },
      files: ['consumer.ts']
    }, null, 2))
    await writeFile(join(project, 'consumer.ts'), `import Fastify from 'fastify'
import spikard, { createServer, errors, requestContext, type SpikardOptions } from 'spikard'
import { createTestApp } from 'spikard/testing'

const options: SpikardOptions = { requestId: true, rateLimit: { max: 10 } }
const app = Fastify()
await app.register(spikard, options)
app.get('/', async (request) => ({ id: request.id, context: requestContext.get('requestId') ?? null }))
// Route options that come with features loaded only when they are on.
app.get('/events', { sse: true }, async (_request, reply) => { await reply.sse.send({ data: 'hi' }) })
app.get('/socket', { websocket: true }, (socket) => { socket.send('hi') })
app.get('/small', { compress: false, config: { rateLimit: { max: 5 }, logging: false } }, async () => 'small')
const server = await createServer({ app: async (a) => { a.get('/x', async () => 'x') } })
const test = await createTestApp({ requestId: true })
export const error: Error = new errors.SPK_ERR_NOT_FOUND('GET', '/')
await Promise.all([app.close(), server.close(), test.close()])
`)
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
    ok(await run(process.execPath, [tsc, '-p', 'tsconfig.json'], project, 120_000), 'tsc (strict, skipLibCheck: false) on a consumer of spikard')
  })

  after(async () => {
    for (const child of children) killGroup(child)
    if (work !== '') await rm(work, { recursive: true, force: true })
  })

  it('holds every file package.json points at, and nothing but the build, README and package.json', () => {
    const files = packed.files.map((f) => f.path)
    for (const target of targets()) assert.ok(files.includes(target), `package.json points at ${target}, which is not in the tarball`)
    for (const file of files) {
      assert.match(file, /^(package\.json|README\.md|dist\/(src|plugins)\/.+\.(js|cjs|d\.ts|d\.cts|js\.map))$/, `unexpected file in the tarball: ${file}`)
    }
    // A build that does not clean dist/ would ship files whose source is gone.
    for (const file of files.filter((f) => f.startsWith('dist/'))) {
      const source = file.replace(/^dist\//, '').replace(/(\.d\.ts|\.js\.map|\.js)$/, '.ts').replace(/(\.d\.cts|\.cjs)$/, '.cts')
      assert.ok(existsSync(join(ROOT, source)), `${file} is in the tarball but ${source} does not exist (stale dist/)`)
    }
  })

  it('imports no package it does not declare (a strict installer, pnpm, hides the undeclared ones)', async () => {
    const installed = join(project, 'node_modules', 'spikard')
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { dependencies?: Record<string, string>, peerDependencies?: Record<string, string> }
    const declared = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})])
    const undeclared = new Set<string>()
    for (const file of packed.files.map((f) => f.path).filter((f) => /\.c?js$/.test(f))) {
      const code = await readFile(join(installed, file), 'utf8')
      for (const [, specifier] of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\brequire(?:\.resolve)?\s*\(\s*)['"]([@a-z0-9][^'"\s]*)['"]/g)) {
        if (specifier.startsWith('node:')) continue
        const name = specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/')
        if (!declared.has(name)) undeclared.add(`${name} (${file})`)
      }
    }
    assert.deepEqual([...undeclared], [])
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

  it('a .ts app module without tsx: Node\'s own type stripping where it has it, else an error saying to install tsx', async () => {
    await writeFile(join(project, 'plain.yaml'), 'app: ./plain.ts\n')
    await writeFile(join(project, 'plain.ts'), 'export default async function routes (app: { get: (path: string, handler: () => Promise<string>) => void }): Promise<void> { app.get(\'/plain\', async () => \'ok\') }\n')
    await writeFile(join(project, 'enum.yaml'), 'app: ./enum.ts\n')
    await writeFile(join(project, 'enum.ts'), 'enum Mode { A }\nexport default async function routes (): Promise<void> { void Mode.A }\n')
    const check = async (config: string): Promise<Result> => await run('npx', ['--no', '--', 'spikard', 'check', '--config', config], project, 60_000)
    const plain = await check('plain.yaml')
    const enumerated = await check('enum.yaml')
    if (nodeStripsTypes()) {
      ok(plain, 'spikard check, Node stripping types')
      assert.match(plain.stdout, /GET +\/plain/)
      assert.equal(enumerated.code, 1, enumerated.stdout)
      assert.match(enumerated.stderr, /enum\.ts: Node's type stripping refuses TypeScript-only syntax \(enums, namespaces, parameter properties, import aliases\): .*; `npm install tsx` to load it anyway, or compile it to JavaScript/)
    } else {
      for (const [r, file] of [[plain, 'plain.ts'], [enumerated, 'enum.ts']] as const) {
        assert.equal(r.code, 1, r.stdout)
        assert.match(r.stderr, new RegExp(`${file.replace('.', '\\.')} is TypeScript and this Node \\(${process.version}\\) does not strip types: \`npm install tsx\` to load it, or use Node 22\\.18 or later, or compile it to JavaScript`))
      }
    }
  })

  it('npx spikard check and start run a .ts app module; the server answers with request ids and exits 0 on SIGTERM', async () => {
    if (!nodeStripsTypes()) {
      // What the error above tells a Node 20 user to do.
      ok(await run('npm', ['install', `tsx@${pkg.devDependencies.tsx}`, '--no-audit', '--no-fund', '--prefer-offline'], project, 180_000), 'npm install tsx')
    }
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
    const rows = check.stdout.split('\n').filter((l) => l !== '').map((l) => l.trim().split(/ {2,}/))
    assert.deepEqual(rows[0], [`${join(project, 'spikard.config.yaml')}: valid`])
    // The route table, by column name (the feature table above it is the CLI's own test's business).
    const [header, ...routes] = rows.slice(rows.findIndex((r) => r[0] === 'METHOD'))
    // The user's route, with the columns this config decides (the others follow spikard's defaults).
    const hello = routes.map((r) => Object.fromEntries(header.map((name, i) => [name, r[i]]))).filter((r) => r.PATH === '/hello')
    assert.deepEqual(hello.map(({ METHOD, PATH, AUTH, 'RATE LIMIT': rate, 'BODY LIMIT': body, 'ACCESS LOG': access }) => ({ METHOD, PATH, AUTH, rate, body, access })), [
      { METHOD: 'GET', PATH: '/hello', AUTH: 'off', rate: 'off', body: '1mb', access: 'on' }
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
      // The user's module (stripped by Node, or compiled by tsx on Node 20) shares spikard's request context.
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

async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Whether something accepts connections on 127.0.0.1:port. */
async function accepting (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm start (the demo)', { timeout: 120_000 }, () => {
  after(() => { for (const child of children) killGroup(child) })

  // To npm alone (a process manager, `kill`), and to the whole group (Ctrl-C in a terminal).
  for (const [signal, to] of [['SIGTERM', 'npm'], ['SIGINT', 'npm'], ['SIGINT', 'the process group']] as const) {
    it(`${signal} to ${to} stops the server: no process left, the port free`, async () => {
      const port = await freePort()
      const npm = launch('npm', ['start'], { cwd: ROOT, env: { ...cleanEnv(), PORT: String(port) } })
      const output = collect(npm)
      try {
        const pid = await withTimeout(new Promise<number>((resolve, reject) => {
          npm.stdout!.on('data', () => {
            const line = output.stdout().split('\n').find((l) => l.includes('"msg":"Server listening at'))
            if (line !== undefined && output.stdout().includes('spikard listening on')) resolve((JSON.parse(line) as { pid: number }).pid)
          })
          npm.once('exit', (code) => reject(new Error(`npm start exited ${code} before listening:\n${output.stdout()}\n${output.stderr()}`)))
        }), 60_000, 'npm start to listen')
        assert.notEqual(pid, npm.pid)
        assert.equal(await accepting(port), true)

        process.kill(to === 'npm' ? npm.pid! : -npm.pid!, signal)
        await withTimeout(output.done, 15_000, `npm start to exit after ${signal}`)
        for (let i = 0; i < 50 && (alive(pid) || await accepting(port)); i++) await new Promise((resolve) => setTimeout(resolve, 100))
        assert.equal(alive(pid), false, `the server (pid ${pid}) outlived npm`)
        assert.equal(await accepting(port), false, `port ${port} still accepts connections`)
      } finally {
        killGroup(npm)
      }
    })
  }
})
