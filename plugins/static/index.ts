/**
 * Static files from one or more mounts, each served by @fastify/static's wildcard route
 * (`GET,HEAD <prefix>*`) in an encapsulated child of its own, so the mounts' error
 * handlers and options never meet (and no reply decorator is added: `decorateReply: false`).
 *
 * What @fastify/static and @fastify/send give: ETag, Last-Modified and 304, Range and 206
 * (the compression feature leaves 206 and precompressed responses alone), `.br`/`.gz`
 * siblings, HEAD, the index file of a directory, and the refusal of `..`, `.` and empty
 * segments, backslashes, NUL bytes and dotfiles. What spikard adds:
 *
 * - every refusal, and a missing file, is a 404 problem (nothing says whether a refused
 *   file exists); a range past the end is a 416 problem with `Content-Range: bytes *\/<size>`,
 *   and a suffix range longer than the file is the whole file (serveWhole);
 * - a file reached through a symlink that leads out of the root is refused (its real path
 *   is checked before the file is opened, files.ts symlinkCheck) unless the mount sets
 *   `followSymlinks`; so is anything that is not a regular file (a FIFO, whose opening
 *   would block a thread-pool thread; a socket; a device), before it is opened (fileCheck);
 * - the mount's `Cache-Control`, and a year, immutable, for content-hashed names;
 * - `Vary: Accept-Encoding` on every answer (304 and 206 included) for a file the
 *   compression feature compresses;
 * - the spa fallback: the mount's `spa` file for a path under the prefix that has no file,
 *   when the client accepts HTML (`Vary: Accept` on its answers and on the 404 problem);
 * - the routes are public unless the mount sets `auth`, and out of the OpenAPI document;
 * - the prefix without its slash (`/assets`) redirects to it (`/assets/`), 301.
 *
 * The route's config must be in place when it is registered: the features registered
 * before this one (auth, rate limits, timeouts) decide each route in their onRoute hooks,
 * which run before any hook of this child, and @fastify/static takes no route config. So
 * the child's `route` method adds it, and wraps the handler: @fastify/static answers a
 * missing file with `reply.callNotFound()`, which would reach the app's not-found handler
 * (a 405 there, since HEAD exists for the path); the wrapper answers it here.
 */
import fp from 'fastify-plugin'
import type { Stats } from 'node:fs'
import fastifyStatic from '@fastify/static'
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteOptions } from 'fastify'
import { errors, SpikardConfigError } from '../../src/errors.js'
import { sendProblem } from '../../src/problem-details.js'
import { routerOptions } from '../../src/path-table.js'
import { resolveStaticOptions, type StaticOptions } from './options.js'
import { globalSettings, type Settings } from '../compression/settings.js'
import { varyWith } from '../../src/vary.js'
import { acceptsHtml, checkMounts, compressedWhole, coversWholeFile, fileCheck, hasPrecompressed, IMMUTABLE, isHashed, NotAFile, OutsideRoot, refusal, spaUrl, type CheckedMount, type Mount } from './files.js'

async function spikardStatic (app: FastifyInstance, options: StaticOptions): Promise<void> {
  const { mounts } = resolveStaticOptions(options)
  // `static: true` alone would be on and serve nothing.
  if (mounts.length === 0) throw new SpikardConfigError(['static.mounts: expected at least one mount (static: [{ root: ./public }]), found none; or leave static off'])
  const authOn = app.spikard.options.auth !== false
  const { checked, problems } = checkMounts(mounts as Mount[], authOn)
  if (problems.length > 0) throw new SpikardConfigError(problems)
  const compression = app.spikard.options.compression
  const compressed = compression === false ? undefined : globalSettings(compression)
  for (const m of checked) await app.register(staticMount(m, authOn, compressed))
}

/**
 * What @fastify/static and setHeaders set for a file, before it is opened, that a problem
 * keeps otherwise (sendProblem drops the others: ETag, Last-Modified, Content-Encoding...).
 */
