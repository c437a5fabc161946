/* eslint-disable no-template-curly-in-string -- config texts hold ${VAR} substitutions on purpose */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { resolveSpikardOptions } from '../src/options.js'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig, SpikardConfigError, createServer } from '../src/index.js'
import { refusal as refused, tempDir } from './helpers.js'
import { assertPrettyInstalled } from '../src/logger.js'

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

test('any other ${ form is refused, not left in the value; $${ is a literal ${', (t) => {
  const d = tempDir(t, {
    'c.yaml': 'openapi:\n  info:\n    title: ${TITLE:?title required}\n    version: ${VER:-1.${MINOR:-0}}\n    description: costs $${PRICE}, at ${SHOP:-the shop}\nserver:\n  host: ${HOST-127.0.0.1}\n'
  })
  const advice = 'is not a substitution spikard knows: write ${VAR} or ${VAR:-default} (a default holds no ${), or $${ for a literal ${'
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'c.yaml', env: { TITLE: 't', MINOR: '2' } })), [
    `openapi.info.title: "\${TITLE:?title required}" ${advice}`,
    `openapi.info.version: "\${VER:-1.\${MINOR:-0}}" ${advice}`,
    `server.host: "\${HOST-127.0.0.1}" ${advice}`
  ])
  const ok = tempDir(t, { 'c.yaml': 'openapi:\n  info:\n    description: costs $${PRICE}, at ${SHOP:-the shop}\n' })
  const { config } = loadConfig({ cwd: ok, file: 'c.yaml', env: {} })
  assert.equal((config.openapi as { info: { description: string } }).info.description, 'costs ${PRICE}, at the shop')
})

test('a refused ${ form in a secret option is not quoted: the file holds the secret itself', (t) => {
  const d = tempDir(t, {
    'c.yaml': 'auth:\n  jwt:\n    secret: ["hunter2-${oops-hunter2-hunter2-hunter2", { kid: k1, key: "x${y-hunter2" }]\n  apiKey:\n    keys: ["abcdefghij${klmnopqrstu"]\nrateLimit:\n  redis: "redis://user:pa${ss@redis:6379"\nopenapi:\n  info:\n    title: ${TITLE-Shop}\n'
  })
  const secret = 'holds a "${" that is not a substitution spikard knows (the value is not shown: it may hold a secret): write ${VAR} or ${VAR:-default} (a default holds no ${), or $${ for a literal ${'
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'c.yaml', env: {} })), [
    `auth.jwt.secret[0]: ${secret}`,
    `auth.jwt.secret[1].key: ${secret}`,
    `auth.apiKey.keys[0]: ${secret}`,
    `rateLimit.redis: ${secret}`,
    // Any other option is quoted, to show which form was meant.
    'openapi.info.title: "${TITLE-Shop}" is not a substitution spikard knows: write ${VAR} or ${VAR:-default} (a default holds no ${), or $${ for a literal ${'
  ])
})

test('an unset variable is listed with the file\'s other problems, not with what its empty value would break', (t) => {
  const d = tempDir(t, { 'c.yaml': 'server:\n  port: ${NOPE}\n  host: 1\nloging: true\nfoo: ${UNSET_X}\n' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'c.yaml', env: {} })), [
    'server.port: environment variable NOPE is not set and has no default (write ${NOPE:-default} to give one)',
    'foo: environment variable UNSET_X is not set and has no default (write ${UNSET_X:-default} to give one)',
    'loging: unknown key (did you mean "logging"?)',
    'foo: unknown key',
    'server.host: expected a non-empty string, found 1'
  ])
})

test('a substituted value of the wrong type is refused with what was found, and the variable it came from', (t) => {
  const d = tempDir(t, { 'spikard.config.json': '{"server":{"port":"${PORT}"},"requestId":{"header":"x-${A}-${B:-b}"}}' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, env: { PORT: 'eighty', A: 'a b', B: 'c' } })), [
    'server.port: expected an integer >= 0 and <= 65535, found "eighty" (from ${PORT})',
    'requestId.header: expected a header name, found "x-a b-c" (from ${A}, ${B})'
  ])
})

