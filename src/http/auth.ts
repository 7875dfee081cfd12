import type { HttpBindings } from '@hono/node-server'
import type { Context, MiddlewareHandler } from 'hono'
import type { Authenticate, Principal } from '../auth/authenticate.ts'
import { AppError } from '../lib/errors.ts'
import type { Viewer } from '../uploads/types.ts'

export interface AppEnv {
  Variables: { principal: Principal }
  /** Node's request and response, under the node:http server (absent in `app.request` tests). */
  Bindings: Partial<HttpBindings>
}

/**
 * Verifies the bearer token of every request it guards. Preflights carry no Authorization
 * header (browsers strip it, Fetch standard §4.8), so OPTIONS passes unauthenticated.
 */
export function authenticateRequests(authenticate: Authenticate): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (c.req.method === 'OPTIONS') return next()
    c.set('principal', await authenticate(c.req.header('authorization')))
    await next()
  }
}

export const requireAdmin: MiddlewareHandler<AppEnv> = async (c, next) => {
  // A bare OPTIONS (not a preflight, which CORS answers) passed authentication unchecked.
  const principal: Principal | undefined = c.get('principal')
  if (!principal) {
    throw new AppError('unauthenticated', 'missing_token', 'Send Authorization: Bearer <token>.')
  }
  if (!principal.admin) {
    throw new AppError('forbidden', 'admin_required', 'This endpoint needs an admin token.')
  }
  await next()
}

/** Whose uploads this request may touch (see Viewer). */
export function viewerOf(c: Context<AppEnv>): Viewer {
  return c.get('principal').owner
}
