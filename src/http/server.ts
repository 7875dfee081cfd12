import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { getRequestListener, type HttpBindings, RequestError } from '@hono/node-server'
import { errorBody } from '../lib/http-status.ts'
import type { Logger } from '../lib/logger.ts'

/** What one connection may cost the server before it is refused or cut off. */
export interface HttpLimits {
  /**
   * Request line plus headers, in bytes (Node's `maxHeaderSize`): 431 beyond it. tus requests
   * need little (Upload-Metadata is capped at 4 KiB), but browsers add cookies.
   */
  readonly maxHeaderBytes: number
  /** Request target (path and query) in characters: 414 beyond it. */
  readonly maxUrlLength: number
  /** From a request's first byte to the end of its headers: 408 after it (slow headers). */
  readonly headersTimeoutMs: number
  /**
   * Longest silence on a connection while a request body arrives or a response is being sent:
   * the connection is closed after it. Never applied while the server itself works on a request.
   */
  readonly idleTimeoutMs: number
  /** How long a keep-alive connection may sit unused between two requests. */
  readonly keepAliveTimeoutMs: number
}

export const HTTP_LIMITS: HttpLimits = {
  // Node's default, made explicit: README documents it, and a change must be deliberate.
  maxHeaderBytes: 16 * 1024,
  // RFC 9110 §4.1 recommends supporting at least 8000 octets in URIs; tusbox's own are short.
  maxUrlLength: 8000,
  headersTimeoutMs: 20_000,
  // No total request timeout: a PATCH may carry a whole file (tus-js-client's default chunkSize
  // is unlimited) over a slow mobile link, which takes as long as it takes. A client that stops
  // sending for a minute is gone or hostile; the bytes that arrived are kept and it can resume.
  idleTimeoutMs: 60_000,
  // Above the 60 s idle timeout of common load balancers (AWS ALB, GCP): a proxy must never
  // reuse a connection the server is closing at that moment, which the client sees as a 502.
  keepAliveTimeoutMs: 65_000,
}

/** The app's fetch; `env` hands it Node's request and response (for 1xx answers). */
type Fetch = (request: Request, env: HttpBindings) => Response | Promise<Response>

interface Exchange {
  readonly incoming: IncomingMessage
  readonly outgoing: ServerResponse
}

/**
 * The node:http server tusbox listens with, in production and in tests alike. Every refusal
 * tusbox can write itself is JSON `{error: {code, message}}`, including the ones Node's HTTP
 * parser raises (oversized headers, malformed requests, slow headers) through `clientError`.
 * A CONNECT request is the exception: Node closes its connection without an answer.
 */
export function createHttpServer(
  fetch: Fetch,
  options: { readonly hostname: string; readonly logger: Logger; readonly limits?: HttpLimits },
): Server {
  const limits = options.limits ?? HTTP_LIMITS
  const exchanges = new WeakMap<Duplex, Exchange>()
  const listener = getRequestListener(
    async (request, env) => {
      const response = await fetch(request, env as HttpBindings)
      // An answer that comes before the whole body (a refused PATCH, a 413) leaves bytes on the
      // wire; the adapter gives them 500 ms to drain and then closes the connection. Saying so
      // (RFC 9112 §9.6) keeps the client from sending its next request into a closing connection.
      return env.incoming.complete ? response : closingConnection(response)
    },
    {
      // HTTP/1.0 requests may lack Host (RFC 9112 §3.2 only requires it from HTTP/1.1 clients).
      hostname: options.hostname,
      errorHandler: (error) => {
        // RequestError: the adapter could not make a URL of the request (bad Host, a backslash in
        // the path). Anything else escaped the app's own error handler.
        if (error instanceof RequestError) {
          return jsonResponse(400, 'bad_request', `The request is malformed: ${error.message}.`)
        }
        options.logger.error('request failed outside the app', { error })
        return jsonResponse(500, 'internal_error', 'Something went wrong; try again.')
      },
    },
  )

  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      // 0 disables Node's total request timeout (300 s by default); idleTimeoutMs replaces it.
      requestTimeout: 0,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks headersTimeout on this interval, so it also bounds how late it fires.
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, limits.headersTimeoutMs / 4)),
      // Checked below, so that the 400 has a JSON body like every other refusal.
      requireHostHeader: false,
    },
    (incoming, outgoing) => {
      exchanges.set(incoming.socket, { incoming, outgoing })
      const refusal = refuseEarly(incoming, limits)
      if (refusal) {
        answerAndClose(outgoing, refusal)
        return
      }
      void listener(incoming, outgoing)
    },
  )

  server.timeout = limits.idleTimeoutMs
  // With a listener here, Node leaves timed-out sockets to us (it destroys them otherwise).
  server.on('timeout', (socket: Duplex) => {
    if (isBeingWorkedOn(exchanges.get(socket))) return
    socket.destroy()
  })

  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const exchange = exchanges.get(socket)
    // Once a response has started, any other bytes would corrupt it: only close.
    if (!socket.writable || exchange?.outgoing.headersSent || error.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    socket.end(rawResponse(clientErrorAnswer(error, limits)), () => socket.destroy())
  })
  return server
}