test('a number JSON cannot write (YAML .inf and .nan, JSON 1e400) is reported as what it is, not as null', (t) => {
  const d = tempDir(t, {
    'inf.yaml': 'server:\n  port: .inf\n  host: [1, .nan]\n',
    'minus.yaml': 'server:\n  port: -.inf\n',
    'nan.yaml': 'server:\n  port: .nan\n',
    'big.json': '{"server":{"port":1e400}}'
  })
  const port = 'server.port: expected an integer >= 0 and <= 65535, found'
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'inf.yaml' })), ['server.host: expected a non-empty string, found a list', `${port} Infinity`])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'minus.yaml' })), [`${port} -Infinity`])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'nan.yaml' })), [`${port} NaN`])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'big.json' })), [`${port} Infinity`])
})

test('a file that does not parse, or is not a mapping, is refused without quoting it: it may hold secrets', (t) => {
  const d = tempDir(t, {
    'quote.yaml': 'server:\n  port: 8000\nauth: { jwt: { secret: "hunter2-hunter2-hunter2\n',
    'token.json': '{"server":{"port":8000},"auth":{"jwt":{"secret":hunter2-hunter2}}}',
    '.env': 'DB_PASSWORD=hunter2-hunter2\nSTRIPE_KEY=sk_live_hunter2\n'
  })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'quote.yaml' })), ['not valid YAML: Missing closing "quote (line 4, column 1)'])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'token.json' })), ['not valid JSON: Unexpected token \'h\' (line 1, column 49)'])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: '.env' })), ['(root): expected an object, found a string (not shown: it may hold a secret)'])
})

test('a YAML file holding two documents says so, and where the second starts', (t) => {
  const d = tempDir(t, { 'two.yaml': 'server:\n  port: 8001\n---\nserver:\n  port: 8002\n' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'two.yaml' })), ['not valid YAML: a second document starts (line 3, column 1): a config file holds one'])
})

test('text after the JSON value is placed once, by line and column, on every Node', (t) => {
  // V8 says `... after JSON at position 22`, and from Node 22 also `(line 2 column 1)`.
  const d = tempDir(t, { 'after.json': '{"server":{"port":1}}\n}' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'after.json' })), ['not valid JSON: Unexpected non-whitespace character after JSON (line 2, column 1)'])
})

test('a key set twice in one JSON object is refused, as YAML refuses it; the same key in two objects is fine', (t) => {
  const d = tempDir(t, {
    'twice.json': '{\n  "server": { "port": 8001 },\n  "server": { "host": "127.0.0.2" }\n}',
    'nested.json': '{ "server": { "port": 8001, "host": "a\\"b", "port": 9 } }',
    'apart.json': '{ "server": { "port": 8001 }, "requestId": { "header": "x-id" }, "health": { "liveness": "/l" } }'
  })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'twice.json' })), ['not valid JSON: "server" is set twice in one object (line 3, column 3)'])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'nested.json' })), ['not valid JSON: "port" is set twice in one object (line 1, column 45)'])
  assert.equal(loadConfig({ cwd: d, file: 'apart.json' }).config.server.port, 8001)
})

test('YAML merge keys merge an anchored mapping, a key written beside them wins, and the key protections still hold', (t) => {
  const d = tempDir(t, {
    'alias.yaml': 'server:\n  port: 8000\napp: *routes\n',
    'merge.yaml': 'openapi:\n  info: &info\n    title: Shop\n    version: 1.0.0\n    description: The shop API\nasyncapi:\n  info:\n    <<: *info\n    title: Shop events\n',
    'after.yaml': 'openapi:\n  info: &info { title: Shop, version: 1.0.0 }\nasyncapi:\n  info:\n    title: Shop events\n    <<: *info\n',
    'list.yaml': 'server:\n  <<: [{ port: 8006 }, { port: 1, host: 127.0.0.3 }]\n',
    'proto.yaml': 'server:\n  <<: { __proto__: { port: 1 }, constructor: 1, port: 8003 }\n',
    'twice.yaml': 'server:\n  <<: { port: 1 }\n  port: 8004\n  port: 8005\n',
    'quoted.yaml': 'server:\n  "<<": { port: 1 }\n',
    'scalar.yaml': 'server:\n  port: 8001\n  <<: 5\n',
    'scalars.yaml': 'a: &a 1\nserver:\n  <<: [{ port: 8001 }, *a]\n'
  })
  const info = (file: string): unknown => (loadConfig({ cwd: d, file, env: {} }).config.asyncapi as { info: unknown }).info
  assert.deepEqual(info('merge.yaml'), { title: 'Shop events', version: '1.0.0', description: 'The shop API' })
  assert.deepEqual(info('after.yaml'), { title: 'Shop events', version: '1.0.0' })
  // A list of mappings: the first to hold a key gives it.
  const { host, port } = loadConfig({ cwd: d, file: 'list.yaml', env: {} }).config.server
  assert.deepEqual({ host, port }, { host: '127.0.0.3', port: 8006 })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'proto.yaml', env: {} })), ['server.__proto__: unknown key', 'server.constructor: unknown key'])
  assert.equal(({} as Record<string, unknown>).port, undefined, 'a merged __proto__ polluted Object.prototype')
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'twice.yaml', env: {} })), ['not valid YAML: Map keys must be unique (line 4, column 3)'])
  // Quoted, "<<" is a key like any other.
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'quoted.yaml', env: {} })), ['server."<<": unknown key'])
  // A merge key given a scalar, or a list holding an alias of one: where it is.
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'scalar.yaml', env: {} })), ['not valid YAML: Merge sources must be maps or map aliases (line 3, column 3)'])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'scalars.yaml', env: {} })), ['not valid YAML: Merge sources must be maps or map aliases (line 3, column 3)'])
  // An alias of an anchor not set before it: where the alias is.
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'alias.yaml', env: {} })), ['not valid YAML: Unresolved alias (the anchor must be set before the alias): routes (line 3, column 6)'])
})

