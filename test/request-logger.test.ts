import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import pino from 'pino'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { requestLoggerFactory, serverLoggerOf } from '../src/request-logger.js'
import { loggerOptions } from '../src/logger.js'
import { resolveConfig } from '../src/config/schema.js'
import { createServer } from '../src/index.js'

/** A server logger as createServer makes it (redaction, the req serializer), writing into `lines`, the time fixed. */
function serverLogger (): { log: pino.Logger, lines: () => unknown[] } {
  const config = resolveConfig({})
  const chunks: string[] = []
  const log = pino({ ...loggerOptions(config.server.logger, config, undefined), timestamp: () => ',"time":1' }, { write: (line: string) => chunks.push(line) })
  return { log, lines: () => chunks.splice(0) }
}

const make = (log: FastifyBaseLogger, id = 'req-1'): FastifyBaseLogger =>
  requestLoggerFactory.call({} as FastifyInstance, log, { reqId: id }, {}, {} as never)

/** The same calls on a request logger and on pino's own child must write the same bytes. */
test('a request logger writes what pino\'s child with the request id writes, byte for byte', () => {
  const { log, lines } = serverLogger()
  const boom = new Error('boom')
  const calls: Array<[string, (l: FastifyBaseLogger) => void]> = [
    ['message', (l) => { l.info('hello') }],
    ['object and message', (l) => { l.warn({ a: 1, nested: { b: [1, 2] } }, 'with %s', 'format') }],
    ['an error', (l) => { l.error(boom) }],
    ['secret header', (l) => { l.info({ headers: { authorization: 'Bearer secret' } }, 'redacted') }],
    ['req serializer', (l) => { l.info({ req: { method: 'GET', url: '/x?token=secret', headers: {} } }, 'req') }],
    ['a child', (l) => { l.child({ taskId: 't1' }).info('from the child') }],
    ['a child of a child', (l) => { l.child({ a: 1 }).child({ b: 2 }, { level: 'debug' }).debug('deep') }],
    ['bindings set later', (l) => { (l as pino.Logger).setBindings({ user: 'u1' }); l.info('bound') }],
    ['a level of its own', (l) => { l.level = 'warn'; l.info('dropped'); l.warn('kept') }],
    ['an id to escape', (l) => { l.info('escaped') }]
  ]
  for (const [name, call] of calls) {
    const id = name === 'an id to escape' ? 'quote"and\\back' : 'req-1'
    call(make(log, id))
    const ours = lines()
    call(log.child({ reqId: id }, {}))
    assert.deepEqual(ours, lines(), name)
    assert.ok(ours.length > 0, name)
  }
  assert.deepEqual((make(log) as pino.Logger).bindings(), { reqId: 'req-1' })
  assert.equal(log.child({}).bindings().reqId, undefined, 'the server logger is untouched')
})

test('serverLoggerOf: the server logger only for a request logger nothing has changed', () => {
  const { log } = serverLogger()
  assert.equal(serverLoggerOf(make(log), 'info'), log)
  const bound = make(log) as pino.Logger
  bound.setBindings({ user: 'u1' })
  assert.equal(serverLoggerOf(bound, 'info'), undefined, 'bindings of its own')
  const levelled = make(log)
  levelled.level = 'info'
  assert.equal(serverLoggerOf(levelled, 'info'), undefined, 'a level of its own')
  assert.equal(serverLoggerOf(make(log).child({ a: 1 }), 'info'), undefined, 'a child of it')
  assert.equal(serverLoggerOf(log.child({ reqId: 'x' }), 'info'), undefined, 'pino\'s own child')
  assert.equal(serverLoggerOf(log, 'info'), undefined, 'the server logger itself')
})

test('routes with a log level or serializers of their own get pino\'s child', () => {
  const { log } = serverLogger()
  const child = (options: object): FastifyBaseLogger => requestLoggerFactory.call({} as FastifyInstance, log, { reqId: 'r' }, options, {} as never)
  assert.equal(Object.getPrototypeOf(child({ level: 'warn' })), log)
  assert.equal(Object.getPrototypeOf(child({ serializers: {} })), log)
  assert.notEqual(Object.getPrototypeOf(child({})), log)
  // Another label than Fastify's default: pino's child, with that label.
  assert.deepEqual((requestLoggerFactory.call({} as FastifyInstance, log, { traceId: 't' }, {}, {} as never) as pino.Logger).bindings(), { traceId: 't' })
})

test('in a server: access lines, a handler\'s lines and a route log level, every line with its request id', async (t) => {
  const out = new PassThrough()
  const lines: Array<Record<string, unknown>> = []
  out.on('data', (chunk: Buffer) => { for (const l of String(chunk).split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>) })
  const app = await createServer({
    app: async (a) => {
      a.get('/plain', async () => 'ok')
      a.get('/logs', async (request) => { request.log.info({ x: 1 }, 'handler line'); return 'ok' })
      a.get('/quiet', { logLevel: 'warn' }, async (request) => { request.log.info('not written'); request.log.warn('written'); return 'ok' })
      a.get('/fails', async () => { throw new Error('internal') })
    }
  }, { logStream: out })
  t.after(async () => { await app.close() })
  for (const path of ['/plain', '/logs', '/quiet', '/fails', '/missing']) {
    await app.inject({ url: path, headers: { 'x-request-id': `id${path.replace('/', '-')}` } })
  }
  await app.close()
  const seen = lines.filter((l) => typeof l.reqId === 'string').map((l) => [l.reqId, l.msg])
  assert.deepEqual(seen, [
    ['id-plain', 'request completed'],
    ['id-logs', 'handler line'],
    ['id-logs', 'request completed'],
    ['id-quiet', 'written'],
    ['id-fails', 'request failed'],
    ['id-fails', 'request completed'],
    ['id-missing', 'request completed']
  ])
  for (const line of lines) assert.equal(Object.keys(line).filter((k) => k === 'reqId').length <= 1, true)
})

test('a Fastify instance of the user\'s own with the factory: request.log is a pino logger', async () => {
  const out = new PassThrough()
  let text = ''
  out.on('data', (c: Buffer) => { text += String(c) })
  const app = Fastify({ logger: { level: 'info', stream: out }, childLoggerFactory: requestLoggerFactory })
  app.get('/', async (request) => {
    assert.equal(typeof request.log.child, 'function')
    assert.equal((request.log as pino.Logger).isLevelEnabled('info'), true)
    assert.equal(request.log.level, 'info')
    request.log.info('hi')
    return 'ok'
  })
  const response = await app.inject({ url: '/' })
  assert.equal(response.statusCode, 200)
  await app.close()
  assert.match(text, /"reqId":"req-1","msg":"hi"/)
})
