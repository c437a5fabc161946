/**
 * A redis-server of the tests' own: the Debian binary (CI installs it), on 127.0.0.1 and a
 * free port, without persistence, stopped in `after` (and killed if the test process exits
 * first). `stop()` and `start()` take it down and bring it back on the same port, and
 * `pause()` and `resume()` hang it with its connections open, for outage tests.
 *
 * Without the binary the Redis tests are skipped (`redisSkip()`), except under CI=true,
 * where they run and fail: CI installs redis-server, so a missing one is a broken CI.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  readonly port: number
  /** Stops the server and waits for it to exit. */
  stop: () => Promise<void>
  /** Starts it again on the same port and waits until it accepts connections. */
  start: () => Promise<void>
  /** Stops the process (SIGSTOP) with its connections open: a hung Redis. */
  pause: () => void
  /** Lets a paused server run again (SIGCONT). */
  resume: () => void
}

const BINARY = process.env.REDIS_SERVER ?? 'redis-server'
const INSTALL = 'install it (apt-get install redis-server) or set REDIS_SERVER=/path/to/redis-server'

/** False when the Redis tests can run (or must: CI=true); else why they are skipped. */
export function redisSkip (env: NodeJS.ProcessEnv = process.env): string | false {
  if (['true', '1'].includes(env.CI ?? '')) return false
  const probe = spawnSync(BINARY, ['--version'], { stdio: 'ignore', timeout: 5000 })
  if (probe.error === undefined && probe.status === 0) return false
  return `${BINARY} cannot be run (${probe.error?.message ?? `exit code ${String(probe.status)}`}): ${INSTALL}`
}

async function freePort (): Promise<number> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

function launch (port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(BINARY, [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--logfile', '', '--loglevel', 'notice', '--daemonize', 'no'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let output = ''
    const timer = setTimeout(() => fail(new Error(`redis-server did not start within 5 s:\n${output}`)), 5000)
    const onData = (chunk: Buffer): void => {
      output += String(chunk)
      if (!output.includes('Ready to accept connections')) return
      clearTimeout(timer)
      child.stdout?.off('data', onData)
      child.stdout?.resume()
      child.stderr?.resume()
      resolve(child)
    }
    const fail = (error: Error): void => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(error)
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', (chunk: Buffer) => { output += String(chunk) })
    child.once('error', (error) => fail(new Error(`cannot run ${BINARY}: ${error.message}; ${INSTALL}`)))
    child.once('exit', (code) => fail(new Error(`redis-server exited with code ${code}:\n${output}`)))
  })
}

async function terminate (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
  await exited
  clearTimeout(timer)
}

/**
 * Starts a redis-server; it is stopped by `scope.after` (node:test's `after` for the file
 * by default, or a test's `t`).
 */
export async function startRedis (scope: { after: (fn: () => Promise<void>) => void } = { after }): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'spikard-redis-'))
  let port = 0
  let child: ChildProcess | undefined
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort()
    try {
      child = await launch(port, dir)
    } catch (error) {
      // Another process may have taken the port in between; try another.
      if (attempt >= 3) throw error
    }
  }
  const kill = (): void => { child?.kill('SIGKILL') }
  process.once('exit', kill)
  const server: RedisServer = {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      child?.kill('SIGCONT')
      if (child !== undefined) await terminate(child)
    },
    start: async () => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) return
      child = await launch(port, dir)
    },
    pause: () => { child?.kill('SIGSTOP') },
    resume: () => { child?.kill('SIGCONT') }
  }
  scope.after(async () => {
    await server.stop()
    process.off('exit', kill)
    rmSync(dir, { recursive: true, force: true })
  })
  return server
}