test('a YAML tag other than a plain value\'s is refused naming the key and the place, not read as an object without keys or as text', async (t) => {
  const d = tempDir(t, {
    'omap.yaml': 'server: !!omap [port: 1]\n',
    'timestamp.yaml': 'compression: !!timestamp 2001-12-14\n',
    'set.yaml': 'server:\n  trustProxy: [10.0.0.1, !!set { 10.0.0.2 }]\n',
    'binary.yaml': 'rateLimit:\n  redis: !!binary cmVkaXM6Ly86aHVudGVyMkBob3N0\n',
    'function.yaml': 'server:\n  host: !!js/function "function () { return 1 }"\n',
    'custom.yaml': 'server:\n  host: !env HOST\n',
    'plain.yaml': 'server:\n  port: !!str 8001\n  host: !<tag:yaml.org,2002:str> 127.0.0.2\n  trustProxy: ! 10.0.0.1\nopenapi:\n  info: !!map { title: Shop }\n  tags: !!seq []\n'
  })
  const plain = 'spikard reads plain values only (strings, numbers, booleans, null, mappings and lists), tagged at most !!str, !!int, !!float, !!bool, !!null, !!map or !!seq'
  const warnings: Error[] = []
  const onWarning = (w: Error): void => { warnings.push(w) }
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  for (const [file, problem] of [
    ['omap.yaml', 'server: YAML tag !!omap (line 1, column 16)'],
    ['timestamp.yaml', 'compression: YAML tag !!timestamp (line 1, column 26)'],
    ['set.yaml', 'server.trustProxy[1]: YAML tag !!set (line 2, column 32)'],
    // The value, a Redis URL with its password, is not shown.
    ['binary.yaml', 'rateLimit.redis: YAML tag !!binary (line 2, column 19)'],
    ['function.yaml', 'server.host: YAML tag !!js/function (line 2, column 23)'],
    ['custom.yaml', 'server.host: YAML tag !env (line 2, column 14)']
  ]) {
    assert.deepEqual(refused(() => loadConfig({ cwd: d, file, env: {} })), [`${problem}: ${plain}`], file)
  }
  const { server, openapi } = loadConfig({ cwd: d, file: 'plain.yaml', env: {} }).config
  assert.deepEqual({ port: server.port, host: server.host, trustProxy: server.trustProxy }, { port: 8001, host: '127.0.0.2', trustProxy: '10.0.0.1' })
  assert.deepEqual(openapi === false ? undefined : openapi.info, { title: 'Shop' })
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(warnings.map((w) => w.message), [])
})

test('a JSON file starting with a byte order mark is read', (t) => {
  const d = tempDir(t, { 'bom.json': '\uFEFF{"server":{"port":8001}}' })
  assert.equal(loadConfig({ cwd: d, file: 'bom.json' }).config.server.port, 8001)
})

