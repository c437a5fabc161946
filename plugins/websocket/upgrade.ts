/**
 * The WebSocket upgrade as an HTTP request: the checks spikard adds to it (shutdown, Origin,
 * `websocket.maxConnections`), the headers the 101 carries, a handshake ws refuses answered
 * with a problem, the connection's access line, and the injectWS fix.
 */
import { EventEmitter } from 'node:events'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { errors } from '../../src/errors.js'
import { acceptedHeader, pathOf, PROBLEM_CONTENT_TYPE, standaloneProblem } from '../../src/problem-details.js'
import { loggedTarget, redactHeaders, redactQuery, secretNames } from '../../src/redact.js'
import { keepsConnection, responseUnderWay, routeConfig } from '../../src/fastify-internals.js'
import type { ResolvedWebSocketOptions } from './options.js'
import { kUpgradeOnly, kWebSocket } from './connection.js'
import { responseDropped } from '../tasks/state.js'
import { rememberAddress } from '../stream/state.js'

const kReply = Symbol('spikard.websocket.reply')
/** Set on an upgrade's request once ws writes its 101. */
const kSwitched = Symbol('spikard.websocket.switched')
const ACCESS_TOKEN = 'access_token'

/** An origin as a browser sends it (lower case, no default port), from the option's spelling. */
function serializedOrigin (origin: string): string {
  try {
    return new URL(origin).origin
  } catch {
    return origin.toLowerCase().replace(/\/$/, '')
  }
}

/** Whether an `Origin` may open a WebSocket: the configured list, or same-host when auth is on and none is configured. */
function originCheck (origins: string[], auth: boolean): ((origin: string, request: FastifyRequest) => boolean) | undefined {
  if (origins.includes('*')) return undefined
  if (origins.length > 0) {
    const allowed = new Set(origins.map(serializedOrigin))
    return (origin) => allowed.has(origin.toLowerCase())
  }
  if (!auth) return undefined
  // Same origin: the page's host (and port) is the one the upgrade was sent to. The scheme
  // is not compared: behind a TLS-terminating proxy the server cannot see it reliably.
  return (origin, request) => {
    try {
      return new URL(origin).host === request.host.toLowerCase()
    } catch {
      return false
    }
  }
}

