/**
 * `spikard openapi`, run as a user runs it: a child process per case, its stdout compared
 * with what a server built in-process from the same config serves at /openapi.json and
 * /openapi.yaml.
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { parse as parseYaml } from 'yaml'
import { runCli, type CliResult } from './helpers.js'
import { loadConfig } from '../src/config/load.js'
import { createServer } from '../src/server.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
/** tsx as an absolute URL, so the child can load it whatever its working directory. */
const PARALLEL = { concurrency: 2 }

async function run (t: TestContext, args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  return await runCli(args, { cwd, env, t })
}

/** A temp dir (its real path) holding `files`; removed after the test. */
async function fixture (t: TestContext, files: Record<string, string>): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'spikard-openapi-')))
  t.after(() => rm(dir, { recursive: true, force: true }))
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content)
  return dir
}

/** What a server built from `dir`'s config serves at /openapi.json and /openapi.yaml (its logs dropped). */
async function served (dir: string, configFile = 'spikard.config.yaml'): Promise<{ json: string, yaml: string }> {
  const { config } = loadConfig({ file: join(dir, configFile) })
  config.server.logger.pretty = false
  delete (config.server.logger as { file?: string }).file
  const app = await createServer(config, { baseDir: dir, logStream: new Writable({ write: (_chunk, _encoding, done) => done() }) })
  try {
    const [json, yaml] = await Promise.all(['/openapi.json', '/openapi.yaml'].map((url) => app.inject(url)))
    assert.equal(json.statusCode, 200)
    assert.equal(yaml.statusCode, 200)
    return { json: json.body, yaml: yaml.body }
  } finally {
    await app.close()
  }
}

/** The command failed: exit 1, nothing on stdout, no stack trace; its stderr without the app's own output (log lines, console). */
function failed (r: CliResult): string {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}; stdout: ${r.stdout}; stderr: ${r.stderr}`)
  assert.equal(r.stdout, '')
  assert.doesNotMatch(r.stderr, /\n {4}at /, 'no stack trace')
  const message = r.stderr.split('\n').filter((line) => !line.startsWith('{"level":') && line !== 'routes: console output').join('\n')
  assert.ok(message.startsWith('spikard: ') && message.endsWith('\n'), r.stderr)
  return message
}

/** A routes module with schemas, a hidden route, and output of every kind while it loads. */
const ROUTES_MJS = `export default async function routes (app) {
  app.log.info('routes: registering')
  app.log.debug('routes: a debug line')
  console.log('routes: console output')
  const User = { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } }, required: ['id'] }
  app.get('/users/:id', {
    schema: { summary: 'One user', tags: ['users'], params: { type: 'object', properties: { id: { type: 'string' } } }, response: { 200: User } }
  }, async (request) => ({ id: request.params.id }))
  app.post('/users', { schema: { tags: ['users'], body: User, response: { 201: User } } }, async (request, reply) => reply.code(201).send(request.body))
  app.get('/internal', { config: { openapi: false } }, async () => 'hidden')
}
`

const PACKAGE_JSON = JSON.stringify({ name: 'demo-api', version: '1.2.3' })

/** openapi on (explicitly, so NODE_ENV of the test run does not matter), the logs at debug. */
const CONFIG_YAML = `server:
  logger:
    level: debug
logging: true
openapi:
  info:
    description: The demo API
  tags:
    - name: users
      description: People