test('unparsable files and missing files are refused with the file named', (t) => {
  const d = tempDir(t, { 'bad.yaml': 'server: [unclosed', 'bad.json': '{"server": }' })
  assert.match(refused(() => loadConfig({ cwd: d, file: 'bad.yaml' }))[0], /^not valid YAML: /)
  assert.match(refused(() => loadConfig({ cwd: d, file: 'bad.json' }))[0], /^not valid JSON: /)
  assert.match(refused(() => loadConfig({ cwd: d, file: 'nope.yaml' }))[0], /^file not found: .*nope\.yaml$/)
  try { loadConfig({ cwd: d, file: 'bad.yaml' }) } catch (e) { assert.match((e as Error).message, /^Invalid spikard config .*bad\.yaml:\n {2}- not valid YAML/) }
})

test('an empty config file means every default: the production features on, auth, cors, rateLimit, requestContext and static off', (t) => {
  const d = tempDir(t, { 'spikard.config.yaml': '# nothing yet\n' })
  const { config } = loadConfig({ cwd: d })
  const { raw: _raw, ...resolved } = config as typeof config & { raw?: unknown }
  assert.deepEqual(resolved, {
    server: { host: '127.0.0.1', port: 8000, trustProxy: false, logger: { level: 'info', pretty: false, buffer: 0 } },
    ...resolveSpikardOptions({})
  })
  assert.deepEqual(Object.entries(resolveSpikardOptions({})).filter(([, v]) => v === false).map(([k]) => k).sort(), ['auth', 'cors', 'rateLimit', 'requestContext', 'static'])
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

test('server.trustProxy with an address Fastify cannot read fails at startup naming the key, what was expected and the address', async () => {
  const expected = 'server.trustProxy: expected IP addresses or CIDR ranges (or loopback, linklocal, uniquelocal), found '
  for (const [trustProxy, found] of [
    ['notanip', 'an invalid IP address: notanip'],
    ['10.0.0.1, 10.0.0.0/99', 'an invalid range on address: 10.0.0.0/99'],
    [['loopback', 'bogus'], 'an invalid IP address: bogus']
  ] as const) {
    await assert.rejects(createServer({ server: { trustProxy: trustProxy as string | string[], logger: { level: 'silent' } } }),
      (error: unknown) => error instanceof SpikardConfigError && error.source === 'config' && error.problems.length === 1 && error.problems[0] === expected + found)
  }
  const app = await createServer({ server: { trustProxy: '10.0.0.1, uniquelocal', logger: { level: 'silent' } } })
  await app.close()
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

test('${VAR} counts only own string entries of the environment: members of Object.prototype are unset variables', (t) => {
  const d = tempDir(t, {
    'c.yaml': 'server:\n  host: ${toString}\n  port: ${__proto__:-8001}\nrequestId:\n  header: x-${constructor}-id\nauth:\n  jwt:\n    algorithms: [HS256]\n    secret: ${hasOwnProperty}\n',
    'port.yaml': 'server:\n  port: ${__proto__:-8001}\n  host: ${valueOf:-localhost}\n'
  })
  const unset = (name: string): string => `environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)`
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'c.yaml', env: {} })), [
    `server.host: ${unset('toString')}`,
    `requestId.header: ${unset('constructor')}`,
    `auth.jwt.secret: ${unset('hasOwnProperty')}`
  ])
  // The default applies: __proto__ and valueOf are not variables of this environment.
  assert.deepEqual(loadConfig({ cwd: d, file: 'port.yaml', env: {} }).config.server, {
    host: 'localhost', port: 8001, trustProxy: false, logger: { level: 'info', pretty: false, buffer: 0 }
  })
  // Inherited entries do not count either, nor values that are not strings.
  const inherited = Object.create({ PORT: '8123' }) as Record<string, string | undefined>
  assert.equal(loadConfig({ cwd: d, file: 'port.yaml', env: inherited }).config.server.port, 8001)
  const odd = { __proto__: null, valueOf: 42 } as unknown as Record<string, string | undefined>
  assert.equal(loadConfig({ cwd: d, file: 'port.yaml', env: odd }).config.server.host, 'localhost')
  // process.env itself: an own entry named like a prototype member is a variable like any other.
  assert.equal(loadConfig({ cwd: d, file: 'port.yaml', env: { valueOf: 'example.org' } }).config.server.host, 'example.org')
})