export function guardUpgrades (app: FastifyInstance, options: ResolvedWebSocketOptions): void {
  const allowed = originCheck(options.origins, app.spikard.options.auth !== false)
  const { maxConnections } = options
  /** The upgrades that passed the checks below and whose socket is not closed yet, on every WebSocket route of the app. */
  let open = 0

  app.addHook('onRequest', function spikardWebSocketUpgrade (request, reply, done) {
    const config = routeConfig(request)
    // request.ws: set by @fastify/websocket's onRequest hook, which runs before this one.
    if (!request.ws) {
      if (config[kUpgradeOnly] !== true) return done()
      const refused = new errors.SPK_ERR_WEBSOCKET_UPGRADE_REQUIRED(request.method, config.url ?? request.url)
      return done(Object.assign(refused, { headers: { upgrade: 'websocket', connection: upgradeConnection(reply.raw) } }))
    }
    // A route without `websocket`: @fastify/websocket would complete the handshake (101)
    // and close the socket at once. The client gets a problem instead.
    if (config[kWebSocket] === undefined) {
      return done(request.is404 ? undefined : new errors.SPK_ERR_WEBSOCKET_NOT_ACCEPTED(request.method, config.url ?? request.url))
    }
    // Draining already: the socket would be closed with 1001 at once.
    if (app.spikard.phase !== 'serving') return done(new errors.SPK_ERR_SHUTTING_DOWN())
    const origin = request.headers.origin
    if (allowed !== undefined && origin !== undefined && !allowed(origin, request)) {
      return done(new errors.SPK_ERR_WEBSOCKET_ORIGIN(JSON.stringify(origin.slice(0, 100))))
    }
    if (open >= maxConnections) return done(new errors.SPK_ERR_WEBSOCKET_TOO_MANY_CONNECTIONS(maxConnections))
    ;(request.raw as IncomingMessage & { [kReply]?: FastifyReply })[kReply] = reply
    // Counted from here until its socket closes, whatever closes it: the client or the server,
    // an error, the heartbeat's terminate, shutdown, or a refusal after this hook (a later
    // hook, a handshake ws cannot complete). A socket destroyed already (its client left
    // during an async hook) may have had its 'close': not counted; ws will not upgrade it.
    const socket = reply.raw.socket
    const counted = socket !== null && !socket.destroyed
    if (counted) open++
    // A client that leaves before its 101 (during an async hook) gets no response, and no
    // onRequestAbort runs for an upgrade: the tasks its hooks added are dropped then, not
    // held for ever, and its access line is written (aborted), as a plain request's is. After
    // a 101 or a problem, both are done already.
    rememberAddress(request)
    socket?.once('close', () => {
      if (counted) open--
      responseDropped(request)
      if (!reply.raw.writableEnded && (request.raw as IncomingMessage & { [kSwitched]?: true })[kSwitched] !== true) app.spikardAccessLog?.(request, undefined)
    })
    done()
  })

  // A refused upgrade's problem is written on the upgraded socket, which no HTTP parser reads
  // any more: it says `Connection: close` and the socket is ended once it is written. (An
  // earlier onRequest hook refusing it, as auth does, means @fastify/websocket's own hook
  // never marked it as a WebSocket request, and would leave the socket open.)
  app.addHook('onSend', function spikardWebSocketRefused (request, reply, payload, done) {
    if ((request.raw as IncomingMessage & { upgrade?: boolean }).upgrade === true) reply.raw.shouldKeepAlive = false
    done(null, payload)
  })
  app.addHook('onResponse', function spikardWebSocketRefusedEnd (request, reply, done) {
    if ((request.raw as IncomingMessage & { upgrade?: boolean }).upgrade === true) reply.raw.socket?.end()
    done()
  })

  const wss = app.websocketServer
  // A handshake ws cannot complete (an unsupported Sec-WebSocket-Version, a malformed key or
  // protocol list) would get ws's own text/html 400: with a listener here, ws leaves the
  // answer to spikard. It is a problem, written on the reply @fastify/websocket hijacked to
  // hand the socket to ws: the route's hooks ran, so it carries their headers (the request
  // id), and Fastify's onResponse hooks (the access line, the socket's end) run once it is sent.
  wss.on('wsClientError', (error: Error, socket: Duplex, raw: IncomingMessage & { [kReply]?: FastifyReply }) => {
    const reply = raw[kReply]
    if (reply === undefined) return socket.destroy()
    const version = raw.headers['sec-websocket-version']
    // RFC 6455 §4.4: the versions the server speaks (ws: 13 and 8).
    if (version !== '13' && version !== '8') reply.header('sec-websocket-version', '13, 8')
    const { status, title, body } = standaloneProblem(new errors.SPK_ERR_WEBSOCKET_HANDSHAKE(error.message), String(reply.request.id), pathOf(reply.request.url))
    reply.header('content-type', PROBLEM_CONTENT_TYPE).header('content-length', Buffer.byteLength(body)).header('connection', 'close')
    reply.raw.writeHead(status, title, reply.getHeaders() as OutgoingHttpHeaders).end(body)
  })
  // The 101 carries the headers the HTTP features set on the upgrade (the request id, the
  // rate limit's), as any other response of theirs would. ws writes these lines raw, so they
  // get the checks Node's writeHead makes (a value with CR/LF would split the response) and
  // its one line per value of an array (each cookie its own Set-Cookie).
  wss.on('headers', (headers: string[], raw: IncomingMessage & { [kReply]?: FastifyReply, [kSwitched]?: true }) => {
    raw[kSwitched] = true
    const reply = raw[kReply]
    if (reply === undefined) return
    for (const [name, value] of Object.entries(reply.getHeaders())) {
      if (value === undefined) continue
      if (!acceptedHeader(name, value)) {
        reply.request.log.warn({ header: name }, 'websocket: a header set on the upgrade cannot be sent; left off the 101')
        continue
      }
      for (const v of [value].flat()) headers.push(`${name}: ${String(v)}`)
    }
  })
  // A browser's token comes as the two protocols `access_token, <token>`: the 101 names only
  // `access_token`, never the token. Otherwise, ws's default: the first protocol offered.
  wss.options.handleProtocols = (protocols: Set<string>) => protocols.has(ACCESS_TOKEN) ? ACCESS_TOKEN : protocols.values().next().value ?? false

  // @fastify/websocket's injectWS (https://github.com/fastify/fastify-websocket/blob/v11.3.7/index.js,
  // `injectWS`) emits 'upgrade' with a plain object for the request, whose
  // `sec-websocket-version` is the number 13, while ws (8.18 on, websocket-server.js
  // `handleUpgrade`) compares that header with the strings '13' and '8': every injected
  // upgrade was answered 400. Made a string here, before any other 'upgrade' listener; and
  // the object gets the event methods and socket a request has, which Fastify reads
  // (`request.signal`, the abort hooks). Requests Node parsed are left alone.
  const fixInjected = (request: IncomingMessage, socket: Duplex): void => {
    const version: unknown = request.headers['sec-websocket-version']
    if (typeof version !== 'number') return
    request.headers['sec-websocket-version'] = String(version)
    if (typeof request.on !== 'function') Object.setPrototypeOf(request, EventEmitter.prototype)
    if (request.socket === undefined) Object.defineProperty(request, 'socket', { value: socket })
    // Its in-memory stream never closes by itself once both sides ended (a TCP socket does),
    // so ws would never see the connection close: closed when the client's side ends.
    socket.once('end', () => { socket.destroy() })
  }
  // An upgrade pipelined behind a response still under way (src/fastify-internals.ts):
  // @fastify/websocket cannot give the socket a response of
  // its own (it logs a warning), and nothing would answer or close it. That response is let
  // finish, then the connection is closed.
  const behindResponse = (_request: IncomingMessage, socket: Duplex): void => {
    const inFlight = responseUnderWay(socket)
    if (inFlight === undefined) return
    // Node took its error listener off the socket with the upgrade.
    socket.on('error', () => { socket.destroy() })
    let closing = false
    const close = (): void => {
      if (closing) return
      closing = true
      socket.end(() => { socket.destroy() })
    }
    if (inFlight.writableFinished) close()
    else inFlight.once('finish', close).once('close', close)
  }
  app.server.prependListener('upgrade', behindResponse)
  app.server.prependListener('upgrade', fixInjected)
  app.addHook('onClose', (_app, done) => {
    app.server.off('upgrade', fixInjected)
    app.server.off('upgrade', behindResponse)
    done()
  })
}

