/** Shared by the background-task tests: gates a test opens, waiting for a condition or a log line. */
import type { TestContext } from 'node:test'
import type { FastifyPluginAsync } from 'fastify'
import type { CreateServerConfig } from '../../src/server.js'
import { build, type TestApp } from '../helpers.js'

/** A promise the test resolves when it chooses: a task or handler waits on `opened`. */
export interface Gate { opened: Promise<void>, open: () => void }
export function gate (): Gate {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

export { until } from '../helpers.js'

/** The log lines with message `msg`. */
export const linesOf = (logs: Array<Record<string, any>>, msg: string): Array<Record<string, any>> => logs.filter((l) => l.msg === msg)

/** createServer with `config` (info-level logs captured, no process signal handlers) and `routes`; closed after the test. */
export async function setup (t: TestContext, config: CreateServerConfig, routes?: FastifyPluginAsync): Promise<TestApp> {
  const built = await build({ requestId: true, shutdown: { signals: false }, server: { logger: { level: 'debug' } }, ...config }, routes)
  t.after(() => built.app.close())
  return built
}
