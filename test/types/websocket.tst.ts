/** A WebSocket route's socket has spikard's `sendJson`, and `config.websocket` is typed. */
import { describe, expect, test } from 'tstyche'
import Fastify from 'fastify'
import spikard from '../../src/index.js'

const app = Fastify()
app.register(spikard)

describe('a websocket route', () => {
  test('its socket has sendJson, beside ws\'s own send', () => {
    app.get('/ws', { websocket: true }, (socket) => {
      expect(socket.sendJson).type.toBe<(value: unknown) => void>()
      expect(socket.send).type.not.toBeAssignableTo<(value: unknown) => void>()
    })
  })
  test('config.websocket is typed', () => {
    expect(app.get).type.toBeCallableWith('/ws', { websocket: true, config: { websocket: { binary: true, closeOnInvalid: false } } }, () => {})
    expect(app.get).type.not.toBeCallableWith('/ws', { websocket: true, config: { websocket: { binary: 'yes' } } }, () => {})
  })
})
