import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig, SpikardConfigError, createServer } from '../src/index.js'
import { tempDir } from './helpers.js'

function refused (fn: () => unknown): string[] {
  try { fn() } catch (error) {
    assert.ok(error instanceof SpikardConfigError, String(error))
    return error.problems
  }
  assert.fail('expected the config to be refused')
}

test('finds spikard.config.json, .yaml or .yml in the working directory, in that order', (t) => {
  const yml = tempDir(t, { 'spikard.config.yml': 'server: { port: 1 }' })
  assert.equal(loadConfig({ cwd: yml }).config.server.port, 1)
  const both = tempDir(t, { 'spikard.config.yaml': 'server: { port: 2 }', 'spikard.config.json': '{"server":{"port":3}}' })
  const loaded = loadConfig({ cwd: both })
  assert.equal(loaded.config.server.port, 3)
  assert.equal(loaded.file, join(both, 'spikard.config.json'))
  const none = tempDir(t, {})
  assert.match(refused(() => loadConfig({ cwd: none }))[0], /no config file found in .* \(looked for spikard\.config\.json, spikard\.config\.yaml, spikard\.config\.yml\)/)
})

test('substitutes ${VAR} and ${VAR:-default} in every string and coerces to the expected type', (t) => {
  const d = tempDir(t, {
    'c.yaml': 'server:\n  host: ${HOST:-0.0.0.0}\n  port: ${PORT}\n  logger: { level: "${LEVEL:-warn}" }\nrequestId:\n  header: x-${PREFIX}-id\nlogging: ${LOGGING:-true}\n'
  })
  const { config } = loadConfig({ cwd: d, file: 'c.yaml', env: { PORT: '8123', PREFIX: 'trace', HOST: '' } })
  assert.equal(config.server.port, 8123)
  assert.equal(config.server.host, '0.0.0.0', 'an empty variable takes the default, as in the shell')
  assert.equal(config.server.logger.level, 'warn')
  assert.deepEqual(config.requestId, { header: 'x-trace-id', trustIncoming: true })
  assert.notEqual(config.logging, false)
})

test('an unset variable without a default names the variable and the key', (t) => {
  const d = tempDir(t, { 'spikard.config.yaml': 'server:\n  port: ${PORT}\nrequestId:\n  header: ${H1}\n' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, env: {} })), [
    'server.port: environment variable PORT is not set and has no default (write ${PORT:-default} to give one)',
    'requestId.header: environment variable H1 is not set and has no default (write ${H1:-default} to give one)'
  ])
})

test('a substituted value of the wrong type is refused with what was found', (t) => {
  const d = tempDir(t, { 'spikard.config.json': '{"server":{"port":"${PORT}"}}' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, env: { PORT: 'eighty' } })), [
    'server.port: expected an integer >= 0 and <= 65535, found "eighty"'
  ])
})

test('unparsable files and missing files are refused with the file named', (t) => {
  const d = tempDir(t, { 'bad.yaml': 'server: [unclosed', 'bad.json': '{"server": }' })
  assert.match(refused(() => loadConfig({ cwd: d, file: 'bad.yaml' }))[0], /^not valid YAML: /)
  assert.match(refused(() => loadConfig({ cwd: d, file: 'bad.json' }))[0], /^not valid JSON: /)
  assert.match(refused(() => loadConfig({ cwd: d, file: 'nope.yaml' }))[0], /^file not found: .*nope\.yaml$/)
  try { loadConfig({ cwd: d, file: 'bad.yaml' }) } catch (e) { assert.match((e as Error).message, /^Invalid spikard config .*bad\.yaml:\n {2}- not valid YAML/) }
})

test('an empty config file means every default', (t) => {
  const d = tempDir(t, { 'spikard.config.yaml': '# nothing yet\n' })
  const { config } = loadConfig({ cwd: d })
  assert.deepEqual(config, {
    server: { host: '127.0.0.1', port: 8000, trustProxy: false, logger: { level: 'info', pretty: false, buffer: 0 } },
    requestContext: false,
    requestId: false,
    logging: false,
    shutdown: false,
    health: false,
    auth: false,
    rateLimit: false,
    bodyLimit: false,
    timeout: false,
    compression: false
  })
})

