/**
 * Message names. A message is named by its `type` (WebSocket) or its event name (SSE), and
 * written once in `components.messages`, shared by every channel that has the same message.
 * Where two routes give one name different messages, each is qualified by its channel
 * (`chatByRoom.join`), and if that is not enough, by its operation. No Fastify runtime import.
 */
import { PROBLEM_TYPE_BASE } from '../../src/errors.js'

type Json = Record<string, any>

/** A message of one operation, with the name it wants (`key`). */
export interface Entry { channel: string, operation: string, key: string, message: Json }

/** The frame a WebSocket route answers an invalid message with (unless it closes instead). */
export const PROBLEM_FRAME: Json = {
  name: 'problem',
  title: 'Problem',
  summary: 'The answer to an invalid message (not JSON, not matching the schema, a binary frame the route refuses); the connection stays open.',
  payload: {
    type: 'object',
    required: ['type', 'title', 'status', 'detail'],
    properties: {
      type: { type: 'string', format: 'uri', description: `What went wrong, as a URI (${PROBLEM_TYPE_BASE}<slug>).` },
      title: { type: 'string' },
      status: { type: 'integer', minimum: 400, maximum: 599 },
      detail: { type: 'string', description: 'What was wrong with the message.' },
      errors: {
        type: 'array',
        description: 'For a message that does not match the schema: the offending fields (the first 10).',
        items: { type: 'object', required: ['path', 'message'], properties: { path: { type: 'string', description: 'Where in the message, as a JSON pointer ("/" for the message itself).' }, message: { type: 'string' } } }
      }
    }
  }
}

export function nameMessages (entries: readonly Entry[]): Array<Entry & { name: string }> {
  // AsyncAPI keys are letters, digits, `.`, `_` and `-`.
  const safe = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_')
  const levels = [(e: Entry) => safe(e.key), (e: Entry) => safe(`${e.channel}.${e.key}`), (e: Entry) => safe(`${e.operation}.${e.key}`)]
  const named = new Map<Entry, string>()
  /** Each name given so far, and the message (as JSON text) it stands for. */
  const taken = new Map<string, string>()
  let pending = [...entries]
  for (const [i, level] of levels.entries()) {
    const groups = new Map<string, Entry[]>()
    for (const entry of pending) groups.set(level(entry), [...groups.get(level(entry)) ?? [], entry])
    pending = []
    for (const [name, group] of groups) {
      const texts = new Set(group.map((e) => JSON.stringify(e.message)))
      const text = [...texts][0]
      const free = texts.size === 1 && (taken.get(name) ?? text) === text
      // The last level names each entry apart: the operation and the key are unique together.
      if (!free && i < levels.length - 1) { pending.push(...group); continue }
      taken.set(name, text)
      for (const entry of group) named.set(entry, name)
    }
  }
  return entries.map((entry) => ({ ...entry, name: named.get(entry) as string }))
}
