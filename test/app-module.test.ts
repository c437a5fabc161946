/**
 * The routes module loader: which way a .ts module is imported (Node's own import where
 * Node strips types, tsx elsewhere), and the errors when neither can load it. A missing tsx
 * is a real failing import of a package that does not exist. This process runs under tsx's
 * hooks, so Node's own stripping is checked for real in test/package.test.ts (a plain node
 * in a project without tsx); here a refusal by it is Node's own error where Node can make
 * one (module.stripTypeScriptTypes).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as nodeModule from 'node:module'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { importTypeScript, loadAppModule, nodeStripsTypes, type TypeScriptLoaders } from '../src/app-module.js'
import { SpikardConfigError } from '../src/errors.js'
import { createServer } from '../src/server.js'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { tempDir } from './helpers.js'

const realTsx: TypeScriptLoaders['tsx'] = async () => await import('tsx/esm/api')
// A specifier no package answers to: the same ERR_MODULE_NOT_FOUND a missing tsx gives.
const missingTsx: TypeScriptLoaders['tsx'] = async () => await import('spikard-test-not-installed' + '/esm/api') as never

const nodeImport = async (url: string): Promise<unknown> => await import(url)
const strip = (nodeModule as { stripTypeScriptTypes?: (code: string) => string }).stripTypeScriptTypes
/** Node's import as Node's stripping would go: its own error for syntax it refuses. */
const strippingImport = async (url: string): Promise<unknown> => {
  strip!(readFileSync(fileURLToPath(url), 'utf8'))
  return await import(url)
}
const NO_STRIP_API = strip === undefined ? `Node ${process.version} has no module.stripTypeScriptTypes` : false

const STRIPS = nodeStripsTypes()
const NO_STRIPPING = STRIPS ? false : `Node ${process.version} does not strip types (22.18+ and 24 do)`

/** A module that reports the URL it was evaluated under: tsx's carries a query, Node's does not. */
const ROUTES = `import type { FastifyInstance } from 'fastify'
export const loadedAs: string = import.meta.url
export default async function routes (app: FastifyInstance): Promise<void> { app.get('/', async () => 'ok') }
routes.loadedAs = loadedAs
`
const ENUM = `enum Color { Red }
export default async function routes (): Promise<void> { void Color.Red }
`

function files (t: { after: (fn: () => void) => void }, contents: Record<string, string>): (name: string) => { file: string, url: string } {
  const dir = tempDir(t, { 'package.json': '{ "type": "module" }', ...contents })
  return (name) => ({ file: join(dir, name), url: pathToFileURL(join(dir, name)).href })
}

function configError (pattern: RegExp): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof SpikardConfigError, String(error))
    assert.equal(error.problems.length, 1)
    assert.match(error.problems[0], pattern)
    return true
  }
}

