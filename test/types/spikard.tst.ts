/** Types of the public surface as they are today (src/index.ts); `npm run test:types`. */
import { describe, expect, test } from 'tstyche'
import Fastify, { type FastifyInstance } from 'fastify'
import spikard, { createServer, errors, requestContext, SpikardConfigError, type CreateServerConfig, type SpikardOptions } from '../../src/index.js'

describe('requestContext', () => {
  test('get(\'requestId\') is a string or undefined', () => {
    expect(requestContext.get('requestId')).type.toBe<string | undefined>()
  })
})

describe('createServer', () => {
  test('takes a config and resolves to a Fastify instance', () => {
    expect(createServer({ requestId: true, app: async () => {} })).type.toBe<Promise<FastifyInstance>>()
  })

  test('rejects keys it does not know, at the root and in a feature', () => {
    expect(createServer).type.not.toBeCallableWith({ requestID: true })
    expect(createServer).type.not.toBeCallableWith({ requestId: { headr: 'x-id' } })
    expect<CreateServerConfig>().type.not.toBeAssignableFrom({ compresion: true })
  })
})

describe('SpikardOptions', () => {
  test('a feature is false, true or its options object', () => {
    expect<SpikardOptions>().type.toBeAssignableFrom({ requestId: false, logging: true, rateLimit: { max: 10 } })
    expect<SpikardOptions>().type.toBeAssignableFrom({})
  })

  test('refuses unknown keys and wrong types', () => {
    expect<SpikardOptions>().type.not.toBeAssignableFrom({ unknownFeature: true })
    expect<SpikardOptions>().type.not.toBeAssignableFrom({ requestId: 'yes' })
    expect<SpikardOptions>().type.not.toBeAssignableFrom({ rateLimit: { max: 10, nope: 1 } })
  })

  test('a duration or a size is a number or a number with its unit', () => {
    const app = Fastify()
    expect(app.register).type.toBeCallableWith(spikard, { timeout: '10s', shutdown: { timeout: 2500, preCloseDelay: '1.5 s' }, bodyLimit: '512kb' })
    expect(createServer).type.toBeCallableWith({ timeout: { handler: '500MS', request: '2m' }, bodyLimit: { max: '1 MB' } })
    expect(app.register).type.not.toBeCallableWith(spikard, { timeout: 'soon' })
    expect(createServer).type.not.toBeCallableWith({ shutdown: { timeout: '30 sec' } })
    expect(createServer).type.not.toBeCallableWith({ bodyLimit: '1 megabyte' })
  })

  test('app.register(spikard, options) accepts them', () => {
    const app = Fastify()
    expect(app.register).type.toBeCallableWith(spikard, { requestId: true })
    expect(app.register).type.not.toBeCallableWith(spikard, { requestId: 1 })
  })
})

describe('errors', () => {
  test('every SPK_ERR_* constructor exists; others do not', () => {
    expect(new errors.SPK_ERR_NOT_FOUND('GET', '/x')).type.toBeAssignableTo<Error & { code: string, statusCode?: number }>()
    expect(errors.SPK_ERR_RATE_LIMITED).type.not.toBe<undefined>()
    expect(errors).type.not.toHaveProperty('SPK_ERR_NOPE')
  })

  test('SpikardConfigError lists its problems', () => {
    expect(new SpikardConfigError(['a: b']).problems).type.toBe<string[]>()
  })
})
