import type { FastifyBaseLogger } from 'fastify'

/**
 * Waits for what the logger's destination has not written yet (pino's `flush`: a buffered
 * `server.logger.buffer` destination, or a transport such as pino-pretty), at most
 * `timeoutMs`, so a destination that never answers cannot hold up a close or an exit. A
 * logger without `flush` resolves at once.
 */
export async function flushLog (log: FastifyBaseLogger, timeoutMs = 500): Promise<void> {
  const flush = (log as { flush?: (callback: (error?: Error) => void) => void }).flush
  if (typeof flush !== 'function') return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs)
    flush.call(log, () => { clearTimeout(timer); resolve() })
  })
}
