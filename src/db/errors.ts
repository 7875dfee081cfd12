import { AppError } from '../lib/errors.ts'

/**
 * SQLSTATEs that mean "no database right now" rather than "this statement is wrong": class 08
 * (connection exception), and admin_shutdown, crash_shutdown, cannot_connect_now (starting up
 * or shutting down), too_many_connections. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300'])
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
])
/**
 * What node-postgres says when a connection dies under a query, or a query comes to a client
 * that was ended because its connection failed (the upload locker's one session: a request that
 * took it just before it failed); these errors have no code.
 */
const UNAVAILABLE_MESSAGES = [
  'Connection terminated',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
]

/**
 * The error a request should answer with when `error` says the database cannot be reached (it
 * is down, restarting, or out of connections): a 503 the client may retry. Undefined for
 * anything else, which stays a bug to report.
 */
export function databaseUnavailable(error: unknown): AppError | undefined {
  if (!isConnectionFailure(error)) return undefined
  return new AppError(
    'unavailable',
    'database_unavailable',
    'The database is unavailable; try again shortly.',
    { cause: error },
  )
}

export function isConnectionFailure(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 3) return false
  const { code } = error as { code?: unknown }
  if (typeof code === 'string') {
    if (code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code)) return true
    // The same socket errors come from the S3 client, which marks its errors with $metadata.
    if (UNAVAILABLE_ERRNOS.has(code) && !('$metadata' in error)) return true
  }
  // knex: no pooled connection within acquireConnectionTimeout.
  if (error.name === 'KnexTimeoutError') return true
  // knex puts the statement in front: "select … - Connection terminated unexpectedly".
  if (UNAVAILABLE_MESSAGES.some((message) => error.message.includes(message))) return true
  return isConnectionFailure(error.cause, depth + 1)
}
