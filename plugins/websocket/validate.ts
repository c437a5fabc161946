/**
 * A WebSocket route's message validators, compiled once when the route is registered from
 * its `config.websocket.receive` and `send` (./messages.ts reads them): a message is checked
 * against the schema its `type` names, or the route's single schema. Ajv is Fastify's own
 * validator (a dependency of @fastify/ajv-compiler), loaded as plugins/sse does.
 */
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import type { MessageSchemas } from './messages.js'

interface Ajv {
  compile: (schema: unknown) => ((data: unknown) => boolean) & { errors?: AjvError[] | null }
  addSchema: (schema: unknown) => void
  errorsText: (errors: unknown, options: { dataVar: string }) => string
}

interface AjvError { instancePath: string, message?: string, keyword: string, params?: unknown }

/** Why a message was refused: the problem's detail and, for a schema mismatch, each offending field. */
export interface Refusal { detail: string, errors?: Array<{ path: string, message: string }> }

/** undefined when the message is valid. */
export type Check = (message: unknown) => Refusal | undefined

export async function loadAjv (): Promise<Ajv | undefined> {
  try {
    const { Ajv } = await import('ajv') as unknown as { Ajv: new (options: object) => Ajv }
    return new Ajv({ allErrors: true, strict: false, validateFormats: false })
  } catch {
    return undefined
  }
}

/** Compiles one direction's schemas; an invalid schema is a SpikardConfigError naming the route and key. */
export function compileMessages (ajv: Ajv, instance: FastifyInstance, shared: Set<string>, schemas: MessageSchemas, where: string, route: string): Check {
  for (const [id, schema] of Object.entries(instance.getSchemas())) {
    if (shared.has(id)) continue
    shared.add(id)
    ajv.addSchema(schema)
  }
  const compiled = new Map(Object.entries(schemas).map(([type, schema]) => {
    try {
      return [type, ajv.compile(schema)]
    } catch (error) {
      throw new SpikardConfigError([`${where}${type === '*' ? '' : ` (message "${type}")`}: ${(error as Error).message}`], `route ${route}`)
    }
  }))
  const single = compiled.get('*')
  const declared = [...compiled.keys()].join(', ')
  return (message) => {
    let check = single
    if (check === undefined) {
      const type = (message as { type?: unknown } | null)?.type
      check = typeof type === 'string' ? compiled.get(type) : undefined
      if (check === undefined) {
        return {
          detail: `The message's "type" must be one of: ${declared}`,
          errors: [{ path: '/type', message: `must be one of: ${declared}` }]
        }
      }
    }
    if (check(message)) return undefined
    const errors = (check.errors ?? []).map((e) => ({ path: e.instancePath === '' ? '/' : e.instancePath, message: e.message ?? e.keyword }))
    return { detail: `The message does not match the route's schema: ${ajv.errorsText(check.errors, { dataVar: 'message' })}`, errors }
  }
}
