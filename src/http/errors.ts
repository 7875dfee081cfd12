import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { databaseUnavailable } from '../db/errors.ts'
import { isAppError, TooManyError } from '../lib/errors.ts'
import { RETRY_AFTER_SECONDS, STATUS_BY_KIND } from '../lib/http-status.ts'
import type { Logger } from '../lib/logger.ts'
import { RangeNotSatisfiableError } from '../uploads/upload.service.ts'

export function jsonError(c: Context, status: ContentfulStatusCode, code: string, message: string) {
  return c.json({ error: { code, message } }, status)
}

/** The JSON API's single mapping from errors to responses; internals never reach the client. */
export function handleError(error: Error, c: Context, logger: Logger) {
  // A client that hung up mid-body makes reading it fail with ECONNRESET, which is not the
  // database's: nobody is left to answer, and nothing is wrong with the service.
  if (c.req.raw.signal.aborted) {
    logger.info('request aborted by the client', { method: c.req.method, path: c.req.path })
    return jsonError(c, 400, 'request_aborted', 'The request ended before it was complete.')
  }
  if (error instanceof RangeNotSatisfiableError) {
    c.header('Content-Range', `bytes */${error.size}`)
  }
  if (error instanceof TooManyError) c.header('Retry-After', String(error.retryAfterSeconds))
  if (isAppError(error) && error.kind === 'unauthenticated') {
    // RFC 6750 §3: a 401 names the scheme; an error attribute only when a token was sent.
    const challenge = error.code === 'missing_token' ? '' : ', error="invalid_token"'
    c.header('WWW-Authenticate', `Bearer realm="tusbox"${challenge}`)
  }
  const known = isAppError(error) ? error : databaseUnavailable(error)
  if (known) {
    if (known.kind === 'unavailable') {
      c.header('Retry-After', String(RETRY_AFTER_SECONDS))
      logger.warn('request failed: a service it needs is unavailable', {
        code: known.code,
        method: c.req.method,
        path: c.req.path,
        reason: known.cause instanceof Error ? known.cause.message : known.message,
      })
    }
    return jsonError(
      c,
      STATUS_BY_KIND[known.kind] as ContentfulStatusCode,
      known.code,
      known.message,
    )
  }
  logger.error('request failed', { method: c.req.method, path: c.req.path, error })
  return jsonError(c, 500, 'internal_error', 'Something went wrong; try again.')
}
