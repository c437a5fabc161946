/**
 * The in-memory task queue of one app: at most `concurrency` tasks run at once, at most
 * `maxQueued` wait (those held until their request's response is sent included), failed
 * attempts are retried with exponential backoff and jitter, and at shutdown it refuses new
 * tasks and lets the others finish within the budget.
 *
 * Written by hand rather than on p-queue or fastq: what the issue asks of it (tasks held
 * until a response is sent, cancel by id for held, queued and running tasks, a slot kept
 * while a task waits to be retried, the budget's end naming each unfinished task) is most of
 * the code either way, and a Set in insertion order is the whole FIFO.
 */
import { errors } from '../../src/errors.js'
import { CANCELLED, Task, type TaskDefaults, type TaskStats } from './task.js'

/** The longest backoff between two attempts. */
const MAX_RETRY_DELAY_MS = 60_000

/**
 * The wait after failed attempt `attempt` (from 1): exponential backoff with "equal jitter",
 * between half and all of `base * 2^(attempt-1)`, that capped at a minute. `random` in [0, 1).
 */
export function backoff (attempt: number, base: number, random: number): number {
  const ceiling = Math.min(MAX_RETRY_DELAY_MS, base * 2 ** (attempt - 1))
  return Math.round(ceiling / 2 + random * ceiling / 2)
}

export interface QueueOptions extends TaskDefaults { concurrency: number, maxQueued: number, retryDelay: number }

export class TaskQueue {
  readonly #options: QueueOptions
  /** Every task not done yet, by id: held, queued or running. */
  readonly #tasks = new Map<string, Task>()
  /** Waiting to start, in the order they were queued. */
  readonly #queued = new Set<Task>()
  #held = 0
  #running = 0
  #succeeded = 0
  #failed = 0
  #cancelled = 0
  /** Why new tasks are refused (shutdown), once they are. */
  #refusing = false
  readonly #idle = new Set<() => void>()
  /** Wakes a task sleeping before its retry, by task. */
  readonly #wake = new Map<Task, () => void>()
  constructor (options: QueueOptions) {
    this.#options = options
  }

  /**
   * A new task. `held`: it waits for its request's response (release() or drop() follow).
   * Throws when the server is shutting down, or when the task would have to wait and
   * `maxQueued` are waiting already.
   */
  add (task: Task, held: boolean): Task {
    if (this.#refusing) throw new errors.SPK_ERR_TASKS_SHUTTING_DOWN()
    const waits = held || this.#running >= this.#options.concurrency || this.#queued.size > 0
    if (waits && this.#queued.size + this.#held >= this.#options.maxQueued) throw new errors.SPK_ERR_TASKS_QUEUE_FULL(this.#options.maxQueued)
    this.#tasks.set(task.id, task)
    if (held) {
      task.state = 'waiting'
      this.#held++
    } else {
      this.#enqueue(task)
    }
    return task
  }

  /** A held task's response was sent: it joins the queue. */
  release (task: Task): void {
    if (task.state !== 'waiting') return
    this.#held--
    this.#enqueue(task)
  }

  /** A held task's response was never sent: it is dropped, with a line saying so. */
  drop (task: Task): void {
    if (task.state !== 'waiting') return
    this.#held--
    task.log.warn('task dropped: its request\'s response was not sent (add it with { always: true } to run it anyway)')
    this.#done(task, 'cancelled')
  }

  /** Aborts a running task or removes a held or queued one; false when no task has that id (or it is done). */
  cancel (id: string): boolean {
    const task = this.#tasks.get(id)
    if (task === undefined) return false
    task.log.info({ state: task.state }, 'task cancelled')
    this.#stop(task, new DOMException(CANCELLED, 'AbortError'))
    return true
  }

  stats (): TaskStats {
    return { queued: this.#queued.size + this.#held, running: this.#running, succeeded: this.#succeeded, failed: this.#failed, cancelled: this.#cancelled }
  }

  /** Every task not done yet, for the log at the end of the shutdown budget. */
  get unfinished (): Task[] { return [...this.#tasks.values()] }

  /** Resolves when no task is held, queued or running. */
  async idle (): Promise<void> {
    if (this.#tasks.size === 0) return
    await new Promise<void>((resolve) => this.#idle.add(resolve))
  }

  /** From now on add() throws SPK_ERR_TASKS_SHUTTING_DOWN. */
  refuse (): void { this.#refusing = true }

  /** Stops every task not done yet with `reason` (the end of the budget, the app closing). */
  stopAll (reason: unknown): void {
    for (const task of this.#tasks.values()) this.#stop(task, reason)
  }

  #stop (task: Task, reason: unknown): void {
    if (task.state === 'waiting') {
      this.#held--
      this.#done(task, 'cancelled')
    } else if (task.state === 'queued') {
      this.#queued.delete(task)
      this.#done(task, 'cancelled')
    } else if (task.state === 'running') {
      // The run loop counts it once the attempt (or the backoff) ends.
      task.stop(reason)
      this.#wake.get(task)?.()
    }
  }

  #enqueue (task: Task): void {
    task.state = 'queued'
    this.#queued.add(task)
    this.#pump()
  }

  #pump (): void {
    while (this.#running < this.#options.concurrency && this.#queued.size > 0) {
      const task = this.#queued.values().next().value as Task
      this.#queued.delete(task)
      task.state = 'running'
      this.#running++
      void this.#run(task)
    }
  }

  /** Attempts until one succeeds, the retries are spent, or the task is stopped. Never rejects. */
  async #run (task: Task): Promise<void> {
    let outcome: 'succeeded' | 'failed' | 'cancelled' = 'failed'
    for (;;) {
      try {
        await task.runAttempt()
        outcome = 'succeeded'
        break
      } catch (err) {
        if (task.stopped !== undefined) { outcome = 'cancelled'; break }
        if (task.attempt > task.retries) {
          task.log.error({ err, attempt: task.attempt }, 'task failed')
          break
        }
        const delayMs = this.#backoff(task.attempt)
        task.log.warn({ err, attempt: task.attempt, retryInMs: delayMs }, 'task attempt failed; retrying')
        await this.#sleep(task, delayMs)
        if (task.stopped !== undefined) { outcome = 'cancelled'; break }
      }
    }
    this.#running--
    this.#done(task, outcome)
    this.#pump()
  }

  #backoff (attempt: number): number {
    return backoff(attempt, this.#options.retryDelay, Math.random())
  }

  /**
   * Waits before a retry; a cancel or the end of the budget wakes it. The timer is not
   * unref()ed: a task waiting for its retry is work the process must not exit before
   * (stopAll() clears it when the app closes).
   */
  async #sleep (task: Task, ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms)
      function wake (): void { clearTimeout(timer); resolve() }
      this.#wake.set(task, wake)
    })
    this.#wake.delete(task)
  }

  #done (task: Task, outcome: 'succeeded' | 'failed' | 'cancelled'): void {
    task.state = 'done'
    this.#tasks.delete(task.id)
    if (outcome === 'succeeded') this.#succeeded++
    else if (outcome === 'failed') this.#failed++
    else this.#cancelled++
    if (this.#tasks.size > 0) return
    for (const resolve of this.#idle) resolve()
    this.#idle.clear()
  }
}
