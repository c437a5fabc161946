/**
 * One background task: what `add()` was given, normalized once, and how one attempt of it
 * runs (in the async context of whoever added it, with a timeout and an abort signal).
 */
import { AsyncResource } from 'node:async_hooks'
import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { MAX_TIMER_MS, parseDuration } from '../../src/schema.js'
import { MAX_RETRIES } from './options.js'
import { rejectionOwners, type RejectionOwner } from '../../src/rejections.js'

/** What a task function is given first: `fn(ctx, ...args)`. */
export interface TaskContext {
  /** The task's id, as `add()` returned it and as in its log lines (`taskId`). */
  readonly id: string
  /** The function's name, or the `name` given to `add({ fn, name })`; `anonymous` otherwise. */
  readonly name: string
  /** Aborted when the attempt times out, when the task is cancelled, or when the shutdown budget runs out. */
  readonly signal: AbortSignal
  /** A logger whose lines carry `taskId`, `task` and, for a request's task, its `reqId`. */
  readonly log: FastifyBaseLogger
  /** This attempt, counted from 1. */
  readonly attempt: number
}

export type TaskFunction<A extends unknown[] = any[]> = (ctx: TaskContext, ...args: A) => unknown

/** `add({ fn, ...options }, ...args)`: a task with its own settings. */
export interface TaskSpec<A extends unknown[] = any[]> {
  fn: TaskFunction<A>
  /** Its name in the logs; the function's name by default. */
  name?: string
  /** This task's `tasks.timeout`: milliseconds or a duration such as `'5s'`. */
  timeout?: number | string
  /** This task's `tasks.retries`. */
  retries?: number
  /** A request's task: run it even when the response could not be sent (the client went away). */
  always?: boolean
}

export interface TaskStats { queued: number, running: number, succeeded: number, failed: number, cancelled: number }

/** Where a task is: waiting for its request's response, queued, running, or done. */
export type TaskState = 'waiting' | 'queued' | 'running' | 'done'

export interface TaskDefaults { timeout: number, retries: number }

/** Why an attempt ended early: its signal's reason says which. */
export const CANCELLED = 'task cancelled'

export class Task implements RejectionOwner {
  readonly id = randomUUID()
  readonly name: string
  readonly fn: TaskFunction
  readonly args: unknown[]
  readonly timeout: number
  readonly retries: number
  readonly always: boolean
  /** The logger of whoever added the task (the request's); `log` is its child, made when first used. */
  readonly #parentLog: FastifyBaseLogger
  #log: FastifyBaseLogger | undefined
  /** The async context of the caller of add() (the request's, with its request context). */
  readonly #resource = new AsyncResource('SpikardTask')
  state: TaskState = 'queued'
  attempt = 0
  /** The running attempt's controller; aborted on timeout, cancel or the end of the budget. */
  controller: AbortController | undefined
  /** Set once: cancelled, or cut at the end of the shutdown budget. No retry after it. */
  stopped: unknown

  constructor (task: TaskFunction | TaskSpec, args: unknown[], defaults: TaskDefaults, log: FastifyBaseLogger) {
    const spec: TaskSpec = typeof task === 'function' ? { fn: task } : task
    if (spec === null || typeof spec !== 'object' || typeof spec.fn !== 'function') {
      throw new TypeError(`tasks.add: expected a function or { fn, name?, timeout?, retries?, always? }, found ${spec === null ? 'null' : typeof spec}`)
    }
    // The bound of the `tasks.retries` option: a task retried without end never leaves the queue.
    if (spec.retries !== undefined && (!Number.isInteger(spec.retries) || spec.retries < 0 || spec.retries > MAX_RETRIES)) {
      throw new TypeError(`tasks.add: retries must be a whole number from 0 to ${MAX_RETRIES}, found ${String(spec.retries)}`)
    }
    this.fn = spec.fn
    this.name = spec.name ?? (spec.fn.name !== '' ? spec.fn.name : 'anonymous')
    this.args = args
    this.timeout = spec.timeout === undefined ? defaults.timeout : parseDuration(spec.timeout)
    if (!(this.timeout > 0)) throw new TypeError(`tasks.add: timeout must be a duration of at least 1 ms, found ${String(spec.timeout)}`)
    // A longer timer fires after 1 ms: every attempt would time out at once.
    if (this.timeout > MAX_TIMER_MS) throw new TypeError(`tasks.add: timeout must not exceed ${MAX_TIMER_MS} ms (about 24 days), found ${String(spec.timeout)}`)
    this.retries = spec.retries ?? defaults.retries
    this.always = spec.always === true
    this.#parentLog = log
  }

  /**
   * A logger carrying the task's id and name (and the request id of its parent). Made on
   * first use: a child logger cost about a third of an empty task (bench/RESULTS.md), and
   * most tasks that succeed log nothing of their own.
   */
  get log (): FastifyBaseLogger {
    return (this.#log ??= this.#parentLog.child({ taskId: this.id, task: this.name }))
  }

  /** A rejection nobody handled, from a promise this task created (./rejections.ts). */
  unhandledRejection (reason: unknown): void {
    this.log.error({ err: reason, attempt: this.attempt }, 'task: unhandled rejection (caught; the process goes on)')
  }

  /**
   * Runs the next attempt: resolves when it succeeds, rejects with its error, or with its
   * signal's reason as soon as the signal is aborted (a task that ignores its signal is not
   * waited for).
   */
  async runAttempt (): Promise<void> {
    this.attempt++
    const controller = new AbortController()
    this.controller = controller
    const task = this
    const ctx: TaskContext = { id: this.id, name: this.name, signal: controller.signal, get log () { return task.log }, attempt: this.attempt }
    const timer = setTimeout(() => {
      controller.abort(new DOMException(`task ${this.name} timed out after ${this.timeout} ms`, 'TimeoutError'))
    }, this.timeout).unref()
    let onAbort!: () => void
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(controller.signal.reason)
      controller.signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      // Thrown synchronously or rejected: both are the attempt's failure.
      const run = this.#resource.runInAsyncScope(async () => await rejectionOwners.run(this, async () => await this.fn(ctx, ...this.args)))
      await Promise.race([run, aborted])
    } finally {
      clearTimeout(timer)
      controller.signal.removeEventListener('abort', onAbort)
      this.controller = undefined
    }
  }

  /** Aborts the running attempt (if any) with `reason`; no retry follows. */
  stop (reason: unknown): void {
    this.stopped ??= reason
    this.controller?.abort(reason)
  }
}
