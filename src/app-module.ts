/**
 * The user's routes module (`app` in a config file): a JS or TS module whose default export
 * is a Fastify plugin. A TypeScript module is imported by Node itself where Node strips
 * types (22.18+, 24), else by tsx, an optional peer loaded only then.
 */
import { existsSync, statSync } from 'node:fs'
import { extname } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { FastifyPluginAsync, FastifyPluginCallback } from 'fastify'
import { SpikardConfigError } from './errors.js'

export type RoutesPlugin = FastifyPluginAsync | FastifyPluginCallback

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx'])

/** How a TypeScript module is imported; the seams exist so tests can choose each path. */
export interface TypeScriptLoaders {
  /** Node's own import, where Node strips types itself (`process.features.typescript`); else undefined. */
  native: ((url: string) => Promise<unknown>) | undefined
  /** Imports tsx's API; rejects when tsx is not installed. */
  tsx: () => Promise<{ tsImport: (url: string, parent: string) => Promise<unknown> }>
}

export function nodeStripsTypes (): boolean {
  const mode = (process.features as { typescript?: string | false }).typescript
  return mode === 'strip' || mode === 'transform'
}

const defaultLoaders: TypeScriptLoaders = {
  native: nodeStripsTypes() ? async (url) => await import(url) : undefined,
  tsx: async () => await import('tsx/esm/api')
}

/** Loads the user's routes module. */
export async function loadAppModule (file: string): Promise<RoutesPlugin> {
  if (!existsSync(file)) throw new SpikardConfigError([`app: module not found: ${file}`], 'config')
  // Node refuses to import a directory with a message naming spikard's own file, not the key.
  if (statSync(file).isDirectory()) throw new SpikardConfigError([`app: expected a JS or TS module file, found the directory ${file}`], 'config')
  const url = pathToFileURL(file).href
  const mod = TS_EXTENSIONS.has(extname(file)) ? await importTypeScript(file, url) : await import(url)
  let plugin = mod?.default
  if (plugin !== null && typeof plugin === 'object' && typeof plugin.default === 'function') plugin = plugin.default
  const found = typeof plugin !== 'function' ? (plugin === undefined ? 'no default export' : typeof plugin) : isClass(plugin) ? 'a class' : undefined
  if (found !== undefined) throw new SpikardConfigError([`app: ${file} must default-export a Fastify plugin (a function), found ${found}`], 'config')
  return plugin
}

const isClass = (fn: Function): boolean => /^class[\s{]/.test(Function.prototype.toString.call(fn))

/**
 * The routes plugin, with what it throws synchronously (a callback-style plugin, a class
 * called as a function) turned into a failed registration, as a rejection already is, and
 * a thrown or rejected null or undefined into an Error.
 * avvio calls a plugin outside any try: the throw became an uncaught exception in the
 * middle of the boot, and the shutdown it started waited its whole budget for a close
 * that could not finish. The plugin's own symbols (fastify-plugin's metadata) carry over.
 */
export function guarded (plugin: RoutesPlugin): RoutesPlugin {
  // avvio takes a null or undefined error for success: `throw null` would load half the routes.
  const failed = (error: unknown): Error => error instanceof Error ? error : error == null ? new Error(`the routes plugin threw ${String(error)}`) : error as Error
  const run = function (this: unknown, instance: Parameters<FastifyPluginCallback>[0], options: Parameters<FastifyPluginCallback>[1], done: (error?: Error) => void): void {
    let result: unknown
    try {
      result = (plugin as FastifyPluginCallback).call(this, instance, options, done)
    } catch (error) {
      return done(failed(error))
    }
    if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
      (result as PromiseLike<unknown>).then(() => { done() }, (error: unknown) => { done(failed(error)) })
    } else if (plugin.length < 3) {
      done()
    }
  }
  for (const key of Object.getOwnPropertySymbols(plugin)) (run as unknown as Record<symbol, unknown>)[key] = (plugin as unknown as Record<symbol, unknown>)[key]
  Object.defineProperty(run, 'name', { value: plugin.name })
  return run
}

/** Imports a TypeScript module: natively where Node can, else (or where Node refuses its syntax) with tsx. */
export async function importTypeScript (file: string, url: string, loaders: TypeScriptLoaders = defaultLoaders): Promise<any> {
  let refused: string | undefined
  if (loaders.native !== undefined) {
    try {
      return await loaders.native(url)
    } catch (error) {
      refused = strippingRefused(error)
      if (refused === undefined) throw error
    }
  }
  let tsx: Awaited<ReturnType<TypeScriptLoaders['tsx']>>
  try {
    tsx = await loaders.tsx()
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw error
    throw new SpikardConfigError([refused === undefined
      ? `app: ${file} is TypeScript and this Node (${process.version}) does not strip types: \`npm install tsx\` to load it, or use Node 22.18 or later, or compile it to JavaScript`
      : `app: ${file}: ${refused}; \`npm install tsx\` to load it anyway, or compile it to JavaScript`], 'config')
  }
  return await tsx.tsImport(url, import.meta.url)
}

/**
 * Why Node's type stripping failed on a module tsx would load, or undefined for any other
 * error (a real syntax error, a missing package): those are the module's own.
 */
function strippingRefused (error: unknown): string | undefined {
  const { code, message, url } = error as { code?: string, message?: string, url?: string }
  if (code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
    return `Node's type stripping refuses TypeScript-only syntax (enums, namespaces, parameter properties, import aliases): ${message ?? ''}`
  }
  // NodeNext style `import './x.js'` naming x.ts: tsx maps it, Node does not.
  if (code === 'ERR_MODULE_NOT_FOUND' && typeof url === 'string' && url.startsWith('file:') && /\.[cm]?js$/.test(url)) {
    const ts = fileURLToPath(url).replace(/js$/, 'ts')
    if (existsSync(ts)) return `Node's type stripping does not map the import of ${fileURLToPath(url)} to ${ts} (write the .ts extension)`
  }
  return undefined
}