/**
 * The connection's access line, written when it closes, with the logging feature's level and
 * redaction; undefined when that feature is off.
 */
export function connectionLogger (app: FastifyInstance): ((request: FastifyRequest, summary: Record<string, unknown>) => void) | undefined {
  const logging = app.spikard.options.logging
  if (logging === false) return undefined
  const names = secretNames(app.spikard.options)
  return (request, summary) => {
    const config = routeConfig(request)
    if (config.logging === false) return
    const url = loggedTarget(request.url)
    const q = url.indexOf('?')
    const line: Record<string, unknown> = {
      method: request.method,
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? undefined : redactQuery(url.slice(q + 1), names.query),
      route: config.url ?? null,
      status: 101,
      ...summary,
      caller: request.identity === undefined ? undefined : `${request.identity.scheme}:${request.identity.id}`
    }
    if (logging.headers) line.headers = redactHeaders(request.headers, names.headers)
    request.log[logging.level](line, 'websocket closed')
  }
}

/**
 * The Connection header of a 426: RFC 9110 §7.8 wants the `upgrade` option beside Upgrade.
 * A Connection header set by hand makes Node keep the connection open whatever it had
 * decided (the client's `Connection: close`, a shutdown draining), so `close` goes in too
 * when Node would have closed it.
 */
function upgradeConnection (response: ServerResponse): string {
  return keepsConnection(response) ? 'upgrade' : 'close, upgrade'
}
