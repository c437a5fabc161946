/**
 * Background tasks, in memory, in this process:
 *
 * - `request.tasks.add(fn, ...args)` holds the task until the response has been sent
 *   (onResponse), then queues it; when the response could not be sent (the client went
 *   away: onRequestAbort, or a response that failed) the request's tasks are dropped with
 *   a log line each, unless added with `{ always: true }`;
 * - `app.tasks.add(fn, ...args)` queues it now. Both return the task's id, and accept
 *   `{ fn, name, timeout, retries, always }` in place of `fn` for a task's own settings;
 * - `fn(ctx, ...args)` runs in the async context of whoever added it (the request's: its
 *   `requestContext`), with `ctx = { id, name, signal, log, attempt }` (./task.ts);
 * - the queue (./queue.ts) bounds concurrency and waiting tasks, times attempts out,
 *   retries with backoff; `app.tasks.cancel(id)`, `app.tasks.stats()`, `app.tasks.idle()`;
 * - a rejection nobody handled from a promise a task created is logged as the task's, and
 *   the process goes on (./rejections.ts);
 * - at shutdown (a drain hook) new tasks are refused with SPK_ERR_TASKS_SHUTTING_DOWN once
 *   the requests in flight have finished (theirs are accepted), the others get what is
 *   left of the budget; when it runs out each unfinished task is logged
 *   by id and name and its signal aborted, and the shutdown counts as overrun (exit 1).
 *
 * Nothing runs until a first task is added: the drain hook and the process's
 * unhandledRejection listener are installed then, and on a request that added none the
 * response hook only records whether the response was sent (one property write), for a
 * task added after it.
 */
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { resolveTasksOptions, type TasksOptions } from './options.js'
import { Task, type TaskFunction, type TaskSpec, type TaskStats } from './task.js'
import { TaskQueue } from './queue.js'
import { watchTaskRejections } from './rejections.js'
import { kResponseSettled } from './state.js'
import type { DrainContext } from '../../src/lifecycle.js'
import { errors } from '../../src/errors.js'

export type { TaskContext, TaskFunction, TaskSpec, TaskStats } from './task.js'

export interface RequestTasks {
  /** Runs `fn(ctx, ...args)` once the response has been sent; returns the task's id. Throws SPK_ERR_TASKS_QUEUE_FULL or SPK_ERR_TASKS_SHUTTING_DOWN (503 problems). */
  add: <A extends unknown[]>(task: TaskFunction<A> | TaskSpec<A>, ...args: A) => string
}

export interface AppTasks {
  /** Runs `fn(ctx, ...args)` as soon as a place is free; returns the task's id. */
  add: <A extends unknown[]>(task: TaskFunction<A> | TaskSpec<A>, ...args: A) => string
  /** Aborts a running task (its `ctx.signal`) or removes a waiting one; false when no unfinished task has that id. */
  cancel: (id: string) => boolean
  stats: () => TaskStats
  /** Resolves once no task is waiting or running (tests: after the response, before checking what the tasks did). */
  idle: () => Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Background tasks (the tasks feature). */
    tasks: AppTasks
  }
  interface FastifyRequest {
    /** Background tasks run after this request's response has been sent (the tasks feature). */
    readonly tasks: RequestTasks
  }
}

const kTasks = Symbol('spikard.tasks')

/** The tasks a request holds until its response is settled. */
class Held implements RequestTasks {
  readonly #tasks: Task[] = []
  /** Undefined until the response is settled: then whether it was sent. */
  sent: boolean | undefined

  constructor (readonly request: FastifyRequest, readonly create: (task: TaskFunction | TaskSpec, args: unknown[], request: FastifyRequest) => Task, readonly queue: TaskQueue) {}

  add <A extends unknown[]>(task: TaskFunction<A> | TaskSpec<A>, ...args: A): string {
    const created = this.queue.add(this.create(task as TaskFunction | TaskSpec, args, this.request), this.sent !== true)
    if (this.sent === undefined) this.#tasks.push(created)
    else if (this.sent === false && !created.always) this.queue.drop(created)
    else this.queue.release(created)
    return created.id
  }

  settle (sent: boolean): void {
    if (this.sent !== undefined) return
    this.sent = sent
    for (const task of this.#tasks) {
      if (sent || task.always) this.queue.release(task)
      else this.queue.drop(task)
    }
    this.#tasks.length = 0
  }
}

/**
 * A request's tasks: null until it adds one or its response is settled; then the tasks it
 * holds, or (none added yet) whether its response was sent, so that a task it adds later
 * (a later onResponse hook, code after `reply.send()`) is queued or dropped at once rather
 * than held for a response that has already gone.
 */