const FILE_HEADERS = ['cache-control', 'accept-ranges'] as const

/** A 404 problem for the request's path. */
function notFoundError (request: FastifyRequest): Error {
  const q = request.url.indexOf('?')
  return new errors.SPK_ERR_NOT_FOUND(request.method, q === -1 ? request.url : request.url.slice(0, q))
}

/** One mount: @fastify/static in an encapsulated child, with the child's error handler and route method set first. */
function staticMount (m: CheckedMount, authOn: boolean, compression: Settings | undefined) {
  const { mount, key, realRoot } = m
  const fallback = spaUrl(m)

  return async function spikardStaticMount (child: FastifyInstance): Promise<void> {
    child.setErrorHandler(function spikardStaticError (error, request, reply) {
      if (error instanceof OutsideRoot) {
        request.log.warn({ path: error.path }, `static: refused a file reached through a symlink that leads outside ${key}.root (set ${key}.followSymlinks to serve it)`)
        return sendProblem(reply, notFoundError(request))
      }
      if (error instanceof NotAFile) {
        request.log.warn({ path: error.path }, `static: refused something under ${key}.root that is not a regular file (a FIFO, socket or device)`)
        return sendProblem(reply, notFoundError(request))
      }
      const refused = refusal(error)
      if (refused === undefined) {
        // The file failed to open (EACCES, EMFILE, removed since its stat) after its headers
        // were set: they describe a file the problem is not. A year's `immutable` or an ETag
        // would let a cache keep the 500 as the file; a `.gz` sibling's Content-Encoding
        // would make the problem unreadable.
        for (const name of FILE_HEADERS) reply.removeHeader(name)
        return sendProblem(reply, error)
      }
      if (refused.kind === 'refused') return sendProblem(reply, notFoundError(request))
      if (coversWholeFile(request.headers.range)) return serveWhole(request, reply, refused.size)
      const range = Object.assign(new errors.SPK_ERR_RANGE_NOT_SATISFIABLE(refused.size), { headers: { 'content-range': `bytes */${refused.size}` } })
      return sendProblem(reply, range)
    })

    const route = child.route.bind(child)
    child.route = function spikardStaticRoute (options: RouteOptions) {
      const config = { ...options.config, openapi: false, ...(authOn ? { auth: mount.auth } : {}) }
      try {
        return route({ ...options, config, handler: answeringNotFound(options.handler as RouteHandlerMethod, child) })
      } catch (error) {
        if ((error as { code?: string }).code !== 'FST_ERR_DUPLICATED_ROUTE') throw error
        throw new SpikardConfigError([`${key}.prefix: ${m.prefix} is taken: a route GET ${options.url ?? (options as { path?: string }).path} was registered before spikard; move it, or give the mount another prefix`])
      }
    } as FastifyInstance['route']

    await child.register(fastifyStatic, {
      root: m.root,
      prefix: m.prefix,
      index: mount.index === false ? false : [mount.index],
      dotfiles: 'deny',
      list: false,
      redirect: false,
      wildcard: true,
      decorateReply: false,
      preCompressed: mount.precompressed && await hasPrecompressed(m.root),
      // Set by setHeaders below, per file.
      cacheControl: false,
      etag: true,
      lastModified: true,
      acceptRanges: true,
      schemaHide: true,
      setHeaders: (reply: FastifyReply, path: string, stat: Stats) => {
        const cacheControl = mount.immutable && isHashed(path) ? IMMUTABLE : mount.cacheControl
        if (cacheControl !== '') reply.header('cache-control', cacheControl)
        // A file the compression feature compresses whole varies by Accept-Encoding in every
        // answer: its 304 must say the Vary of its 200 (RFC 9110 §15.4.5), and its 206, which
        // that feature leaves alone, must not be stored by a cache under the key of a
        // compressed 200. The feature sets Vary on the 200 and HEAD only, and cannot decide for
        // a 304, which has no type or length. (@fastify/static sets it on every answer of a
        // mount that serves precompressed siblings.)
        if (compression !== undefined && compressedWhole(compression, path, stat.size)) reply.header('vary', varyWith(reply.getHeader('vary'), 'Accept-Encoding'))
      },
      // The file @fastify/send is about to open (an index file or a .br sibling included):
      // a regular file, and its real path under the root's unless followSymlinks.
      onFile: fileCheck(realRoot, mount.followSymlinks)
    })
    // `/assets` (no slash) goes to `/assets/`, where the mount's index file is and where
    // its relative URLs resolve, as a web server does for a directory. Not when the router
    // ignores trailing slashes: `/assets/` would reach the redirect too, and loop.
    if (m.prefix !== '/' && routerOptions(child).ignoreTrailingSlash !== true) {
      child.route({
        method: ['GET', 'HEAD'],
        url: m.prefix.slice(0, -1),
        schema: { hide: true },
        handler: (request, reply) => {
          const q = request.url.indexOf('?')
          return reply.redirect(m.prefix + (q === -1 ? '' : request.url.slice(q)), 301)
        }
      })
    }
  }

  /**
   * A suffix range longer than the file (`bytes=-100000` for 6 KiB) asks for the whole file
   * (RFC 9110 §14.1.2), but @fastify/send's parser takes it for a range before the start and
   * answers 416; and the file's size is known only once @fastify/send has looked at it. So
   * the file is served again, as the range `bytes=0-` (a 206 with `Content-Range: bytes
   * 0-<size-1>/<size>`, which tells the client the size it asked about), or, for an empty
   * file, which no Content-Range can describe, without the range (a 200). The request's own
   * header is rewritten, since the spa fallback builds its view from the request; the header
   * written is satisfiable or absent, so this happens once. Each run of the handler leaves
   * its `close` listeners on the response until it closes: after the spa fallback's run, this
   * third one would pass Node's limit of 10 and print a leak warning for every such request,
   * so the limit is raised for this response (by at most one more run's worth).
   */
  function serveWhole (request: FastifyRequest, reply: FastifyReply, size: number): unknown {
    if (size === 0) delete request.raw.headers.range
    else request.raw.headers.range = 'bytes=0-'
    reply.raw.setMaxListeners(reply.raw.getMaxListeners() + 10)
    return request.routeOptions.handler.call(request.server, request, reply)
  }

  /** The route's handler, answering a missing file itself: the spa file, or a 404 problem. */
  function answeringNotFound (serve: RouteHandlerMethod, server: FastifyInstance): RouteHandlerMethod {
    function missing (this: FastifyReply): FastifyReply {
      return this.send(notFoundError(this.request))
    }
    function notFound (this: FastifyReply): FastifyReply {
      if (fallback === undefined) return missing.call(this)
      // The spa file for a browser, the 404 problem for others: chosen by Accept, so a cache
      // must keep them apart (RFC 9110 §12.5.5). Without Vary, a shared cache that kept the
      // 404 an API client or a crawler got (404s are cacheable by default) answered every
      // browser's deep link with it, and one that kept the page gave it to API clients.
      this.header('vary', varyWith(this.getHeader('vary'), 'Accept'))
      if (!acceptsHtml(this.request.headers.accept)) return missing.call(this)
      this.callNotFound = missing
      // The same route serves the spa file: @fastify/static reads the path from the raw
      // URL, so it gets a view of the request whose raw URL is the file's (the request
      // itself, and what the access log shows, keep the URL asked for).
      const request = this.request
      const view = Object.create(request, { raw: { value: Object.create(request.raw, { url: { value: fallback } }) } }) as FastifyRequest
      Promise.resolve(serve.call(server, view, this)).catch((error: unknown) => this.send(error))
      return this
    }
    return function spikardStaticFile (this: FastifyInstance, request, reply) {
      reply.callNotFound = notFound
      return serve.call(this, request, reply)
    }
  }
}

export default fp(spikardStatic, { name: 'spikard-static', fastify: '5.x', decorators: { fastify: ['spikard'] } })
