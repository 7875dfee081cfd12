import type { ErrorKind } from './errors.ts'

/** The one table both edges (the JSON API and the tus endpoint) use to turn a kind into a status. */
export const STATUS_BY_KIND: Readonly<Record<ErrorKind, number>> = {
  invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  gone: 410,
  conflict: 409,
  too_large: 413,
  unsupported_type: 415,
  range_not_satisfiable: 416,
  too_many: 429,
  unavailable: 503,
}

/**
 * Retry-After on a 503: a database restart or failover takes seconds. tus-js-client keeps to its
 * own retryDelays; other clients and proxies honour this.
 */
export const RETRY_AFTER_SECONDS = 5

export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } })
}