/**
 * The whole request is in and the answer has not started: the server is working on it (a
 * finishing upload hashes the whole file, S3 may be slow), and silence is not the client's fault.
 */
function isBeingWorkedOn(exchange: Exchange | undefined): boolean {
  if (!exchange || exchange.outgoing.writableEnded) return false
  return exchange.incoming.complete && !exchange.outgoing.headersSent
}

interface Answer {
  readonly status: number
  readonly code: string
  readonly message: string
}

function refuseEarly(incoming: IncomingMessage, limits: HttpLimits): Answer | undefined {
  if ((incoming.url ?? '').length > limits.maxUrlLength) {
    return {
      status: 414,
      code: 'uri_too_long',
      message: `The request target is limited to ${limits.maxUrlLength} characters.`,
    }
  }
  const http11 = incoming.httpVersionMajor === 1 && incoming.httpVersionMinor >= 1
  if (http11 && !incoming.headers.host) {
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host.
    return { status: 400, code: 'missing_host', message: 'HTTP/1.1 requests must send Host.' }
  }
  return undefined
}

function clientErrorAnswer(error: NodeJS.ErrnoException, limits: HttpLimits): Answer {
  switch (error.code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        code: 'headers_too_large',
        message: `The request line and headers are limited to ${limits.maxHeaderBytes} bytes.`,
      }
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        status: 408,
        code: 'request_timeout',
        message: `The request headers did not arrive within ${limits.headersTimeoutMs} ms.`,
      }
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return {
        status: 413,
        code: 'chunk_extensions_too_large',
        message: 'Chunk extensions are too large.',
      }
    default:
      return {
        status: 400,
        code: 'bad_request',
        message: `The request is not valid HTTP/1.1 (${error.code ?? 'parse error'}).`,
      }
  }
}

function closingConnection(response: Response): Response {
  const headers = new Headers(response.headers)
  headers.set('Connection', 'close')
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers,
  })
}

function jsonResponse(status: number, code: string, message: string): Response {
  return new Response(errorBody(code, message), {
    status,
    headers: { 'Content-Type': 'application/json' },
  })
}

/** The request body (if any) is left unread, so the connection cannot carry another request. */
function answerAndClose(outgoing: ServerResponse, answer: Answer): void {
  const body = errorBody(answer.code, answer.message)
  outgoing.writeHead(answer.status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
  })
  outgoing.end(body)
}

/** For clientError, where Node gives us the socket and no ServerResponse. */
function rawResponse(answer: Answer): string {
  const body = errorBody(answer.code, answer.message)
  return [
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? ''}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n')
}

export interface HttpServerOptions {
  readonly fetch: Fetch
  readonly hostname: string
  readonly port: number
  readonly logger: Logger
  /** The setting that chose `port`, named when the port is taken; default PORT. */
  readonly portSetting?: string
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

/** Listens with createHttpServer, with a shutdown that neither hangs on nor drops a request in flight. */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const { hostname, port, logger } = options
  const handlers = new Set<Promise<unknown>>()
  let closing = false

  const server = createHttpServer(
    (request, env) => {
      const handled = Promise.resolve()
        .then(() => options.fetch(request, env))
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
    { hostname, logger },
  )
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `${hostname}:${port} is already in use: stop what listens there, or set ${options.portSetting ?? 'PORT'}.`,
            )
          : error,
      ),
    )
    server.listen(port, hostname)
  })

  return {
    port: (server.address() as AddressInfo).port,
    async close(gracePeriodMs) {
      closing = true
      const closed = new Promise<void>((resolve, reject) =>
        server.close((error) => (error ? reject(error) : resolve())),
      )
      server.closeIdleConnections()
      logger.info('no longer accepting connections', {
        requestsInFlight: handlers.size,
        gracePeriodMs,
      })
      // A PATCH can run for minutes. Cut, its bytes so far are kept (@tus/server writes what
      // it received before the body ends) and the client resumes from them after a restart.
      const timer = setTimeout(() => {
        logger.warn('grace period over: closing connections', { requestsInFlight: handlers.size })
        server.closeAllConnections()
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