type WithTasks = FastifyRequest & { [kTasks]: Held | boolean | null }

/** Settles a request's tasks once: those it holds, or those it adds from now on. */
function settle (request: WithTasks, sent: boolean): void {
  const state = request[kTasks]
  if (state === null) request[kTasks] = sent
  else if (typeof state === 'object') state.settle(sent)
}

async function spikardTasks (app: FastifyInstance, options: TasksOptions): Promise<void> {
  const o = resolveTasksOptions(options)
  const queue = new TaskQueue(o)
  const defaults = { timeout: o.timeout, retries: o.retries }
  let unwatch: (() => void) | undefined
  /** Whether the drain hook is installed (by the first task added before the server closes). */
  let draining = false

  /**
   * Every new task; the first one installs the drain hook and the rejection listener. Once
   * the server is closing, only a request in flight may still add one (it runs to
   * completion, its tasks with it: the drain refuses new tasks once the requests are done),
   * and only when a drain hook exists to wait for it (none can be added while closing).
   */
  function create (task: TaskFunction | TaskSpec, args: unknown[], request?: FastifyRequest): Task {
    const phase = app.spikard.phase
    if (phase === 'closed' || (phase === 'closing' && (request === undefined || !draining))) throw new errors.SPK_ERR_TASKS_SHUTTING_DOWN()
    const created = new Task(task, args, defaults, request?.log ?? app.log)
    if (unwatch === undefined) {
      unwatch = watchTaskRejections()
      // An app that never adds a task has nothing to drain.
      if (phase === 'serving' || phase === 'draining') {
        app.spikard.onDrain('tasks', drain)
        draining = true
      }
    }
    return created
  }

  const tasks: AppTasks = {
    add: (task, ...args) => queue.add(create(task as TaskFunction | TaskSpec, args), false).id,
    cancel: (id) => queue.cancel(id),
    stats: () => queue.stats(),
    idle: async () => { await queue.idle() }
  }
  app.decorate('tasks', tasks)
  app.decorateRequest(kTasks, null)
  app.decorateRequest('tasks', {
    getter (this: FastifyRequest) {
      const request = this as WithTasks
      const state = request[kTasks]
      if (typeof state === 'object' && state !== null) return state
      const held = new Held(request, create, queue)
      if (state !== null) held.sent = state
      return (request[kTasks] = held)
    }
  })
  // A response Fastify never sees end (a WebSocket's 101, or none for an upgrade whose client
  // left first, ./state.ts): settled when it is written or the socket closes, or its tasks
  // would be held for ever (never run, counted in maxQueued, and waited for by the drain
  // until the shutdown budget ran out).
  app.decorateRequest(kResponseSettled, function (this: FastifyRequest, sent: boolean) { settle(this as WithTasks, sent) })

  app.addHook('onResponse', function spikardTasks (request, reply, done) {
    // Fastify reports both the response's 'finish' (sent) and its 'error' here; an error
    // destroys it unfinished. (inject()'s response never counts as writableFinished.)
    settle(request as WithTasks, reply.raw.writableFinished || !reply.raw.destroyed)
    done()
  })
  app.addHook('onRequestAbort', function spikardTasksAborted (request, done) {
    settle(request as WithTasks, false)
    done()
  })

  async function drain ({ signal, requests }: DrainContext): Promise<void> {
    // Listening from the start: the budget may run out while requests are still in flight.
    const cut = (): void => {
      queue.refuse()
      for (const task of queue.unfinished) {
        task.log.error({ state: task.state, attempt: task.attempt }, 'task unfinished at the end of the shutdown budget')
      }
      queue.stopAll(signal.reason)
    }
    signal.addEventListener('abort', cut, { once: true })
    try {
      await requests
      queue.refuse()
      const { queued, running } = queue.stats()
      if (signal.aborted || queued + running === 0) return
      app.log.info({ queued, running }, 'tasks: waiting for background tasks to finish')
      await queue.idle()
    } finally {
      signal.removeEventListener('abort', cut)
    }
  }

  app.addHook('onClose', (_app, done) => {
    queue.refuse()
    // Left after the drain hook (it failed, or the server closed without one): named, then stopped.
    for (const task of queue.unfinished) task.log.error({ state: task.state, attempt: task.attempt }, 'task unfinished when the app closed')
    queue.stopAll(new DOMException('the app closed', 'AbortError'))
    unwatch?.()
    done()
  })
}

export default fp(spikardTasks, { name: 'spikard-tasks', fastify: '5.x', decorators: { fastify: ['spikard'] } })
