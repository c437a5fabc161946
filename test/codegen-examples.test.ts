/**
 * The AsyncAPI specification's examples (github.com/asyncapi/spec, not copied here): set
 * ASYNCAPI_EXAMPLES to their folder (see scripts/asyncapi-examples.ts for how to extract
 * them). Every 3.x document parses, but one the parser itself refuses (adeo's Kafka
 * example: its Kafka bindings' `key` fails the binding schema of @asyncapi/parser 3.6);
 * every one with WebSocket or HTTP channels generates code that compiles under --strict.
 */
import { it } from 'node:test'
import assert from 'node:assert/strict'
import { runExamples, summary } from '../scripts/asyncapi-examples.js'

const dir = process.env.ASYNCAPI_EXAMPLES
const KNOWN_INVALID = new Set(['adeo-kafka-request-reply-asyncapi.yml'])

it('the AsyncAPI specification\'s examples parse, generate and compile', { skip: dir === undefined ? 'set ASYNCAPI_EXAMPLES to the examples folder of github.com/asyncapi/spec (scripts/asyncapi-examples.ts says how)' : false, timeout: 300_000 }, async (t) => {
  const results = await runExamples(dir as string)
  t.diagnostic(summary(results))
  assert.ok(results.length > 0, `no AsyncAPI 3.x document under ${dir as string}`)
  assert.deepEqual(results.filter((r) => !r.parsed && !KNOWN_INVALID.has(r.file)).map((r) => `${r.file}: ${r.detail}`), [])
  assert.ok(results.some((r) => r.generated))
  assert.deepEqual(results.filter((r) => r.generated && r.compiled !== true).map((r) => `${r.file}: ${r.detail}`), [])
})
