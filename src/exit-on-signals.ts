/**
 * Process-level handling, through close-with-grace, for the shutdown feature (with
 * `signals`) and for `spikard start` without it: SIGTERM, SIGINT, uncaught exceptions and
 * unhandled rejections start the graceful close, then the process exits: 0 after a signal;
 * 1 after an uncaught error, when the budget runs out, or at once on a second signal or error.
 */
import closeWithGrace from 'close-with-grace'
import type { FastifyBaseLogger } from 'fastify'
import { flushLog } from './flush-log.js'
import { raiseUncaught, rejectionOwner } from './rejections.js'

/**
 * close-with-grace listens to every terminating signal and to 'beforeExit' unless told
 * not to. spikard answers SIGTERM and SIGINT only: SIGSEGV and its kind must not run
 * JavaScript, and 'beforeExit' would turn a deliberate exit code into 0.
 *
 * Unhandled rejections go through spikard's own listener rather than close-with-grace's:
 * one a background task owns (src/rejections.ts) is that task's failure, which the task logs,
 * and must not close the server; every other one is raised as an uncaught exception, which
 * close-with-grace handles like any other.
 */
const SKIP: closeWithGrace.AllEvents[] = ['SIGHUP', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2', 'beforeExit', 'unhandledRejection']

export interface ExitOnSignalsOptions {
  log: FastifyBaseLogger
  /** The budget in ms, counted from the signal: past it the process exits 1, whatever is still running. */
  timeout: number
  /** Closes the app gracefully; resolves to false when the budget ran out on the way. */
  close: (trigger: string) => Promise<boolean>
  /** What the shutdown is still waiting for, logged before an early exit. */
  pending: () => Record<string, unknown>
  /** Called when the budget runs out, or at a second signal or error, before the exit: aborts the shutdown's budget, so the drain hooks log what they leave unfinished. */
  expire?: () => void
}

/** Installs the handlers; returns the function that removes them (call it when the app closes). */
export function exitOnSignals ({ log, timeout, close, pending, expire }: ExitOnSignalsOptions): () => void {
  // close-with-grace calls process.exit() right after each of these returns: one line each.
  const grace = closeWithGrace({
    delay: timeout,
    logger: false, // every line goes through the app's logger instead
    skip: SKIP,
    onTimeout: () => {
      expire?.()
      log.error({ reason: 'budget exceeded', timeoutMs: timeout, ...pending(), exitCode: 1 }, 'shutdown did not finish in time')
    },
    // An exit at once ends the budget too: the drain hooks name what they leave (each
    // unfinished background task, lost otherwise without a line of its own).
    onSecondSignal: (signal) => {
      expire?.()
      log.error({ signal, ...pending(), exitCode: 1 }, `second ${signal} while shutting down: exiting at once`)
    },
    onSecondError: (err) => {
      expire?.()
      log.error({ err, ...pending(), exitCode: 1 }, 'uncaught error while shutting down: exiting at once')
    }
  }, async ({ signal, err }) => {
    if (err !== undefined) log.error({ err }, 'uncaught error: shutting down')
    else log.info({ signal }, `${signal ?? 'close'} received: shutting down`)
    let finished = false
    try {
      finished = await close(signal ?? (err !== undefined ? 'uncaught error' : 'close'))
    } catch (error) {
      log.error({ err: error }, 'closing the server failed')
    }
    const code = finished && err === undefined ? 0 : 1
    log[code === 0 ? 'info' : 'error']({ exitCode: code }, `exiting with code ${code}`)
    // Written out before process.exit(): spikard's destinations wait for the write under way,
    // so no line still being written can land after the ones flushed at exit.
    await flushLog(log)
    // close-with-grace exits 1 after an error or when this callback rejects, 0 otherwise.
    if (code !== 0 && err === undefined) throw new Error('graceful shutdown did not finish')
  })
  const onRejection = (reason: unknown, promise: Promise<unknown>): void => { if (rejectionOwner() === undefined) raiseUncaught(reason, promise) }
  process.on('unhandledRejection', onRejection)
  return () => {
    grace.uninstall()
    process.off('unhandledRejection', onRejection)
  }
}
