import type { MiddlewareHandler } from 'hono'
import { type CorsPolicy, RUFH_RESPONSE_HEADERS } from '../lib/cors-policy.ts'
import { TUS_HEADERS } from '../tus/tus-server.ts'

/** What a page may read: the tus and RUFH headers tus-js-client needs, and ours. */
const EXPOSED_HEADERS = [
  ...new Set([...TUS_HEADERS, ...RUFH_RESPONSE_HEADERS]),
  'Upload-Expires',
  'Tus-Checksum-Algorithm',
  'Retry-After',
  'Content-Disposition',
  'X-Request-Id',
].join(', ')
const API_METHODS = 'GET, POST, DELETE, OPTIONS'
const API_REQUEST_HEADERS = 'Authorization, Content-Type, Range, X-Request-Id'
const PREFLIGHT_MAX_AGE_SECONDS = '86400'

/**
 * CORS for the whole app. tus answers its own OPTIONS (also a discovery request in tus, §5.2),
 * so preflights under `tusPath` go through to it; every answer then gets the origin headers of
 * this one policy, or loses them when the origin is not allowed.
 */
export function cors(policy: CorsPolicy, tusPath: string): MiddlewareHandler {
  return async (c, next) => {
    const origin = c.req.header('origin')
    const preflight =
      c.req.method === 'OPTIONS' && c.req.header('access-control-request-method') !== undefined
    const underTus = c.req.path === tusPath || c.req.path.startsWith(`${tusPath}/`)
    if (preflight && !underTus) {
      const headers: Record<string, string> = { Vary: 'Origin' }
      if (policy.allows(origin)) {
        headers['Access-Control-Allow-Origin'] = origin
        headers['Access-Control-Allow-Methods'] = API_METHODS
        headers['Access-Control-Allow-Headers'] = API_REQUEST_HEADERS
        headers['Access-Control-Max-Age'] = PREFLIGHT_MAX_AGE_SECONDS
      }
      return c.body(null, 204, headers)
    }
    await next()
    const { headers } = c.res
    headers.append('Vary', 'Origin')
    if (policy.allows(origin)) {
      headers.set('Access-Control-Allow-Origin', origin)
      headers.set('Access-Control-Expose-Headers', EXPOSED_HEADERS)
    } else {
      headers.delete('Access-Control-Allow-Origin')
      headers.delete('Access-Control-Expose-Headers')
    }
  }
}
