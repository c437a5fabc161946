/**
 * A WebSocket route's message validators, compiled once when the route is registered from
 * its `config.websocket.receive` and `send` (./messages.ts reads them): a message is checked
 * against the schema its `type` names, or the route's single schema. Ajv is Fastify's own
 * validator, loaded and shared-schema-aware through src/ajv.ts, as plugins/sse's events are.
 */
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import type { MessageSchemas } from './messages.js'
import type { SchemaCompiler } from '../../src/ajv.js'

/** Why a message was refused: the problem's detail and, for a schema mismatch, the offending fields (the first 10). */
export interface Refusal { detail: string, errors?: Array<{ path: string, message: string }> }

/**
 * The most offending fields a refusal lists: a 800 kB array failing in every element gave a
 * 30 MB error frame (1 s to write its detail), which closed the client as a slow consumer.
 */
const MAX_ERRORS = 10

/** undefined when the message is valid. */
export type Check = (message: unknown) => Refusal | undefined

/** Compiles one direction's schemas; an invalid schema is a SpikardConfigError naming the route and key. */
export function compileMessages (compiler: SchemaCompiler, instance: FastifyInstance, schemas: MessageSchemas, where: string, route: string): Check {
  const { ajv } = compiler
  const compiled = compiler.compile(instance, schemas, (type, error) =>
    new SpikardConfigError([`${where}${type === '*' ? '' : ` (message "${type}")`}: ${error.message}`], `route ${route}`))
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
    const all = check.errors ?? []
    const listed = all.slice(0, MAX_ERRORS)
    const errors = listed.map((e) => ({ path: e.instancePath === '' ? '/' : e.instancePath, message: e.message ?? e.keyword }))
    const more = all.length > listed.length ? ` (and ${all.length - listed.length} more)` : ''
    return { detail: `The message does not match the route's schema: ${ajv.errorsText(listed, { dataVar: 'message' })}${more}`, errors }
  }
}