test('keys named like Object.prototype members are unknown keys, at any depth, in JSON and YAML', (t) => {
  const d = tempDir(t, {
    'c.json': '{"toString":1,"server":{"constructor":{"port":1},"logger":{"hasOwnProperty":true}},"__proto__":{"polluted":true},"logging":{"__proto__":{"level":"debug"}}}',
    'c.yaml': 'toString: 1\nserver:\n  constructor: { port: 1 }\n  logger:\n    hasOwnProperty: true\n__proto__:\n  polluted: true\nlogging:\n  __proto__: { level: debug }\n'
  })
  for (const file of ['c.json', 'c.yaml']) {
    assert.deepEqual(refused(() => loadConfig({ cwd: d, file, env: {} })), [
      'toString: unknown key',
      '__proto__: unknown key',
      'server.constructor: unknown key',
      'server.logger.hasOwnProperty: unknown key',
      'logging.__proto__: unknown key'
    ], file)
    assert.equal(({} as Record<string, unknown>).polluted, undefined, `${file} polluted Object.prototype`)
  }
})

test('a key that is not a plain name is shown quoted and escaped: no control character reaches the terminal, no dot reads as a path', (t) => {
  const d = tempDir(t, {
    'c.json': '{"\\u001b[31mred":1,"a\\nb":"${UNSET_A}","server":{"x\\ty":1,"log-level":1,"\\u009b2J":1},"server.port":1,"$x_1":1}',
    'c.yaml': '"\\e[31mred": 1\n"a\\nb": ${UNSET_A}\nserver:\n  "x\\ty": 1\n  log-level: 1\n  "\\x9b2J": 1\nserver.port: 1\n$x_1: 1\n',
    'twice.json': '{"\\u009b":1,"\\u009b":2}',
    'bidi.yaml': 'server:\n  "\\u202Eevil": 1\n'
  })
  for (const file of ['c.json', 'c.yaml']) {
    assert.deepEqual(refused(() => loadConfig({ cwd: d, file, env: {} })), [
      '"a\\nb": environment variable UNSET_A is not set and has no default (write ${UNSET_A:-default} to give one)',
      '"\\u001b[31mred": unknown key',
      '"a\\nb": unknown key (did you mean "app"?)',
      '"server.port": unknown key',
      '$x_1: unknown key',
      'server."x\\ty": unknown key',
      'server.log-level: unknown key',
      'server."\\u009b2J": unknown key'
    ], file)
  }
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'twice.json' })), ['not valid JSON: "\\u009b" is set twice in one object (line 1, column 13)'])
  // A bidirectional-text control would make the terminal show the name reversed.
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'bidi.yaml' })), ['server."\\u202eevil": unknown key'])
})

test('a config nested too deep is refused naming the file, without overflowing the stack (JSON and YAML)', (t) => {
  const deepJson = '{"server":{"x":' + '['.repeat(200_000) + ']'.repeat(200_000) + '}}'
  const d = tempDir(t, {
    'deep.json': deepJson,
    'deep-flow.yaml': 'server:\n  x: ' + '['.repeat(200_000) + ']'.repeat(200_000) + '\n',
    // Compact block sequences: two characters a level; yaml's composer is recursive.
    'deep-block.yaml': 'server:\n  x:\n    ' + '- '.repeat(200_000) + 'end\n',
    'edge.json': '{"server":{"x":' + '['.repeat(62) + ']'.repeat(62) + '}}',
    'over.json': '{"server":{"x":' + '['.repeat(63) + ']'.repeat(63) + '}}'
  })
  for (const file of ['deep.json', 'deep-flow.yaml', 'deep-block.yaml', 'over.json']) {
    try {
      loadConfig({ cwd: d, file, env: {} })
      assert.fail(`${file} was accepted`)
    } catch (error) {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, ['nested too deep: more than 64 levels of objects and lists'], file)
      assert.equal(error.message, `Invalid spikard config ${join(d, file)}:\n  - nested too deep: more than 64 levels of objects and lists`)
    }
  }
  // 64 levels (the root object, server, then 62 lists) is the limit, not an error of its own: the key is.
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'edge.json', env: {} })), ['server.x: unknown key'])
})

test('a config file over 1 MiB is refused before it is parsed, naming the file, its size and the cap', (t) => {
  const big = 'server:\n  port: 1\n# ' + 'x'.repeat(1024 * 1024) + '\n'
  const d = tempDir(t, { 'big.yaml': big, 'big.json': ' '.repeat(1024 * 1024) + '{}', 'fits.json': ' '.repeat(1024 * 1024 - 2) + '{}' })
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'big.yaml' })), [
    `${join(d, 'big.yaml')} is ${Buffer.byteLength(big)} bytes; a config file may hold at most 1048576 bytes (1 MiB)`
  ])
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'big.json' })), [
    `${join(d, 'big.json')} is 1048578 bytes; a config file may hold at most 1048576 bytes (1 MiB)`
  ])
  assert.equal(loadConfig({ cwd: d, file: 'fits.json' }).config.server.port, 8000)
})

