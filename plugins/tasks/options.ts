import { Type, type Static } from '@sinclair/typebox'
import { Duration, optionsResolver, type Defaulted } from '../../src/schema.js'
import { formatDuration, type FeatureDefinition } from '../../src/feature.js'

/** The most retries a task may have (`tasks.retries`, and `add({ retries })`). */
export const MAX_RETRIES = 10

export const TasksOptionsSchema = Type.Object({
  concurrency: Type.Optional(Type.Integer({
    minimum: 1,
    default: 10,
    description: 'How many tasks run at once in this process; the others wait in the queue. A task waiting to be retried keeps its place.'
  })),
  maxQueued: Type.Optional(Type.Integer({
    minimum: 0,
    default: 1000,
    description: 'How many tasks may wait to start (those of a request whose response is not sent yet included; running ones do not count). Past it, `add()` throws SPK_ERR_TASKS_QUEUE_FULL: a 503 problem when thrown in a handler.'
  })),
  timeout: Type.Optional(Duration({
    default: '30s',
    minimum: 1,
    minimumText: '1 ms',
    description: 'Each attempt of a task gets this long; then its `ctx.signal` is aborted, the attempt counts as failed (and is retried if retries are left) and its place goes to the next task. Per task: `add({ fn, timeout })`.'
  })),
  retries: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: MAX_RETRIES,
    default: 0,
    description: 'How many times a failed task is tried again, with exponential backoff and jitter (see `retryDelay`). Per task: `add({ fn, retries })`.'
  })),
  retryDelay: Type.Optional(Duration({
    default: '1s',
    description: 'The backoff before the first retry; each next one doubles it (at most 1 minute), and each is drawn at random between half of it and all of it (jitter), so failed tasks do not retry in lockstep.'
  }))
}, { additionalProperties: false })

export type TasksOptions = Static<typeof TasksOptionsSchema>
export type ResolvedTasksOptions = Defaulted<typeof TasksOptionsSchema>
export const resolveTasksOptions = optionsResolver(TasksOptionsSchema, 'tasks')

export const tasksFeature = {
  plugin: async () => await import('./index.js'),
  schema: TasksOptionsSchema,
  summary: 'Background tasks after the response (`request.tasks.add(fn, ...args)`) or now (`app.tasks.add`): bounded concurrency and queue, timeouts, retries, drained at shutdown. In memory: a crash loses them.',
  enabledByDefault: true,
  settings: (o) => `concurrency=${o.concurrency} maxQueued=${o.maxQueued} timeout=${formatDuration(o.timeout)} retries=${o.retries}${o.retries > 0 ? ` retryDelay=${formatDuration(o.retryDelay)}` : ''}`
} satisfies FeatureDefinition<typeof TasksOptionsSchema, ResolvedTasksOptions>
