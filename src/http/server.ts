import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import type { Logger } from '../lib/logger.ts'

export interface HttpServerOptions {
  readonly fetch: (request: Request) => Response | Promise<Response>
  readonly hostname: string
  readonly port: number
  readonly logger: Logger
}

export interface HttpServer {
  readonly port: number
  /**
   * Stops accepting connections at once; requests in flight get `gracePeriodMs` to end, then
   * their connections are closed. Resolves once every request handler has returned, so the
   * work they started (bytes being saved, a finish transaction) is done before the pool closes.
   */
  close(gracePeriodMs: number): Promise<void>
}

/** The Hono app on node:http, with a shutdown that neither hangs on nor drops a request in flight. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { hostname, port, logger } = options
  const handlers = new Set<Promise<unknown>>()
  let closing = false

  const server = serve({
    hostname,
    port,
    fetch: (request) => {
      const handled = Promise.resolve()
        .then(() => options.fetch(request))
        .then((response) => {
          // A kept-alive connection would take the client's next request to a server going away.
          if (closing) response.headers.set('Connection', 'close')
          return response
        })
      const settled = handled.then(
        () => undefined,
        () => undefined,
      )
      handlers.add(settled)
      void settled.then(() => handlers.delete(settled))
      return handled
    },
  })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `${hostname}:${port} is already in use: stop what listens there, or set PORT.`,
            )
          : error,
      ),
    )
  })

  return {
    port: (server.address() as AddressInfo).port,
    async close(gracePeriodMs) {
      closing = true
      const closed = new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      )
      if ('closeIdleConnections' in server) server.closeIdleConnections()
      logger.info('no longer accepting connections', {
        requestsInFlight: handlers.size,
        gracePeriodMs,
      })
      // A PATCH can run for minutes. Cut, its bytes so far are kept (@tus/server writes what
      // it received before the body ends) and the client resumes from them after a restart.
      const timer = setTimeout(() => {
        logger.warn('grace period over: closing connections', { requestsInFlight: handlers.size })
        if ('closeAllConnections' in server) server.closeAllConnections()
      }, gracePeriodMs)
      try {
        await closed
      } finally {
        clearTimeout(timer)
      }
      await Promise.all(handlers)
    },
  }
}
