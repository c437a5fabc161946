/**
 * `spikard/testing`: `createTestClient` builds the app as `spikard start` does, without
 * listening, and drives it: HTTP through `inject()`, WebSockets, event streams and
 * streamed bodies over a real socket, credentials the app accepts, background tasks
 * drained, and a close that fails when the test left something open.
 */
import type { FastifyInstance } from 'fastify'
import { createServer, type CreateServerConfig } from '../server.js'
import { forTests } from './client.js'

export { createTestClient } from './client.js'
export type { RequestOptions, TestClient, TestClientOptions, TestClientSource } from './client.js'
export type { Problem, TestResponse } from './response.js'
export type { ReadOptions, TestEventStream, TestSseEvent, TestStream, TestWebSocket, WsOptions } from './sockets.js'
export type { JwtOptions } from './credentials.js'
export { runFixtures, runFixture, loadFixtures, FixtureFailures } from './fixtures.js'
export type { Fixture, FixtureExchange, FixtureOptions, FixtureResult, HttpExchange, LoadedFixture, SseExchange, StreamExchange, WsExchange, WsStep } from './fixtures.js'
export { fixtureRoutes } from './fixture-routes.js'
export type { FixtureChunk, FixtureClose, FixtureHandler, FixtureRoute } from './fixture-routes.js'
export { fixtureSchema } from './fixture-schema.js'
export { expectMatch, valueAt, MARKERS } from './match.js'

/**
 * The app alone, spikard registered and the logger silenced, not yet ready (routes may
 * still be added), for `inject()`.
 * @deprecated Use `createTestClient(config)`, whose `app` is the instance.
 */
export async function createTestApp (config: CreateServerConfig = {}): Promise<FastifyInstance> {
  return await createServer(forTests(config, config.server?.logger?.level ?? 'silent'))
}
