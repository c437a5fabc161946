/** A route's limit in words, for the route table of `spikard check`. No Fastify runtime import. */
import { parseDuration } from '../../src/schema.js'
import { formatDuration } from '../../src/feature.js'
import type { ResolvedRateLimitOptions } from './options.js'

/**
 * `off`, `100/1m` (the global limit, shared by the routes without their own), or a route's
 * own limit, counted apart: `10/30s own`; a key other than the address is named:
 * `1000/1h by identity own`.
 */
export function describeRouteLimit (setting: unknown, options: Pick<ResolvedRateLimitOptions, 'max' | 'timeWindow' | 'keyBy'> | false): string {
  if (options === false || setting === false) return 'off'
  const own = setting !== null && typeof setting === 'object' ? setting as { max?: number, timeWindow?: number | string, keyBy?: string } : undefined
  const max = own?.max ?? options.max
  const window = own?.timeWindow === undefined ? options.timeWindow : parseDuration(own.timeWindow)
  const keyBy = own?.keyBy ?? options.keyBy
  return `${max}/${formatDuration(window)}${keyBy === 'ip' ? '' : ` by ${keyBy}`}${own === undefined ? '' : ' own'}`
}
