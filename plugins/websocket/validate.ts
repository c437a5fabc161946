/**
 * A WebSocket route's message validators, compiled when the route is registered from its
 * `config.websocket.receive` and `send` (./messages.ts reads them): a message is checked
 * against the schema its `type` names, or the route's single schema. Ajv is Fastify's own
 * validator, loaded and shared-schema-aware through src/ajv.ts, as plugins/sse's events are.
 */
import type { FastifyInstance } from 'fastify'
import { SpikardConfigError } from '../../src/errors.js'
import type { MessageSchemas } from './messages.js'
import type { AjvValidator, SchemaCompiler } from '../../src/ajv.js'

/** Why a message was refused: the problem's detail and, for a schema mismatch, the offending fields (the first 10). */
export interface Refusal { detail: string, errors?: Array<{ path: string, message: string }> }

/**
 * The most offending fields a refusal lists: a 800 kB array failing in every element gave a
 * 30 MB error frame (1 s to write its detail), which closed the client as a slow consumer.
 */
const MAX_ERRORS = 10

/**
 * The largest message whose every error is listed. Collecting them costs Ajv an object per
 * error: an 800 kB array failing in every element held the event loop 0.3-0.6 s per message.
 * A larger message is checked up to its first error, which costs no more than a valid one.
 */
export const FULL_CHECK_BYTES = 16 * 1024

/** undefined when the message is valid; `bytes`, the message's size, when it came from a client. */
export type Check = (message: unknown, bytes?: number) => Refusal | undefined

/**
 * Compiles one direction's schemas. With `first`, which stops at a message's first error,
 * now: every message is checked with it, and an invalid schema is a SpikardConfigError
 * naming the route and key. With `all`, which lists every error, only when a message of
 * that type needs it (an invalid one of at most 16 KiB), once: compiling each schema twice
 * at startup doubled the work for validators most types never use.
 */
export function compileMessages (compilers: { all: SchemaCompiler, first: SchemaCompiler }, instance: FastifyInstance, schemas: MessageSchemas, where: string, route: string): Check {
  const failed = (type: string, error: Error): Error =>
    new SpikardConfigError([`${where}${type === '*' ? '' : ` (message "${type}")`}: ${error.message}`], `route ${route}`)
  const first = compilers.first.compile(instance, schemas, failed)
  const all = new Map<string, AjvValidator>()
  const everyError = (name: string): AjvValidator => {
    let check = all.get(name)
    if (check === undefined) {
      check = compilers.all.compile(instance, { [name]: schemas[name] }, failed).get(name)!
      all.set(name, check)
    }
    return check
  }
  const declared = [...first.keys()].join(', ')
  return (message, bytes = 0) => {
    let name = '*'
    if (!first.has('*')) {
      const type = (message as { type?: unknown } | null)?.type
      if (typeof type !== 'string' || !first.has(type)) {
        return {
          detail: `The message's "type" must be one of: ${declared}`,
          errors: [{ path: '/type', message: `must be one of: ${declared}` }]
        }
      }
      name = type
    }
    const check = first.get(name)!
    if (check(message)) return undefined
    let found = check.errors ?? []
    let stopped = ' (the message is over 16 KiB: checked up to its first error)'
    if (bytes <= FULL_CHECK_BYTES) {
      const every = everyError(name)
      every(message)
      found = every.errors ?? found
      stopped = ''
    }
    const listed = found.slice(0, MAX_ERRORS)
    const errors = listed.map((e) => ({ path: e.instancePath === '' ? '/' : e.instancePath, message: e.message ?? e.keyword }))
    const more = found.length > listed.length ? ` (and ${found.length - listed.length} more)` : stopped
    return { detail: `The message does not match the route's schema: ${compilers.all.ajv.errorsText(listed, { dataVar: 'message' })}${more}`, errors }
  }
}