app: ./routes.mjs
`

function app (config = CONFIG_YAML, routes = ROUTES_MJS): Record<string, string> {
  return { 'package.json': PACKAGE_JSON, 'spikard.config.yaml': config, 'routes.mjs': routes }
}

describe('spikard openapi', PARALLEL, () => {
  it('prints, indented, the document the server serves at /openapi.json, and nothing else on stdout', async (t) => {
    const dir = await fixture(t, app())
    const r = await run(t, ['openapi'], dir)
    assert.equal(r.code, 0, r.stderr)
    const document = JSON.parse(r.stdout)
    const { json } = await served(dir)
    assert.deepEqual(document, JSON.parse(json))
    // The same keys in the same order: the served text, re-indented.
    assert.equal(r.stdout, `${JSON.stringify(JSON.parse(json), null, 2)}\n`)
    assert.equal(document.info.title, 'demo-api')
    assert.equal(document.info.version, '1.2.3')
    assert.deepEqual(Object.keys(document.paths).filter((p) => p.startsWith('/users')).sort(), ['/users', '/users/{id}'])
    assert.equal(document.paths['/internal'], undefined)
    // The logs (info and debug, during the build and the close) and the console went to stderr.
    assert.match(r.stderr, /"msg":"routes: registering"/)
    assert.match(r.stderr, /"msg":"routes: a debug line"/)
    assert.match(r.stderr, /^routes: console output$/m)
    assert.match(r.stderr, /"msg":"shutdown complete"/)
  })

  it('--config names the file; it is found from another directory', async (t) => {
    const dir = await fixture(t, { ...app(), 'spikard.config.yaml': '', 'api.yaml': CONFIG_YAML })
    const elsewhere = await fixture(t, {})
    const r = await run(t, ['openapi', '--config', join(dir, 'api.yaml')], elsewhere)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), JSON.parse((await served(dir, 'api.yaml')).json))
  })

  it('--format yaml prints the document the server serves at /openapi.yaml', async (t) => {
    const dir = await fixture(t, app())
    const r = await run(t, ['openapi', '--format', 'yaml'], dir)
    assert.equal(r.code, 0, r.stderr)
    const { json, yaml } = await served(dir)
    assert.equal(r.stdout, yaml)
    assert.deepEqual(parseYaml(r.stdout), JSON.parse(json))
  })

  it('--format json is the default, and explicit', async (t) => {
    const dir = await fixture(t, app())
    const [implicit, explicit] = await Promise.all([run(t, ['openapi'], dir), run(t, ['openapi', '--format', 'json'], dir)])
    assert.equal(explicit.code, 0, explicit.stderr)
    assert.equal(explicit.stdout, implicit.stdout)
    assert.doesNotThrow(() => JSON.parse(explicit.stdout))
  })

  it('--out writes the file, says where on stderr, and prints nothing on stdout', async (t) => {
    const dir = await fixture(t, app())
    const { json, yaml } = await served(dir)
    const cases: Array<[string[], string, string]> = [
      [['--out', 'doc.json'], 'doc.json', 'json'],
      [['-o', 'doc.yaml'], 'doc.yaml', 'yaml'],
      [['--out', 'doc.YML'], 'doc.YML', 'yaml'],
      [['--out', 'doc.yaml', '--format', 'json'], 'doc.yaml', 'json']
    ]
    for (const [args, name, format] of cases) {
      const r = await run(t, ['openapi', ...args], dir)
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout, '', args.join(' '))
      assert.match(r.stderr, new RegExp(`^spikard: wrote the OpenAPI document \\(${format}\\) to ${join(dir, name).replace(/\./g, '\\.')}$`, 'm'))
      const written = await readFile(join(dir, name), 'utf8')
      assert.equal(written, format === 'json' ? `${JSON.stringify(JSON.parse(json), null, 2)}\n` : yaml, args.join(' '))
    }
  })

  it('stdout stays the document with pretty logs, and with logs to a file', async (t) => {
    const pretty = CONFIG_YAML.replace('level: debug', 'level: debug\n    pretty: true')
    const toFile = CONFIG_YAML.replace('level: debug', 'level: debug\n    file: ./app.log')
    for (const config of [pretty, toFile]) {
      const dir = await fixture(t, app(config))
      const r = await run(t, ['openapi'], dir)
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(JSON.parse(r.stdout), JSON.parse((await served(dir)).json))
      assert.match(r.stderr, /^routes: console output$/m)
      if (config === pretty) {
        // Not pretty-printed here: pino-pretty would write to stdout.
        assert.match(r.stderr, /"msg":"routes: registering"/)
      } else {
        assert.doesNotMatch(r.stderr, /routes: registering/)
        assert.match(await readFile(join(dir, 'app.log'), 'utf8'), /"msg":"routes: registering"/)
      }
    }
  })

  it('NODE_ENV=production with openapi set: the document', async (t) => {
    const dir = await fixture(t, app())
    const r = await run(t, ['openapi'], dir, { NODE_ENV: 'production' })
    assert.equal(r.code, 0, r.stderr)
    assert.equal(JSON.parse(r.stdout).info.title, 'demo-api')
  })

  describe('exits 1 with a message on stderr and nothing on stdout', PARALLEL, () => {
    it('openapi: false', async (t) => {
      const dir = await fixture(t, app('openapi: false\napp: ./routes.mjs\n'))
      assert.equal(failed(await run(t, ['openapi'], dir)),
        `spikard: the openapi feature is off in ${join(dir, 'spikard.config.yaml')} (openapi: false), so the app has no OpenAPI document; set openapi: true (or its options) to turn it on\n`)
    })

    it('NODE_ENV=production without an openapi key', async (t) => {
      const dir = await fixture(t, app('app: ./routes.mjs\n'))
      assert.equal(failed(await run(t, ['openapi'], dir, { NODE_ENV: 'production' })),
        `spikard: the openapi feature is off: NODE_ENV=production turns it off unless the config sets it; add openapi: true to ${join(dir, 'spikard.config.yaml')} to turn it on\n`)
    })

    it('a bad config, one line per problem', async (t) => {
      const dir = await fixture(t, app('loging: true\nserver:\n  port: ten\n'))
      assert.equal(failed(await run(t, ['openapi'], dir)), `spikard: Invalid spikard config ${join(dir, 'spikard.config.yaml')}:\n` +
        '  - loging: unknown key (did you mean "logging"?)\n' +
        '  - server.port: expected an integer >= 0 and <= 65535, found "ten"\n')
    })

    it('a routes module that throws: the error and where, no stack', async (t) => {
      const dir = await fixture(t, app(CONFIG_YAML, 'export default async function routes (app) {\n  throw new TypeError(\'no database\')\n}\n'))
      assert.equal(failed(await run(t, ['openapi'], dir)),
        `spikard: the app of ${join(dir, 'spikard.config.yaml')} did not load: TypeError: no database (at ${join(dir, 'routes.mjs')}:2:9)\n`)
    })

    it('a routes module that throws when imported, or throws a non-error', async (t) => {
      const dir = await fixture(t, app(CONFIG_YAML, 'throw new Error(\'at import\')\n'))
      assert.match(failed(await run(t, ['openapi'], dir)), /^spikard: the app of \S+ did not load: at import \(at \S+routes\.mjs:1:7\)\n$/)
      await writeFile(join(dir, 'routes.mjs'), 'export default async function routes () { throw \'a string\' }\n')
      assert.match(failed(await run(t, ['openapi'], dir)), /^spikard: the app of \S+ did not load: it threw "a string"\n$/)
    })

    it('a routes module that does not parse, or imports a missing package', async (t) => {
      const dir = await fixture(t, app(CONFIG_YAML, 'export default async function routes (app) { app.get(\'/x\' }\n'))
      assert.match(failed(await run(t, ['openapi'], dir)), /^spikard: the app of \S+ did not load: SyntaxError: .+ \(at \S+routes\.mjs:1\)\n$/)
      await writeFile(join(dir, 'routes.mjs'), 'import "no-such-package-spikard"\nexport default async function routes () {}\n')
      assert.match(failed(await run(t, ['openapi'], dir)), /^spikard: the app of \S+ did not load: Cannot find package 'no-such-package-spikard'/)
    })

    it('a missing routes module, a missing config file', async (t) => {
      const dir = await fixture(t, { 'spikard.config.yaml': 'app: ./missing.mjs\n' })
      assert.equal(failed(await run(t, ['openapi'], dir)), `spikard: Invalid spikard config ${join(dir, 'spikard.config.yaml')}:\n  - app: module not found: ${join(dir, 'missing.mjs')}\n`)
      assert.equal(failed(await run(t, ['openapi', '--config', 'nope.yaml'], dir)),
        `spikard: Invalid spikard config ${join(dir, 'nope.yaml')}:\n  - file not found: ${join(dir, 'nope.yaml')}\n`)
    })

    it('an app that fails when ready', async (t) => {
      const dir = await fixture(t, app(CONFIG_YAML, 'export default async function routes (app) {\n  app.addHook(\'onReady\', async () => { throw new Error(\'not ready\') })\n}\n'))
      assert.match(failed(await run(t, ['openapi'], dir)), /^spikard: the app of \S+ did not load: not ready \(at \S+routes\.mjs:2:\d+\)\n$/)
    })

    it('--format other than json or yaml, naming the flag and the accepted values', async (t) => {
      const dir = await fixture(t, app())
      assert.equal(failed(await run(t, ['openapi', '--format', 'xml'], dir)), 'spikard: --format: expected json or yaml, found "xml"\n')
      assert.equal(failed(await run(t, ['openapi', '--format', 'YAML', '--out', 'doc.yaml'], dir)), 'spikard: --format: expected json or yaml, found "YAML"\n')
    })

    it('--out in a directory that does not exist', async (t) => {
      const dir = await fixture(t, app())
      const out = join(dir, 'missing', 'doc.json')
      assert.match(failed(await run(t, ['openapi', '--out', out], dir)), new RegExp(`^spikard: --out: cannot write ${out.replace(/\./g, '\\.')} \\(ENOENT\\)\n`, 'm'))
    })

    it('start and check refuse --format and --out; openapi refuses --port and --host', async (t) => {
      const dir = await fixture(t, app())
      for (const [command, flag] of [['start', '--format'], ['check', '--format'], ['start', '--out'], ['check', '--out'], ['openapi', '--port'], ['openapi', '--host']]) {
        assert.equal(failed(await run(t, [command, flag, 'x'], dir)), `spikard: unknown option "${flag}" for spikard ${command} (see spikard --help)\n`)
      }
    })
  })

  it('--help describes the command', async (t) => {
    const r = await run(t, ['--help'], ROOT)
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^ {2}spikard openapi \[--config FILE\] \[--format json\|yaml\] \[--out FILE\]$/m)
    assert.match(r.stdout, /compact/)
  })
})