test('YAML aliases cannot expand a small file into a huge config', (t) => {
  // "Billion laughs": each level repeats the one before nine times.
  const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
  for (let i = 1; i < 10; i++) {
    const prev = String.fromCharCode(96 + i)
    const name = String.fromCharCode(97 + i)
    lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`)
  }
  // Wide rather than deep: one list of 5,000 values aliased 90 times (450,000 values), which yaml allows.
  const wide = `x: &x [${Array(5000).fill('1').join(', ')}]\ny: [${Array(90).fill('*x').join(', ')}]\n`
  const d = tempDir(t, { 'laughs.yaml': lines.join('\n') + '\n', 'wide.yaml': wide })
  const started = Date.now()
  assert.match(refused(() => loadConfig({ cwd: d, file: 'laughs.yaml' }))[0], /^not valid YAML: Excessive alias count/)
  assert.deepEqual(refused(() => loadConfig({ cwd: d, file: 'wide.yaml' })), [
    'too many values: more than 100000 keys, list items and scalars once YAML aliases are expanded'
  ])
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`)
})

test('options in code that JSON cannot show (a BigInt, a cycle, a list nested 200,000 deep) are refused with a message, not a crash', async () => {
  let deep: unknown[] = []
  for (let i = 0; i < 200_000; i++) deep = [deep]
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  for (const [host, found] of [[10n, '10n'], [deep, 'a list'], [cycle, 'an object']] as const) {
    await assert.rejects(createServer({ server: { host } } as never), (error: unknown) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, [`server.host: expected a non-empty string, found ${found}`])
      return true
    })
  }
})

test('server.logger.pretty without pino-pretty installed fails at startup saying how to fix it', async () => {
  const missing = (id: string): string => { throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' }) }
  assert.throws(() => assertPrettyInstalled(missing), (error: unknown) => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.deepEqual(error.problems, ['server.logger.pretty: pino-pretty is not installed; run `npm install pino-pretty`, or set pretty: false'])
    assert.equal(error.message, 'Invalid spikard config:\n  - server.logger.pretty: pino-pretty is not installed; run `npm install pino-pretty`, or set pretty: false')
    return true
  })
  // The resolver is asked for pino-pretty, and nothing is thrown when it finds it.
  const asked: string[] = []
  assertPrettyInstalled((id) => { asked.push(id); return `/x/node_modules/${id}/index.js` })
  assert.deepEqual(asked, ['pino-pretty'])
  // The default resolver finds the dev dependency here; createServer with pretty: true builds.
  assert.doesNotThrow(() => assertPrettyInstalled())
  const app = await createServer({ server: { logger: { pretty: true, level: 'silent' } } })
  await app.close()
})

test('createServer: app.listen() listens at server.host and server.port; what the call passes wins', async (t) => {
  const taken = await createServer({ server: { port: 0, logger: { level: 'silent' } } })
  t.after(() => taken.close())
  await taken.listen()
  const port = (taken.server.address() as { port: number }).port
  await taken.close()
  // The port the config names (free again now), on the configured host.
  const app = await createServer({ server: { host: '127.0.0.1', port, logger: { level: 'silent' } } })
  t.after(() => app.close())
  assert.equal(await app.listen(), `http://127.0.0.1:${port}`)
  await app.close()
  const other = await createServer({ server: { port, logger: { level: 'silent' } } })
  t.after(() => other.close())
  assert.notEqual(await other.listen({ port: 0 }), `http://127.0.0.1:${port}`)
})

test('createServer: app.listen({ path }) listens on that Unix socket, not at server.host and server.port', async (t) => {
  // Node's listen() takes a port over a path: with the configured ones merged in, a server
  // meant for a socket behind a local proxy listened on TCP (127.0.0.1:8000) instead.
  const dir = mkdtempSync(join(tmpdir(), 'spikard-socket-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'api.sock')
  const app = await createServer({ server: { host: '127.0.0.1', port: 0, logger: { level: 'silent' } } })
  t.after(() => app.close())
  await app.listen({ path })
  assert.equal(app.server.address(), path)
  assert.ok(existsSync(path))
})
