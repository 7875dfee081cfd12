import { Hono, type MiddlewareHandler } from 'hono'
import { type AppEnv, requireAdmin } from '../auth.ts'

/** The Prometheus exposition of this process's metrics. */
export interface MetricsExposition {
  readonly contentType: string
  render(): Promise<string>
}

/**
 * GET /metrics for Prometheus. With AUTH_MODE=jwt it needs a token with the admin claim, as
 * /api/admin does (Prometheus sends one with `authorization` in its scrape config); with
 * AUTH_MODE=none every request is admin, so it is open.
 */
export function metricsRoutes(
  metrics: MetricsExposition,
  authenticate: MiddlewareHandler<AppEnv>,
): Hono<AppEnv> {
  const routes = new Hono<AppEnv>()
  routes.get('/metrics', authenticate, requireAdmin, async (c) =>
    c.body(await metrics.render(), 200, { 'Content-Type': metrics.contentType }),
  )
  return routes
}
