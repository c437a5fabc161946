/**
 * Who owns an unhandled rejection. Background work that can answer for the promises it
 * creates (a background task: plugins/tasks) runs inside `rejectionOwners.run(owner, ...)`.
 * Node emits 'unhandledRejection' in the async context of the promise that rejected (Node 20
 * through async hooks, Node 24 through AsyncContextFrame), so a listener reads the owner
 * with `rejectionOwner()`, however many awaits or timers after the owner's code created
 * the promise, even after that code returned. An owned rejection is the owner's failure,
 * logged by it; it must not close the server (plugins/shutdown/signals.ts).
 *
 * Why AsyncLocalStorage: it is the one way to learn, in a process-wide event, which piece
 * of work a promise belongs to. Its cost: on Node 20 the first `run()` switches async hooks
 * on for the process (as the requestContext feature does); Node 22+ needs no hooks.
 */
import { AsyncLocalStorage } from 'node:async_hooks'
import { inspect } from 'node:util'

export interface RejectionOwner {
  /** A rejection nobody handled, of a promise created in this owner's context. */
  unhandledRejection: (reason: unknown) => void
}

export const rejectionOwners = new AsyncLocalStorage<RejectionOwner>()

/** In an 'unhandledRejection' listener: the owner of the promise that rejected, if any. */
export function rejectionOwner (): RejectionOwner | undefined {
  return rejectionOwners.getStore()
}

/** Rejections already raised: several listeners (one per app) raise each one once. */
const raised = new WeakSet<Promise<unknown>>()

/**
 * Raises a rejection as an uncaught exception on the next tick, as Node does by default
 * (`--unhandled-rejections=throw`) when no listener handles it: a reason that is not an
 * Error is wrapped the way Node wraps it. Once per promise.
 */
export function raiseUncaught (reason: unknown, promise: Promise<unknown>): void {
  if (raised.has(promise)) return
  raised.add(promise)
  const error = reason instanceof Error
    ? reason
    : Object.assign(new Error(`This error originated either by throwing inside of an async function without a catch block, or by rejecting a promise which was not handled with .catch(). The promise rejected with the reason "${inspect(reason)}".`), { code: 'ERR_UNHANDLED_REJECTION' })
  process.nextTick(() => { throw error })
}
