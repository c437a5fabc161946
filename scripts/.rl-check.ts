import type { FastifyInstance, RouteOptions } from 'fastify'
import { describeRouteLimit } from '../plugins/rate-limit/describe.js'
type Column = [title: string, value: (route: RouteOptions, app: FastifyInstance) => string]
export const c: Column = ['RATE LIMIT', (r, app) => describeRouteLimit(r.config?.rateLimit, app.spikard.options.rateLimit)]
