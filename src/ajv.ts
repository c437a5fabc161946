/**
 * Ajv, Fastify's own validator (a dependency of @fastify/ajv-compiler), for what spikard
 * validates outside Fastify's request schemas: event-stream events (plugins/sse) and
 * WebSocket messages (plugins/websocket). A dependency of spikard's own (the copy Fastify
 * brings is not importable from here under every installer); loaded on demand.
 */
import type { FastifyInstance } from 'fastify'

export interface AjvError { instancePath: string, schemaPath: string, keyword: string, message?: string, params: Record<string, unknown> }
export type AjvValidator = ((data: unknown) => boolean) & { errors?: AjvError[] | null }

export interface Ajv {
  compile: (schema: unknown) => AjvValidator
  addSchema: (schema: unknown) => void
  errorsText: (errors: unknown, options: { dataVar: string }) => string
}

/** `allErrors: false`: validation stops at the first error (its cost bounded by the data's size, not by how much of it is wrong). */
export async function loadAjv ({ allErrors = true }: { allErrors?: boolean } = {}): Promise<Ajv | undefined> {
  try {
    const { Ajv } = await import('ajv') as unknown as { Ajv: new (options: object) => Ajv }
    return new Ajv({ allErrors, strict: false, validateFormats: false })
  } catch {
    return undefined
  }
}

/** A SchemaCompiler on a new Ajv; undefined when Ajv cannot be loaded. */
export async function loadSchemaCompiler (options: { allErrors?: boolean } = {}): Promise<SchemaCompiler | undefined> {
  const ajv = await loadAjv(options)
  return ajv === undefined ? undefined : new SchemaCompiler(ajv)
}

/**
 * Compiles a route's schemas by name (an event name, a message type, `*`), the shared
 * schemas of the route's context (`app.addSchema`) added first, each once per Ajv instance.
 * `failed(name, error)` turns a schema Ajv refuses into the error to throw.
 */
export class SchemaCompiler {
  readonly #shared = new Set<string>()

  constructor (readonly ajv: Ajv) {}

  compile (instance: FastifyInstance, schemas: Record<string, unknown>, failed: (name: string, error: Error) => Error): Map<string, AjvValidator> {
    for (const [id, schema] of Object.entries(instance.getSchemas())) {
      if (this.#shared.has(id)) continue
      this.#shared.add(id)
      this.ajv.addSchema(schema)
    }
    return new Map(Object.entries(schemas).map(([name, schema]) => {
      try {
        return [name, this.ajv.compile(schema)]
      } catch (error) {
        throw failed(name, error as Error)
      }
    }))
  }
}
