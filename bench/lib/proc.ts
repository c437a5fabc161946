/**
 * Server processes: start one per server (`node [--import tsx] bench/servers/<file>`, an
 * IPC channel for the ready and stop messages), read its CPU time and memory from /proc,
 * and stop it: a stop message, then SIGTERM, then SIGKILL, each wait bounded, and only
 * ever the pid this module started.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { setTimeout } from 'node:timers'
import { fileURLToPath } from 'node:url'
import { isAbsolute } from 'node:path'
import type { ReadyMessage, ServerInfo } from '../servers/common.js'

export const SERVERS_DIR = fileURLToPath(new URL('../servers/', import.meta.url))

export interface ServerProcess {
  name: string
  pid: number
  port: number
  info: ServerInfo
  /** Milliseconds from spawn to the ready message. */
  readyMs: number
  child: ChildProcess
  /** The last lines the process wrote on stderr (shown when something goes wrong). */
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
}

export interface SpawnOptions {
  name: string
  /** Relative to bench/servers/, or absolute. */
  file: string
  /** Run the file through tsx's loader (`node --import tsx`); default true. */
  tsx?: boolean
  env?: Record<string, string>
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /** Bound on the wait for the ready message (ms). */
  timeoutMs?: number
  /** Pin the server to this CPU (taskset -c), the harness keeping the others. */
  cpu?: number
  /**
   * A command that execs the rest in place, so the pid stays node's: e.g.
   * `['prlimit', '--nofile=12000:']` (the SSE fan-out's file-descriptor limit).
   */
  wrap?: string[]
}

export async function startServer (options: SpawnOptions): Promise<ServerProcess> {
  const { name, file, tsx = true, env = {}, nodeArgs = [], timeoutMs = 30_000, cpu, wrap = [] } = options
  const args = [...nodeArgs, ...(tsx ? ['--import', 'tsx'] : []), isAbsolute(file) ? file : SERVERS_DIR + file]
  const t0 = performance.now()
  // taskset and prlimit exec node in place: the pid is node's either way.
  const [command, ...commandArgs] = [...wrap, ...(cpu === undefined ? [] : ['taskset', '-c', String(cpu)]), process.execPath, ...args]
  const child = spawn(command, commandArgs, {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...env },
    cwd: fileURLToPath(new URL('../..', import.meta.url))
  })
  let stderr = ''
  const keep = (chunk: Buffer): void => { stderr = (stderr + chunk.toString('utf8')).slice(-4000) }
  child.stderr?.on('data', keep)
  child.stdout?.on('data', keep)
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  if (child.pid === undefined) throw new Error(`${name}: could not spawn node`)
  const pid = child.pid

  try {
    const ready = await new Promise<ReadyMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: not ready within ${timeoutMs} ms`)), timeoutMs)
      child.once('message', (message: ReadyMessage) => { clearTimeout(timer); resolve(message) })
      child.once('error', (error) => { clearTimeout(timer); reject(error) })
      void exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`${name}: exited before it was ready (code ${code}, signal ${signal})`)) })
    })
    if (ready.type === 'error') throw new Error(`${name}: failed to start: ${ready.message}`)
    return { name, pid, port: ready.port, info: ready.info, readyMs: performance.now() - t0, child, stderr: () => stderr, exited }
  } catch (error) {
    await stopProcess(child, exited)
    const tail = stderr.trim().split('\n').slice(-8).join('\n')
    throw new Error(`${(error as Error).message}${tail === '' ? '' : `\n${tail}`}`)
  }
}

/** Asks the server to close and exit; SIGTERM after 6 s, SIGKILL 3 s later, by pid. */
export async function stopServer (server: ServerProcess): Promise<{ code: number | null, signal: NodeJS.Signals | null, forced: boolean }> {
  return stopProcess(server.child, server.exited)
}

async function stopProcess (child: ChildProcess, exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>) {
  const within = (ms: number) => Promise.race([exited, new Promise<undefined>((resolve) => { setTimeout(() => resolve(undefined), ms).unref() })])
  if (child.exitCode !== null || child.signalCode !== null) return { ...(await exited), forced: false }
  if (child.connected) child.send({ type: 'stop' }, () => {})
  let result = await within(6000)
  if (result !== undefined) return { ...result, forced: false }
  child.kill('SIGTERM')
  result = await within(3000)
  if (result !== undefined) return { ...result, forced: true }
  child.kill('SIGKILL')
  result = await within(3000)
  return { ...(result ?? { code: null, signal: 'SIGKILL' as NodeJS.Signals }), forced: true }
}

/**
 * Sets the CPUs every thread of a process may run on (`taskset -a -p -c`); false when
 * taskset is missing or refuses. The harness pins itself and a server apart for the
 * stream, whose throughput otherwise jumps between ~0.9 and ~1.9 GB/s with where the
 * scheduler happens to put the two.
 */
export function pinProcess (pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { timeout: 5000, stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Page faults of the process so far (minor, major): /proc/<pid>/stat fields 10 and 12. */
export function pageFaults (pid: number): { minor: number, major: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return { minor: Number(fields[7]), major: Number(fields[9]) }
}

/** Whether per-thread scheduler statistics are readable (ns CPU time). */
let schedstat: boolean | undefined

/**
 * CPU time (user + system) the process has used so far, in microseconds, all threads:
 * the sum of /proc/<pid>/task/*\/schedstat (nanoseconds on CPU per thread) when the
 * kernel has it, else utime + stime from /proc/<pid>/stat (10 ms ticks).
 */
export function cpuMicros (pid: number): number {
  if (schedstat !== false) {
    try {
      let ns = 0
      for (const task of readdirSync(`/proc/${pid}/task`)) {
        try {
          ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0])
        } catch { /* the thread ended between the listing and the read */ }
      }
      schedstat = true
      return ns / 1000
    } catch {
      schedstat = false
    }
  }
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // Fields 14 and 15 of stat(5), counted after pid and comm: utime and stime, in USER_HZ (100/s on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}

export function cpuSource (): string {
  return schedstat === false ? '/proc/<pid>/stat utime+stime (10 ms ticks)' : 'sum of /proc/<pid>/task/*/schedstat (ns)'
}

/**
 * CPU time the whole machine has spent busy so far (all CPUs, microseconds; /proc/stat,
 * 10 ms ticks): minus the server's and the harness's own time over a run, what other
 * processes took, a sign the run was disturbed.
 */
export function machineBusyMicros (): number {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/)
  const [user, nice, system, , , irq, softirq, steal] = fields.map(Number)
  return (user + nice + system + irq + softirq + (steal || 0)) * 10_000
}

/** Resident set size and its peak (VmRSS, VmHWM), in bytes. */
export function memory (pid: number): { rss: number, peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

/** Resets VmHWM to the current RSS (clear_refs 5); false when the kernel refuses. */
export function resetPeak (pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}
