/** The user's routes module (`app` in a config file): a JS or TS module whose default export is a Fastify plugin. */
import { existsSync } from 'node:fs'
import { extname } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyPluginAsync, FastifyPluginCallback } from 'fastify'
import { SpikardConfigError } from './errors.js'

export type RoutesPlugin = FastifyPluginAsync | FastifyPluginCallback

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx'])

/** Loads the user's routes module; a TypeScript module is compiled on the fly by tsx. */
export async function loadAppModule (file: string): Promise<RoutesPlugin> {
  if (!existsSync(file)) throw new SpikardConfigError([`app: module not found: ${file}`], 'config')
  const url = pathToFileURL(file).href
  let mod: any
  if (TS_EXTENSIONS.has(extname(file))) {
    const { tsImport } = await import('tsx/esm/api')
    mod = await tsImport(url, import.meta.url)
  } else {
    mod = await import(url)
  }
  let plugin = mod?.default
  if (plugin !== null && typeof plugin === 'object' && typeof plugin.default === 'function') plugin = plugin.default
  if (typeof plugin !== 'function') {
    throw new SpikardConfigError([`app: ${file} must default-export a Fastify plugin (a function), found ${plugin === undefined ? 'no default export' : typeof plugin}`], 'config')
  }
  return plugin
}
