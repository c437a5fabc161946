/**
 * `spikard asyncapi`, run as a user runs it: a child process per case, its stdout compared
 * with what a server built in-process from the same config serves at /asyncapi.json and
 * /asyncapi.yaml (with the servers the command adds: `server.host` and `server.port`).
 */
import { describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { parse as parseYaml } from 'yaml'
import { runCli, type CliResult } from './helpers.js'
import { loadConfig } from '../src/config/load.js'
import { createServer } from '../src/server.js'

const PARALLEL = { concurrency: 2 }

async function run (t: TestContext, args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  return await runCli(args, { cwd, env, t })
}

/** A chat (WebSocket) and a clock (event stream), and a console.log that must not reach stdout. */
const ROUTES = `export default async function routes (app) {
  console.log('routes: console output')
  app.route({ method: 'GET', url: '/chat/:room', websocket: true, config: { websocket: { receive: { oneOf: [
    { type: 'object', properties: { type: { const: 'join' } } },
    { type: 'object', properties: { type: { const: 'say' }, text: { type: 'string' } } }
  ] } } }, handler: (socket) => socket.close() })
  app.get('/ticks', { sse: true, schema: { sse: { type: 'object', properties: { n: { type: 'integer' } } } } }, async () => {})
}
`

async function fixture (t: TestContext, config: string): Promise<string> {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'spikard-asyncapi-')))
  t.after(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'routes.mjs'), ROUTES)
  await writeFile(join(dir, 'package.json'), '{ "name": "chat-app", "version": "3.0.0" }\n')
  await writeFile(join(dir, 'spikard.config.yaml'), `app: ./routes.mjs\nserver:\n  port: 8123\n${config}`)
  return dir
}

/** What a server built from `dir`'s config serves, with `asyncapi.servers` as the command sets it. */
async function served (dir: string, url = 'http://127.0.0.1:8123'): Promise<{ json: string, yaml: string }> {
  const { config } = loadConfig({ file: join(dir, 'spikard.config.yaml') })
  config.server.logger.pretty = false
  if (config.asyncapi !== false && config.asyncapi.servers.length === 0) config.asyncapi.servers = [{ url }]
  const app = await createServer(config, { baseDir: dir, logStream: new Writable({ write: (_chunk, _encoding, done) => done() }) })
  try {
    const [json, yaml] = await Promise.all(['/asyncapi.json', '/asyncapi.yaml'].map((u) => app.inject(u)))
    return { json: json.body, yaml: yaml.body }
  } finally {
    await app.close()
  }
}

function failed (r: CliResult): string {
  assert.equal(r.code, 1, r.stderr)
  assert.equal(r.stdout, '')
  assert.doesNotMatch(r.stderr, /\n {4}at /, 'no stack trace')
  return r.stderr.split('\n').filter((line) => line.startsWith('spikard: ')).join('\n')
}

describe('spikard asyncapi', PARALLEL, () => {
  it('prints the served /asyncapi.json, indented, alone on stdout; its servers are server.host and server.port', async (t) => {
    const dir = await fixture(t, '')
    const r = await run(t, ['asyncapi'], dir)
    assert.equal(r.code, 0, r.stderr)
    const expected = JSON.parse((await served(dir)).json)
    assert.equal(r.stdout, `${JSON.stringify(expected, null, 2)}\n`)
    assert.deepEqual(expected.info, { title: 'chat-app', version: '3.0.0' })
    assert.deepEqual(Object.keys(expected.channels), ['chatByRoom', 'ticks'])
    assert.deepEqual(expected.servers, { ws: { host: '127.0.0.1:8123', protocol: 'ws' }, http: { host: '127.0.0.1:8123', protocol: 'http' } })
    assert.match(r.stderr, /routes: console output/)
  })

  it('--format yaml prints exactly what /asyncapi.yaml serves', async (t) => {
    const dir = await fixture(t, '')
    const r = await run(t, ['asyncapi', '--format', 'yaml'], dir)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, (await served(dir)).yaml)
  })

  it('--out FILE.yaml writes YAML there, nothing on stdout, one line on stderr', async (t) => {
    const dir = await fixture(t, '')
    const r = await run(t, ['asyncapi', '--config', 'spikard.config.yaml', '-o', 'doc.yaml'], dir)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(r.stderr, new RegExp(`spikard: wrote the AsyncAPI document \\(yaml\\) to ${join(dir, 'doc.yaml').replace(/[.]/g, '\\.')}\\n$`))
    const { yaml } = await served(dir)
    assert.equal(await readFile(join(dir, 'doc.yaml'), 'utf8'), yaml)
    assert.equal(parseYaml(yaml).asyncapi, '3.0.0')
  })

  it('asyncapi.servers is kept; a host of 0.0.0.0 is reached as localhost', async (t) => {
    const set = await fixture(t, 'asyncapi:\n  servers:\n    - url: wss://chat.example.com\n')
    const r = await run(t, ['asyncapi'], set)
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout).servers, { wss: { host: 'chat.example.com', protocol: 'wss' }, https: { host: 'chat.example.com', protocol: 'https' } })
    const any = await fixture(t, '')
    await writeFile(join(any, 'spikard.config.yaml'), 'app: ./routes.mjs\nserver:\n  host: 0.0.0.0\n  port: 9000\n')
    const r2 = await run(t, ['asyncapi'], any)
    assert.equal(r2.code, 0, r2.stderr)
    assert.equal(JSON.parse(r2.stdout).servers.ws.host, 'localhost:9000')
    // Port 0 is chosen when listening: no server rather than one at port 0.
    await writeFile(join(any, 'spikard.config.yaml'), 'app: ./routes.mjs\nserver:\n  port: 0\n')
    const r3 = await run(t, ['asyncapi'], any)
    assert.equal(r3.code, 0, r3.stderr)
    assert.equal(JSON.parse(r3.stdout).servers, undefined)
    assert.match(r3.stderr, /server\.port is 0 \(chosen when the server listens\): the document names no server; set asyncapi\.servers/)
  })

  it('exits 1 with one line when the feature is off, by the config or by production', async (t) => {
    const off = await fixture(t, 'asyncapi: false\n')
    assert.match(failed(await run(t, ['asyncapi'], off)), /^spikard: the asyncapi feature is off in .*spikard\.config\.yaml \(asyncapi: false\)/)
    const prod = await fixture(t, '')
    assert.match(failed(await run(t, ['asyncapi'], prod, { NODE_ENV: 'production' })), /^spikard: the asyncapi feature is off: NODE_ENV=production turns it off unless the config sets it; add asyncapi: true/)
    const r = await run(t, ['asyncapi'], await fixture(t, 'asyncapi: true\n'), { NODE_ENV: 'production' })
    assert.equal(r.code, 0, r.stderr)
  })

  it('exits 1 for a bad --format, an unknown option, or an app that does not load', async (t) => {
    const dir = await fixture(t, '')
    assert.equal(failed(await run(t, ['asyncapi', '--format', 'xml'], dir)), 'spikard: --format: expected json or yaml, found "xml"')
    assert.equal(failed(await run(t, ['asyncapi', '--port', '1'], dir)), 'spikard: unknown option "--port" for spikard asyncapi (see spikard --help)')
    await writeFile(join(dir, 'routes.mjs'), 'export default async function routes () { throw new TypeError(\'broken\') }\n')
    assert.match(failed(await run(t, ['asyncapi'], dir)), /^spikard: the app of .*spikard\.config\.yaml did not load: TypeError: broken/)
  })
})
