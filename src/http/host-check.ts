import type { MiddlewareHandler } from 'hono'
import { jsonError } from './errors.ts'

/** Paths a probe may reach under any name: they reveal nothing, and orchestrators use pod IPs. */
const ANY_HOST_PATHS = new Set(['/healthz', '/readyz'])

/**
 * The names an anonymous (AUTH_MODE=none) server answers to: loopback, HOST and PUBLIC_URL's
 * host. Without a token to check, the Host header is what stops DNS rebinding: a page the
 * developer visits can point its own name at 127.0.0.1, and the browser then sends that name,
 * never one of these (security review L7).
 */
export function anonymousHostNames(http: { host: string; publicUrl: string }): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '[::1]'])
  const host = hostnameOf(http.host.includes(':') ? `[${http.host}]` : http.host)
  if (host) names.add(host)
  names.add(new URL(http.publicUrl).hostname)
  return names
}

/** Answers 421 Misdirected Request (RFC 9110 §15.5.20) to a Host not in `names`. */
export function onlyHostNames(names: ReadonlySet<string>): MiddlewareHandler {
  return async (c, next) => {
    if (ANY_HOST_PATHS.has(c.req.path)) return next()
    const host = hostnameOf(c.req.header('host') ?? '')
    if (host && names.has(host)) return next()
    return jsonError(
      c,
      421,
      'misdirected_request',
      'Without AUTH_MODE=jwt this server answers only to localhost, 127.0.0.1, [::1], HOST and the PUBLIC_URL host.',
    )
  }
}

function hostnameOf(host: string): string | undefined {
  if (host === '' || !URL.canParse(`http://${host}`)) return undefined
  return new URL(`http://${host}`).hostname
}
