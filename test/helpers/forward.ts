import type http from 'node:http'
import { request as httpRequest } from 'node:http'

/**
 * Sends one request on to `target` and its answer back, streaming both bodies; a client that
 * goes away takes the upstream request with it, and an unreachable target answers 502. With
 * `holdAnswer`, the answer waits until the function it is given is called.
 */
export function forward(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  target: URL,
  agent: http.Agent,
  holdAnswer: (deliver: () => void) => void = (deliver) => deliver(),
): void {
  const upstream = httpRequest(
    {
      agent,
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers: request.headers,
    },
    (answer) =>
      holdAnswer(() => {
        response.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(response)
        answer.on('error', () => response.destroy())
      }),
  )
  upstream.on('error', () => {
    if (response.headersSent) response.destroy()
    else response.writeHead(502).end()
  })
  request.on('error', () => upstream.destroy())
  request.on('close', () => {
    if (!request.complete) upstream.destroy()
  })
  request.pipe(upstream)
}
