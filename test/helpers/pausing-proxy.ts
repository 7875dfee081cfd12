import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { forward } from './forward.ts'

export interface PausingProxy {
  readonly url: string
  /** Body bytes of the PATCH requests forwarded since the last `passAll`. */
  readonly patchBytes: number
  /**
   * Lets the next `count` PATCH requests through, then holds every later one unanswered (its
   * body unread) until the client gives up on it. Resolves when the first one is held: by then
   * the client has had the answers to the `count` before it.
   */
  holdPatchesAfter(count: number): Promise<void>
  /**
   * Forwards the next request of `method` but holds its answer (a POST: the server has created
   * the upload, the client does not know it yet); later ones pass. Resolves when it is held.
   */
  holdNextAnswer(method: 'POST' | 'GET'): Promise<void>
  /** Forwards every request again, delivers held answers, and counts PATCH bytes from zero. */
  passAll(): void
  close(): Promise<void>
}

/**
 * A reverse proxy in front of one server that can stop an upload midway, at a known point: a
 * client interrupted while its PATCH is held has exactly the acknowledged chunks on the server.
 * Start the server with PUBLIC_URL set to the proxy's URL, so that tus Location headers lead
 * through it.
 */
export async function startPausingProxy(): Promise<
  PausingProxy & { setTarget(url: string): void }
> {
  let target: URL | undefined
  let patchBytes = 0
  let allowed = Number.POSITIVE_INFINITY
  let onHeld: (() => void) | undefined
  let holdMethod: string | undefined
  let onAnswerHeld: (() => void) | undefined
  const heldAnswers: Array<() => void> = []
  const agent = new http.Agent({ keepAlive: true })

  const server = http.createServer((request, response) => {
    if (!target) {
      response.writeHead(503).end()
      return
    }
    if (request.method === 'PATCH') {
      if (allowed <= 0) {
        onHeld?.()
        onHeld = undefined
        return
      }
      allowed--
      request.on('data', (chunk: Buffer) => {
        patchBytes += chunk.length
      })
    }
    if (request.method === holdMethod) {
      holdMethod = undefined
      forward(request, response, target, agent, (deliver) => {
        heldAnswers.push(deliver)
        onAnswerHeld?.()
        onAnswerHeld = undefined
      })
      return
    }
    forward(request, response, target, agent)
  })
  server.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get patchBytes() {
      return patchBytes
    },
    setTarget(url) {
      target = new URL(url)
    },
    holdPatchesAfter(count) {
      allowed = count
      return new Promise<void>((resolve) => {
        onHeld = resolve
      })
    },
    holdNextAnswer(method) {
      holdMethod = method
      return new Promise<void>((resolve) => {
        onAnswerHeld = resolve
      })
    },
    passAll() {
      allowed = Number.POSITIVE_INFINITY
      onHeld = undefined
      holdMethod = undefined
      onAnswerHeld = undefined
      for (const deliver of heldAnswers.splice(0)) deliver()
      patchBytes = 0
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      agent.destroy()
    },
  }
}