describe('importing a TypeScript routes module', () => {
  it('nodeStripsTypes follows process.features.typescript', () => {
    const mode = (process.features as { typescript?: unknown }).typescript
    assert.equal(STRIPS, mode === 'strip' || mode === 'transform')
    // Node 22.18+ and 24 strip types by default; 20 cannot.
    const [major, minor] = process.versions.node.split('.').map(Number)
    if (major >= 23 || (major === 22 && minor >= 18)) assert.equal(STRIPS, true)
    if (major < 22) assert.equal(STRIPS, false)
  })

  it('where Node strips types, loadAppModule imports natively: the module runs under its own file URL, not tsx\'s', { skip: NO_STRIPPING }, async (t) => {
    const at = files(t, { 'routes.ts': ROUTES })
    const plugin = await loadAppModule(at('routes.ts').file) as unknown as { loadedAs: string }
    assert.equal(typeof plugin, 'function')
    assert.equal(plugin.loadedAs, at('routes.ts').url)
  })

  it('native import needs no tsx', async (t) => {
    const { file, url } = files(t, { 'routes.ts': ROUTES })('routes.ts')
    const mod = await importTypeScript(file, url, { native: nodeImport, tsx: missingTsx })
    assert.equal(mod.loadedAs, url)
  })

  it('without type stripping, tsx compiles it', async (t) => {
    const { file, url } = files(t, { 'routes.ts': ROUTES })('routes.ts')
    const mod = await importTypeScript(file, url, { native: undefined, tsx: realTsx })
    assert.equal(typeof mod.default, 'function')
    assert.notEqual(mod.loadedAs, url)
    assert.match(mod.loadedAs, /^file:.*routes\.ts\?tsx/)
  })

  it('where Node does not strip types, loadAppModule uses tsx', { skip: STRIPS ? 'this Node strips types' : false }, async (t) => {
    const { file } = files(t, { 'routes.ts': ROUTES })('routes.ts')
    const plugin = await loadAppModule(file) as unknown as { loadedAs: string }
    assert.match(plugin.loadedAs, /^file:.*routes\.ts\?tsx/)
  })

  it('without type stripping and without tsx: a config error that says to install tsx or use Node 22.18+', async (t) => {
    const { file, url } = files(t, { 'routes.ts': ROUTES })('routes.ts')
    await assert.rejects(importTypeScript(file, url, { native: undefined, tsx: missingTsx }), configError(new RegExp(
      `^app: ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is TypeScript and this Node \\(v[\\d.]+\\) does not strip types: \`npm install tsx\` to load it, or use Node 22\\.18 or later, or compile it to JavaScript$`
    )))
  })

  it('an enum refused by Node\'s type stripping: tsx loads it when installed', { skip: NO_STRIP_API }, async (t) => {
    const { file, url } = files(t, { 'enum.ts': ENUM })('enum.ts')
    await assert.rejects(strippingImport(url), { code: 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' })
    const mod = await importTypeScript(file, url, { native: strippingImport, tsx: realTsx })
    assert.equal(typeof mod.default, 'function')
  })

  it('an enum refused by Node\'s type stripping, no tsx: the error names the syntax and the ways out', { skip: NO_STRIP_API }, async (t) => {
    const { file, url } = files(t, { 'enum.ts': ENUM })('enum.ts')
    await assert.rejects(importTypeScript(file, url, { native: strippingImport, tsx: missingTsx }),
      configError(/: Node's type stripping refuses TypeScript-only syntax \(enums, namespaces, parameter properties, import aliases\): TypeScript enum is not supported in strip-only mode; `npm install tsx` to load it anyway, or compile it to JavaScript$/))
  })

  it('a NodeNext `./x.js` import of x.ts: tsx loads it; without tsx the error says to write .ts', async (t) => {
    const at = files(t, { 'main.ts': 'import { x } from \'./dep.js\'\nexport default async function routes (): Promise<void> { void x }\n', 'dep.ts': 'export const x: number = 1\n' })
    const { file, url } = at('main.ts')
    // Node's error as Node 24 raises it (checked for real in test/package.test.ts).
    const notFound = async (): Promise<never> => {
      const dep = new URL('dep.js', url).href
      throw Object.assign(new Error(`Cannot find module '${fileURLToPath(dep)}' imported from ${file}`), { code: 'ERR_MODULE_NOT_FOUND', url: dep })
    }
    assert.equal(typeof (await importTypeScript(file, url, { native: notFound, tsx: realTsx })).default, 'function')
    await assert.rejects(importTypeScript(file, url, { native: notFound, tsx: missingTsx }),
      configError(/does not map the import of .*dep\.js to .*dep\.ts \(write the \.ts extension\)/))
  })

  it('the module\'s own errors pass through untouched, not retried with tsx', async (t) => {
    const { file, url } = files(t, { 'throws.ts': 'throw new Error(\'broken at load: 42\')\n' })('throws.ts')
    let tsxAsked = false
    const tsx: TypeScriptLoaders['tsx'] = async () => { tsxAsked = true; return await realTsx() }
    await assert.rejects(importTypeScript(file, url, { native: nodeImport, tsx }), /^Error: broken at load: 42$/)
    assert.equal(tsxAsked, false)
    await assert.rejects(importTypeScript(file, url, { native: undefined, tsx }), /^Error: broken at load: 42$/)
    assert.equal(tsxAsked, true)
  })
})

describe('a routes plugin that throws synchronously', () => {
  it('a callback plugin\'s throw fails createServer at once with that error; no uncaught exception, no shutdown wait', async () => {
    const started = Date.now()
    const routes = function routes (app: FastifyInstance, _opts: unknown, done: () => void): void {
      app.get('/x', async () => 1)
      ;(null as unknown as () => void)()
      done()
    }
    await assert.rejects(createServer({ app: routes as unknown as FastifyPluginAsync }), TypeError)
    assert.ok(Date.now() - started < 5000)
  })

  it('a plugin returning nothing, without done, still finishes; a fastify-plugin routes plugin keeps its metadata', async () => {
    const sync = await createServer({ app: ((app: FastifyInstance) => { app.get('/sync', async () => ({ ok: true })) }) as unknown as FastifyPluginAsync })
    assert.equal((await sync.inject('/sync')).statusCode, 200)
    await sync.close()
    const shared = await createServer({ app: fp(async (app: FastifyInstance) => { app.decorate('fromRoutes', 42) }) })
    assert.equal((shared as unknown as { fromRoutes: number }).fromRoutes, 42, 'not encapsulated: fastify-plugin\'s skip-override carried over')
    await shared.close()
  })

  it('a thrown or rejected null fails the start (avvio would take it for success)', async () => {
    // What a careless plugin does (the linter refuses it written plainly).
    const raise = (value: unknown): never => { throw value }
    await assert.rejects(createServer({ app: async (app) => { app.get('/half', async () => 1); raise(null) } }), { message: 'the routes plugin threw null' })
    await assert.rejects(createServer({ app: async () => { await Promise.resolve().then(() => raise(undefined)) } }), { message: 'the routes plugin threw undefined' })
  })

  it('an app that names a directory is refused naming the key and the directory, not spikard\'s own file', async (t) => {
    const dir = tempDir(t)
    mkdirSync(join(dir, 'routes'))
    writeFileSync(join(dir, 'routes', 'index.mjs'), 'export default async function routes () {}\n')
    await assert.rejects(loadAppModule(join(dir, 'routes')), (error: SpikardConfigError) => {
      assert.ok(error instanceof SpikardConfigError, String(error))
      assert.deepEqual(error.problems, [`app: expected a JS or TS module file, found the directory ${join(dir, 'routes')}`])
      return true
    })
  })

  it('a module that default-exports a class is refused by name', async (t) => {
    const dir = tempDir(t, { 'klass.mjs': 'export default class App {}\n' })
    await assert.rejects(loadAppModule(join(dir, 'klass.mjs')), (error: SpikardConfigError) => {
      assert.deepEqual(error.problems, [`app: ${join(dir, 'klass.mjs')} must default-export a Fastify plugin (a function), found a class`])
      return true
    })
  })
})
