import type { IncomingMessage } from 'node:http'
import { finished } from 'node:stream'

/** The methods whose bodies are uploads, tus's and RUFH's; others keep the adapter's request. */
const BODY_METHODS = new Set(['POST', 'PATCH'])

/**
 * The request with its body read straight from Node's stream. @hono/node-server hands a body on
 * through Readable.toWeb, which copies every chunk into a new buffer (to detach it from Buffer's
 * pool, in case a reader transfers it): on the upload path that doubled the memory allocated per
 * byte received, and with it the garbage collector's work and the peak memory of many uploads at
 * once. Nothing on that path transfers a chunk (@tus/server and the RUFH handler turn the body back
 * into a Node stream, and the digests copy what they keep), so the chunks are queued as the parser
 * gave them, in a stream that holds as much as toWeb's would and ends, fails and cancels as it does.
 * Undefined `incoming` (a request that did not come through Node's server, as in app.request)
 * leaves the request as it is.
 */
export function withUncopiedBody(request: Request, incoming: IncomingMessage | undefined): Request {
  if (!incoming || !BODY_METHODS.has(request.method)) return request
  return new Request(request.url, {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    body: bodyOf(incoming),
    duplex: 'half',
  })
}

function bodyOf(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  let controller!: ReadableStreamDefaultController<Uint8Array>
  // Once the reader cancels, the stream is closed: what Node's stream does next is not news.
  let open = true
  // Node's server destroys a request whose connection closes with an error ('aborted') at any
  // time, even once this stream has settled or been cancelled: the failure reaches the reader
  // through `finished` below, and must never reach the process as an uncaught 'error' event.
  incoming.on('error', () => undefined)
  const stopWatching = finished(incoming, (error) => {
    stopWatching()
    if (!open) return
    open = false
    if (error) controller.error(asAbortError(error))
    else controller.close()
  })
  // Nothing flows before the reader asks (pull).
  incoming.pause()
  incoming.on('data', (chunk: Buffer) => {
    if (!open) return
    controller.enqueue(chunk)
    if ((controller.desiredSize ?? 0) <= 0) incoming.pause()
  })
  return new ReadableStream<Uint8Array>(
    {
      start: (streamController) => {
        controller = streamController
      },
      pull: () => {
        incoming.resume()
      },
      cancel: (reason) => {
        open = false
        endWithoutItsConnection(incoming, reason)
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: incoming.readableHighWaterMark }),
  )
}

/**
 * What Node's stream.destroy does to a server's request (internal/streams/destroy.js, which
 * Readable.toWeb's cancel calls): the request is let go of, its connection is not, since it still
 * carries the answer (a creation that cancels its empty body answers 201 on it).
 */
function endWithoutItsConnection(incoming: IncomingMessage, reason: unknown): void {
  if (incoming.destroyed) return
  const error =
    reason instanceof Error
      ? reason
      : incoming.readableEnded
        ? undefined
        : new DOMException('The body was cancelled.', { name: 'AbortError' })
  Object.assign(incoming, { socket: null })
  incoming.destroy(error)
}

/**
 * A client that goes away mid-body is an abort, as Readable.toWeb reports it: @tus/server keeps
 * the bytes that arrived (ERRORS.ABORTED) only for an error named AbortError.
 */
function asAbortError(error: Error): Error {
  if ((error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') return error
  return new DOMException('The client closed the connection before its body ended.', {
    name: 'AbortError',
    cause: error,
  })
}