test('createServer loads the app module relative to baseDir, JS or TS', async (t) => {
  const d = tempDir(t, {
    'routes.ts': 'import type { FastifyInstance } from "fastify"\nexport default async function (app: FastifyInstance): Promise<void> { app.get("/ts", async () => ({ lang: "ts" as const })) }\n',
    'routes.mjs': 'export default async function (app) { app.get("/js", async () => ({ lang: "js" })) }\n',
    'nodefault.mjs': 'export const x = 1\n'
  })
  for (const [file, url] of [['routes.ts', '/ts'], ['routes.mjs', '/js']]) {
    const app = await createServer({ app: file, server: { logger: { level: 'silent' } } }, { baseDir: d })
    const res = await app.inject({ url })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { lang: url.slice(1) })
    await app.close()
  }
  await assert.rejects(createServer({ app: 'missing.ts' }, { baseDir: d }), /app: module not found: .*missing\.ts/)
  await assert.rejects(createServer({ app: 'nodefault.mjs' }, { baseDir: d }), /app: .*nodefault\.mjs must default-export a Fastify plugin \(a function\), found no default export/)
})

test('server.trustProxy as a hop count trusts that many proxies (Fastify alone would trust none)', async () => {
  const app = await createServer({
    server: { trustProxy: 1, logger: { level: 'silent' } },
    app: async (a: FastifyInstance) => { a.get('/ip', async (request) => ({ ip: request.ip })) }
  })
  const res = await app.inject({ url: '/ip', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9, 198.51.100.7' } })
  assert.deepEqual(res.json(), { ip: '198.51.100.7' })
  const unset = await createServer({ server: { logger: { level: 'silent' } }, app: async (a: FastifyInstance) => { a.get('/ip', async (request) => ({ ip: request.ip })) } })
  const forged = await unset.inject({ url: '/ip', remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': '203.0.113.9' } })
  assert.deepEqual(forged.json(), { ip: '10.0.0.1' })
  await Promise.all([app.close(), unset.close()])
})

test('server.logger.file and buffer: lines gathered in the buffer reach the file by the time close() resolves', async (t) => {
  const d = tempDir(t, {})
  const app = await createServer({
    server: { logger: { file: 'logs-here.log', buffer: '64kb' } },
    logging: true,
    shutdown: true,
    app: async (app: FastifyInstance) => { app.get('/ok', async () => ({ ok: true })) }
  }, { baseDir: d })
  // Listening, so the shutdown logs its phases at info level.
  await app.listen({ host: '127.0.0.1', port: 0 })
  for (let i = 0; i < 3; i++) assert.equal((await app.inject('/ok')).statusCode, 200)
  const file = join(d, 'logs-here.log')
  // Three short lines are far below the buffer: nothing written yet.
  assert.equal(readFileSync(file, 'utf8'), '')
  await app.close()
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { msg: string, path?: string })
  assert.equal(lines.filter((l) => l.msg === 'request completed' && l.path === '/ok').length, 3)
  // The shutdown's own last line, logged by another onClose hook, is flushed too.
  assert.ok(lines.some((l) => l.msg === 'shutdown complete'), lines.map((l) => l.msg).join(', '))
})

test('server.logger.file that cannot be opened, or a malformed or too large buffer, fails at startup naming the key', async (t) => {
  const d = tempDir(t, {})
  await assert.rejects(createServer({ server: { logger: { file: 'missing-dir/x.log' } } }, { baseDir: d }),
    (error: unknown) => error instanceof SpikardConfigError && /server\.logger\.file: cannot open .*missing-dir\/x\.log for writing \(ENOENT\)/.test(error.message))
  await assert.rejects(createServer({ server: { logger: { buffer: 'lots' as unknown as number } } }),
    (error: unknown) => error instanceof SpikardConfigError && /server\.logger\.buffer: expected a size/.test(error.message))
  for (const [buffer, found] of [['2mb', '"2mb"'], [1024 * 1024 + 1, '1048577']] as const) {
    await assert.rejects(createServer({ server: { logger: { buffer } } }), (error: unknown) => error instanceof SpikardConfigError &&
      error.problems[0] === `server.logger.buffer: expected a size (bytes, or a string such as "512kb", "1mb") of at most 1mb, found ${found}`)
  }
})
