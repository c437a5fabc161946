/** `request.user` (AuthUser, augmentable), the `compress` route option, the route config options, and nothing declared that does not exist at run time. */
import { describe, expect, test } from 'tstyche'
import Fastify from 'fastify'
import spikard, { type AuthUser } from '../../src/index.js'

// What a user writes to type their claims.
declare module '../../src/index.js' {
  interface AuthUser { role: string, tenant?: string }
}

const app = Fastify()
app.register(spikard, { auth: { apiKey: { keys: [{ name: 'a', key: 'k'.repeat(32) }] } } })

describe('request.user', () => {
  test('is the augmentable AuthUser, or undefined', () => {
    app.get('/me', async (request) => {
      expect(request.user).type.toBe<AuthUser | undefined>()
      expect(request.user?.role).type.toBe<string | undefined>()
      expect(request.user?.tenant).type.toBe<string | undefined>()
      return 'ok'
    })
  })
})

describe('the compress route option', () => {
  test('is typed by spikard', () => {
    expect(app.get).type.toBeCallableWith('/a', { compress: false }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { compress: 'sometimes' }, async () => 'ok')
  })
})

describe('@fastify/jwt\'s declarations', () => {
  test('request.jwtVerify and app.jwt are not declared (undefined at run time)', () => {
    app.get('/x', async (request) => {
      expect(request).type.not.toHaveProperty('jwtVerify')
      return 'ok'
    })
    expect(app).type.not.toHaveProperty('jwt')
  })
})

describe('route config options', () => {
  test('config.auth takes true, false, a scheme, schemes or an object, and nothing else', () => {
    expect(app.get).type.toBeCallableWith('/a', { config: { auth: false } }, async () => 'ok')
    expect(app.get).type.toBeCallableWith('/a', { config: { auth: 'jwt' } }, async () => 'ok')
    expect(app.get).type.toBeCallableWith('/a', { config: { auth: ['jwt', 'apiKey'] } }, async () => 'ok')
    expect(app.get).type.toBeCallableWith('/a', { config: { auth: { claims: { role: 'admin' } } } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { auth: 'oauth' } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { auth: 42 } }, async () => 'ok')
    expect(app.route).type.not.toBeCallableWith({ method: 'GET', url: '/b', config: { auth: 'oauth' }, handler: async () => 'ok' })
  })

  test('config.rateLimit and config.logging', () => {
    expect(app.get).type.toBeCallableWith('/a', { config: { rateLimit: { max: 5, timeWindow: '1m' }, logging: false } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { rateLimit: { max: 'ten' } } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { rateLimit: 5 } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { logging: 'off' } }, async () => 'ok')
  })

  test('config.asyncapi and config.websocket are objects (or, for asyncapi, a boolean)', () => {
    expect(app.get).type.toBeCallableWith('/a', { config: { asyncapi: { channel: 'chat' }, websocket: { binary: true } } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { asyncapi: 42 } }, async () => 'ok')
    expect(app.get).type.not.toBeCallableWith('/a', { config: { websocket: 'yes' } }, async () => 'ok')
  })
})
