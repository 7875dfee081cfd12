import { Hono } from 'hono'
import type { OutboxOperations } from '../../outbox/operations.ts'
import { type AppEnv, requireAdmin } from '../auth.ts'

/** Ops figures, for tokens with the admin claim (AUTH_ADMIN_CLAIM). */
export function adminRoutes(operations: OutboxOperations): Hono<AppEnv> {
  const routes = new Hono<AppEnv>()
  routes.use('*', requireAdmin)
  routes.get('/outbox', async (c) => c.json(await operations.overview()))
  return routes
}
