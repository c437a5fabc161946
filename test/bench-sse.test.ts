/**
 * The SSE fan-out bench (bench/lib/sse-fanout.ts) counts events with its own parser
 * (bench/lib/sse-parse.ts): its delivered/expected figure is only as good as that parser,
 * so the parser is checked here against the event-stream format's corner cases, fed whole
 * and split at every byte; and the pure helpers that turn the clients' counts into the
 * recorded figures.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SseParser, type ParsedEvent } from '../bench/lib/sse-parse.js'
import { openFilesLimit, windowFigures } from '../bench/lib/sse-fanout.js'
import type { StatsReply } from '../bench/lib/sse-clients.js'

function parse (text: string, step?: number): { events: ParsedEvent[], parser: SseParser } {
  const events: ParsedEvent[] = []
  const parser = new SseParser((event) => events.push(event))
  const bytes = Buffer.from(text, 'utf8')
  const size = step ?? bytes.length
  for (let i = 0; i < bytes.length; i += size) parser.push(bytes, i, Math.min(bytes.length, i + size))
  return { events, parser }
}

const STREAM = [
  ': heartbeat', '',
  'id: 1', 'event: tick', 'data: {"n":1}', '',
  'data: first line', 'data: second line', 'data:no space', '',
  ':comment', 'id: 7', 'retry: 1000', 'unknown: field', 'data', '',
  'id: 8', '',
  'data: héllo ✓', ''
]

test('events, comments, multi-line data and ids, with LF, CRLF and CR line ends, split at every byte', () => {
  for (const eol of ['\n', '\r\n', '\r']) {
    const text = STREAM.join(eol) + eol
    for (const step of [undefined, 1, 2, 3, 5]) {
      const { events, parser } = parse(text, step)
      const what = `${JSON.stringify(eol)} in pieces of ${step ?? 'all'}`
      assert.deepEqual(events, [
        { id: '1', event: 'tick', data: '{"n":1}' },
        { id: undefined, event: 'message', data: 'first line\nsecond line\nno space' },
        { id: '7', event: 'message', data: '' },
        { id: undefined, event: 'message', data: 'héllo ✓' }
      ], what)
      assert.equal(parser.comments, 2, what)
      assert.equal(parser.events, 4, what)
      // An event without data is not dispatched, but its id is kept.
      assert.equal(parser.lastEventId, '8', what)
    }
  }
})

test('an event is dispatched only at its blank line; a CR then an LF in the next piece is one line end', () => {
  const events: ParsedEvent[] = []
  const parser = new SseParser((event) => events.push(event))
  parser.push(Buffer.from('id: 3\r\ndata: x\r'))
  assert.equal(events.length, 0)
  parser.push(Buffer.from('\n'))
  assert.equal(events.length, 0, 'the LF after a CR is not a second (blank) line')
  parser.push(Buffer.from('\r\n'))
  assert.deepEqual(events, [{ id: '3', event: 'message', data: 'x' }])
})

test('openFilesLimit reads "Max open files" from /proc/<pid>/limits', () => {
  const limits = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max processes             63707                63707                processes ',
    'Max open files            11024                20000                files     ',
    'Max locked memory         8388608              8388608              bytes     '
  ].join('\n')
  assert.deepEqual(openFilesLimit(limits), { soft: 11024, hard: 20000 })
  assert.deepEqual(openFilesLimit('Max open files            1024                 unlimited            files'), { soft: 1024, hard: Infinity })
  assert.throws(() => openFilesLimit('Max processes 1 1 processes'), /no "Max open files"/)
})

test('windowFigures: delivered against connections × events, CPU per delivered event, fan-out times', () => {
  const stats: StatsReply = {
    type: 'stats',
    open: 4,
    ended: 0,
    events: [
      { id: 5, count: 4, firstMs: 1, lastMs: 10 },
      { id: 6, count: 3, firstMs: 2, lastMs: 30 },
      { id: 7, count: 4, firstMs: 3, lastMs: 20 }
    ],
    incomplete: 1,
    missed: 1,
    malformed: 0,
    comments: 4
  }
  const w = windowFigures(stats, 4, { serverUs: 1100, clientUs: 550, seconds: 3, otherCpu: 0.1 })
  assert.equal(w.from, 5)
  assert.equal(w.to, 7)
  assert.equal(w.delivered, 11)
  assert.equal(w.expected, 12)
  assert.equal(w.cpuUsPerEvent, 100)
  assert.equal(w.clientCpuUsPerEvent, 50)
  assert.equal(w.serverCpuMs, 1.1)
  assert.equal(w.lastMsMedian, 20)
  assert.equal(w.lastMsMax, 30)
  assert.equal(w.firstMsMedian, 2)
  assert.deepEqual([w.incomplete, w.missed], [1, 1])
})
