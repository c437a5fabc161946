/**
 * Unhandled rejections inside background tasks: a task that starts a promise nobody awaits
 * (`void sendMail()`), which then rejects, must not bring the process down.
 *
 * Every attempt of a task runs as the owner of the rejections of the promises it creates
 * (src/rejections.ts); while an app with tasks is open, the listener below hands each owned
 * rejection to its task, which logs it with its id, name, attempt and request id. A
 * rejection whose promise was created outside any task's context (a connection pool's
 * callback that lost it) cannot be blamed on a task and is treated as any other.
 *
 * Any other rejection keeps Node's behaviour. A listener turns off Node's default of raising
 * an unhandled rejection as an uncaught exception, so when this one is alone it raises it
 * itself (unless the process was started with another `--unhandled-rejections` mode); when
 * another listens (the shutdown feature's, the user's), that one decides.
 */
import { raiseUncaught, rejectionOwner } from '../../src/rejections.js'

/** The `--unhandled-rejections` mode the process was started with (Node's default is `throw`). */
function mode (): string {
  const flags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)]
  for (const [i, flag] of flags.entries()) {
    if (flag.startsWith('--unhandled-rejections=')) return flag.slice('--unhandled-rejections='.length)
    if (flag === '--unhandled-rejections' && flags[i + 1] !== undefined) return flags[i + 1]
  }
  return 'throw'
}

function onUnhandledRejection (reason: unknown, promise: Promise<unknown>): void {
  const owner = rejectionOwner()
  if (owner !== undefined) {
    owner.unhandledRejection(reason)
    return
  }
  if (process.listenerCount('unhandledRejection') > 1) return
  const current = mode()
  if (current === 'throw' || current === 'strict') raiseUncaught(reason, promise)
}

let watchers = 0

/** Installs the process listener while at least one app with tasks is open; returns the function that removes this watcher. */
export function watchTaskRejections (): () => void {
  if (watchers++ === 0) process.on('unhandledRejection', onUnhandledRejection)
  let removed = false
  return () => {
    if (removed) return
    removed = true
    if (--watchers === 0) process.off('unhandledRejection', onUnhandledRejection)
  }
}
