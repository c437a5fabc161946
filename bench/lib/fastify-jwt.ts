/**
 * @fastify/jwt, loaded without its type declarations. They declare `request.user` (and
 * `request.jwtVerify`) for the whole program, spikard declares its own `request.user`, and
 * this project compiles the package, its tests and the benchmark servers as one program. An
 * app that uses both compiles them with `skipLibCheck` (the usual setting), where the two
 * declarations never meet.
 */
import { createRequire } from 'node:module'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'

export const fastifyJwt = createRequire(import.meta.url)('@fastify/jwt') as FastifyPluginAsync<Record<string, unknown>>

/** `request.jwtVerify()`, which @fastify/jwt decorates the request with. */
export async function jwtVerify (request: FastifyRequest): Promise<unknown> {
  return await (request as unknown as { jwtVerify: () => Promise<unknown> }).jwtVerify()
}
