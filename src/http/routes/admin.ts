import { createRoute, OpenAPIHono } from '@hono/zod-openapi'
import type { OutboxOperations } from '../../outbox/operations.ts'
import { type AppEnv, requireAdmin } from '../auth.ts'
import { errorResponse, jsonResponse, OutboxOverviewSchema } from '../openapi/schemas.ts'

const outboxOverview = createRoute({
  method: 'get',
  path: '/outbox',
  summary: 'Events pending, delivered and dead, and the job queues',
  description: 'The figures of `tusbox outbox stats` and `tusbox jobs`. Needs the admin claim.',
  responses: {
    200: jsonResponse('The outbox and its queues', OutboxOverviewSchema),
    403: errorResponse('The token lacks the admin claim (AUTH_ADMIN_CLAIM)'),
  },
})

/** Ops figures, for tokens with the admin claim (AUTH_ADMIN_CLAIM). */
export function adminRoutes(operations: OutboxOperations): OpenAPIHono<AppEnv> {
  const routes = new OpenAPIHono<AppEnv>()
  routes.use('*', requireAdmin)
  routes.openapi(outboxOverview, async (c) => c.json(await operations.overview(), 200))
  return routes
}
