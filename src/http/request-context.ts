import { randomUUID } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { type Logger, withLogContext } from '../lib/logger.ts'

export const REQUEST_ID_HEADER = 'X-Request-Id'

/** What a proxy or client may name a request: a token that is safe in a log line and a header. */
const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/

/** The request's id: the caller's X-Request-Id when it is a sane token, else a new UUID. */
export function requestIdOf(header: string | undefined): string {
  return header !== undefined && SANE_REQUEST_ID.test(header) ? header : randomUUID()
}

/**
 * Gives every request an id, answers with it in X-Request-Id, and puts it on every line logged
 * while the request is handled (tus hooks add the upload's id once they know it). A proxy's id
 * is kept, so one id follows the request from the edge to tusbox's logs.
 */
export function requestContext(logger: Logger): MiddlewareHandler {
  return async (c, next) => {
    const requestId = requestIdOf(c.req.header(REQUEST_ID_HEADER))
    const started = performance.now()
    await withLogContext({ requestId }, async () => {
      await next()
      logger.debug('request handled', {
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        durationMs: Math.round(performance.now() - started),
      })
    })
    c.res.headers.set(REQUEST_ID_HEADER, requestId)
  }
}
