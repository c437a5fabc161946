/**
 * The root plugin: every feature attaches once, for the whole app, and its hooks run in the
 * order of the features list; the not-found handler gets them too.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import Fastify from 'fastify'
import spikard from '../src/spikard.js'
import { features } from '../src/options.js'

/** A feature's plugin name: `spikard-` and its key in kebab case (`bodyLimit` is `spikard-body-limit`). */
const pluginName = (feature: string): string => `spikard-${feature.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`

/** Each lifecycle hook of one route, as printRoutes({ includeHooks: true }) lists them. */
function hooksOf (tree: string, route: string): Record<string, string[]> {
  const lines = tree.split('\n')
  const start = lines.findIndex((line) => line.endsWith(route))
  assert.notEqual(start, -1, `${route} not in\n${tree}`)
  const hooks: Record<string, string[]> = {}
  for (const line of lines.slice(start + 1)) {
    const match = /• \((\w+)\) (\[.*\])$/.exec(line)
    if (match === null) break
    hooks[match[1]] = (JSON.parse(match[2]) as string[]).map((name) => name.replace(/\(\)$/, ''))
  }
  return hooks
}

test('every feature on: one hook per feature and lifecycle point, in the order of the features list', async (t) => {
  // The static mount's root must exist.
  const root = await mkdtemp(join(tmpdir(), 'spikard-static-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  const app = Fastify()
  t.after(() => app.close())
  // A route registered before spikard, one after, and one in a prefixed plugin: the same hooks.
  app.post('/before', async () => 'before')
  await app.register(spikard, {
    requestContext: true,
    cors: true,
    auth: { apiKey: { keys: ['k'.repeat(20)] } },
    rateLimit: true,
    shutdown: { signals: false },
    stream: { idleTimeout: '5m' },
    sse: true,
    static: { mounts: [{ root, prefix: '/assets' }] }
  })
  app.post('/after', async () => 'after')
  await app.register(async (child) => { child.post('/child', async () => 'child') }, { prefix: '/v1' })
  await app.ready()
  const tree = app.printRoutes({ includeHooks: true, commonPrefix: false })
  // The two `anonymous` hooks are @fastify/websocket's own, registered by the websocket feature
  // just before its hooks: onRequest marks an upgrade request (request.ws, which
  // spikardWebSocketUpgrade reads), onResponse destroys an upgrade's socket.
  const expected = {
    onRequest: ['spikardHostRequired', 'requestContextHook', 'spikardRequestId', 'spikardCors', 'spikardShutdown', 'spikardTimeoutStart', 'spikardRateLimit', 'spikardAuth', 'anonymous', 'spikardWebSocketUpgrade'],
    preParsing: ['spikardRateLimitIdentity', 'spikardBodyLimit'],
    onError: ['spikardRateLimitFailed'],
    preValidation: ['requestContextPreValidationHook'],
    preSerialization: ['spikardStreamIterable'],
    onSend: ['spikardTimeoutStop', 'spikardStream', 'spikardWebSocketRefused', 'spikardCompress'],
    onResponse: ['spikardAccessLog', 'spikardTasks', 'anonymous', 'spikardWebSocketRefusedEnd'],
    onRequestAbort: ['spikardAccessLogAborted', 'spikardTasksAborted']
  }
  for (const route of ['/before (POST)', '/after (POST)', '/v1/child (POST)']) assert.deepStrictEqual(hooksOf(tree, route), expected, route)
  // Every feature is on here, and each registered its plugin.
  assert.deepStrictEqual(Object.keys(app.spikard.options), Object.keys(features))
  for (const feature of Object.keys(features)) {
    assert.notEqual(app.spikard.options[feature as keyof typeof features], false, `${feature} is off`)
    assert.equal(app.hasPlugin(pluginName(feature)), true, pluginName(feature))
  }
  // The registration order (and so the hook order) is the order of the features list.
  assert.deepStrictEqual(Object.keys(features), [
    'openapi', 'asyncapi', 'requestContext', 'requestId', 'logging', 'cors', 'shutdown', 'tasks', 'health', 'timeout', 'rateLimit', 'auth', 'bodyLimit', 'stream', 'sse',
    'websocket', 'static', 'compression'
  ])
})

test('register(spikard) alone: the default features, and nothing of auth, rate limiting, the request context, CORS or static files', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(spikard)
  app.post('/x', async () => 'x')
  await app.ready()
  assert.deepStrictEqual(hooksOf(app.printRoutes({ includeHooks: true, commonPrefix: false }), '/x (POST)'), {
    onRequest: ['spikardHostRequired', 'spikardRequestId', 'spikardShutdown', 'spikardTimeoutStart', 'anonymous', 'spikardWebSocketUpgrade'],
    preParsing: ['spikardBodyLimit'],
    preSerialization: ['spikardStreamIterable'],
    onSend: ['spikardTimeoutStop', 'spikardStream', 'spikardWebSocketRefused', 'spikardCompress'],
    onResponse: ['spikardAccessLog', 'spikardTasks', 'anonymous', 'spikardWebSocketRefusedEnd'],
    onRequestAbort: ['spikardAccessLogAborted', 'spikardTasksAborted']
  })
  for (const plugin of [
    'spikard-openapi', 'spikard-asyncapi', 'spikard-request-id', 'spikard-logging', 'spikard-shutdown', 'spikard-tasks', 'spikard-health', 'spikard-timeout',
    'spikard-body-limit', 'spikard-stream', 'spikard-sse', 'spikard-websocket', 'spikard-compression'
  ]) {
    assert.equal(app.hasPlugin(plugin), true, plugin)
  }
  for (const plugin of ['spikard-auth', 'spikard-rate-limit', 'spikard-request-context', 'spikard-cors', 'spikard-static']) assert.equal(app.hasPlugin(plugin), false, plugin)
  // What a route gets, over inject: an id, the probes, a problem for an unknown path.
  const response = await app.inject({ method: 'POST', url: '/x' })
  assert.match(String(response.headers['x-request-id']), /^[0-9a-f-]{36}$/)
  assert.equal((await app.inject('/livez')).statusCode, 200)
  const missing = await app.inject('/nowhere')
  assert.equal(missing.headers['content-type'], 'application/problem+json; charset=utf-8')
  assert.match(String(missing.headers['x-request-id']), /^[0-9a-f-]{36}$/)
})

test('a feature that is off loads nothing of its own: in production, no OpenAPI, YAML, JWT, rate-limit or static-file library', async () => {
  // A fresh process, so what the other tests loaded does not count. Most of these
  // libraries are CommonJS, yaml is required when a YAML file is read: require's cache
  // lists what was loaded.
  const script = `
    import { createRequire } from 'node:module'
    import Fastify from 'fastify'
    const { default: spikard } = await import(${JSON.stringify(import.meta.resolve('../src/index.ts'))})
    const app = Fastify()
    await app.register(spikard, process.env.OPTIONS === undefined ? {} : JSON.parse(process.env.OPTIONS))
    await app.ready()
    const packages = Object.keys(createRequire(import.meta.url).cache).map((file) => /.*node_modules\\/((?:@[^/]+\\/)?[^/]+)/.exec(file)?.[1])
    console.log(JSON.stringify([...new Set(packages)]))
    await app.close()`
  const loaded = async (options?: object): Promise<string[]> => {
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production', ...(options === undefined ? {} : { OPTIONS: JSON.stringify(options) }) }
    delete env.NODE_TEST_CONTEXT
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, timeout: 30_000 })
    return JSON.parse(stdout.trim().split('\n').at(-1) as string) as string[]
  }
  const OWN = ['@fastify/swagger', '@fastify/swagger-ui', 'yaml', 'fast-jwt', '@fastify/rate-limit', '@fastify/static']
  const defaults = await loaded()
  assert.ok(defaults.includes('fastify') && defaults.includes('ws'), `the features on by default load theirs (websocket: ws): ${defaults.join(', ')}`)
  assert.deepStrictEqual(OWN.filter((name) => defaults.includes(name)), [])
  // Switched on, each feature loads its library.
  const on = await loaded({ openapi: true, rateLimit: { max: 10 }, auth: { jwt: { secret: 's'.repeat(32) } }, static: [{ root: '.', prefix: '/files' }] })
  assert.deepStrictEqual(OWN.filter((name) => !on.includes(name)), [])
})
