/**
 * An event-stream parser for the SSE fan-out's clients (bench/lib/sse-clients.ts): the
 * body of a text/event-stream response, fed in pieces as it arrives (the HTTP framing
 * already taken off by ResponseCounter), split into events as the HTML standard's
 * "event stream interpretation" does: lines end with CRLF, LF or CR (a CRLF may be split
 * across two pieces), `field: value` with one optional space after the colon, a line
 * starting with a colon is a comment, a blank line dispatches the event, and an event
 * without data is not dispatched. Multi-line data is joined with LF. UTF-8 split across
 * pieces is decoded whole.
 */
import { StringDecoder } from 'node:string_decoder'

export interface ParsedEvent {
  /** The event's own `id` field, when it had one. */
  id: string | undefined
  /** `message` unless an `event` field named it. */
  event: string
  data: string
}

const LINE_END = /[\r\n]/g

export class SseParser {
  /** Events dispatched so far. */
  events = 0
  /** Comment lines (keep-alives) so far. */
  comments = 0
  /** The last `id` seen, kept across events as a browser's EventSource keeps it. */
  lastEventId = ''
  readonly #onEvent: (event: ParsedEvent) => void
  readonly #decoder = new StringDecoder('utf8')
  /** The start of a line whose end has not arrived yet. */
  #partial = ''
  /** The previous piece ended with CR: an LF starting this one belongs to that line end. */
  #afterCR = false
  #data: string[] = []
  #event = ''
  #id: string | undefined

  constructor (onEvent: (event: ParsedEvent) => void) {
    this.#onEvent = onEvent
  }

  push (buf: Buffer, start = 0, end = buf.length): void {
    const text = this.#decoder.write(buf.subarray(start, end))
    let i = 0
    if (this.#afterCR && text.length > 0) {
      if (text.charCodeAt(0) === 10) i = 1
      this.#afterCR = false
    }
    while (i < text.length) {
      LINE_END.lastIndex = i
      const found = LINE_END.exec(text)
      if (found === null) {
        this.#partial += text.slice(i)
        return
      }
      const at = found.index
      const line = this.#partial + text.slice(i, at)
      this.#partial = ''
      if (text.charCodeAt(at) === 13) {
        if (at + 1 === text.length) this.#afterCR = true
        i = text.charCodeAt(at + 1) === 10 ? at + 2 : at + 1
      } else {
        i = at + 1
      }
      this.#line(line)
    }
  }

  #line (line: string): void {
    if (line === '') return this.#dispatch()
    if (line.charCodeAt(0) === 58) { // ':'
      this.comments++
      return
    }
    const colon = line.indexOf(':')
    const name = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    switch (name) {
      case 'data':
        this.#data.push(value)
        break
      case 'event':
        this.#event = value
        break
      case 'id':
        if (!value.includes('\0')) {
          this.#id = value
          this.lastEventId = value
        }
        break
      // `retry` and unknown fields: ignored.
    }
  }

  #dispatch (): void {
    const data = this.#data
    const id = this.#id
    const event = this.#event === '' ? 'message' : this.#event
    this.#data = []
    this.#event = ''
    this.#id = undefined
    if (data.length === 0) return
    this.events++
    this.#onEvent({ id, event, data: data.join('\n') })
  }
}
