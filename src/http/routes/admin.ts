import { Hono } from 'hono'
import type { OutboxOperations } from '../../outbox/operations.ts'

/** Ops figures; open until authentication lands, then limited to admins. */
export function adminRoutes(operations: OutboxOperations): Hono {
  const routes = new Hono()
  routes.get('/outbox', async (c) => c.json(await operations.overview()))
  return routes
}
