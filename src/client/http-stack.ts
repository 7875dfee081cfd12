import type { ClientRequest, IncomingMessage } from 'node:http'
import * as tus from 'tus-js-client'

/**
 * tus-js-client's Node HTTP stack (lib/node/httpStack.js in 4.3.1, and still in 5.0.0-pre2)
 * settles a request on its response's 'end' only. When the connection is cut inside a response
 * body (an error's JSON, a RUFH completion's), Node reports it on the response, never on the
 * request, so the upload waits forever. This stack turns such a response into the network error
 * that a request cut earlier gives, which tus-js-client retries as it would that one.
 */
export class CutResponseAwareHttpStack implements tus.HttpStack {
  readonly #inner = new tus.DefaultHttpStack({})

  createRequest(method: string, url: string): tus.HttpRequest {
    return new CutResponseAwareRequest(this.#inner.createRequest(method, url))
  }

  getName(): string {
    return 'CutResponseAwareHttpStack'
  }
}

class CutResponseAwareRequest implements tus.HttpRequest {
  readonly #inner: tus.HttpRequest

  constructor(inner: tus.HttpRequest) {
    this.#inner = inner
  }

  getMethod(): string {
    return this.#inner.getMethod()
  }

  getURL(): string {
    return this.#inner.getURL()
  }

  setHeader(header: string, value: string): void {
    this.#inner.setHeader(header, value)
  }

  getHeader(header: string): string | undefined {
    return this.#inner.getHeader(header)
  }

  setProgressHandler(handler: (bytesSent: number) => void): void {
    this.#inner.setProgressHandler(handler)
  }

  send(body: unknown): Promise<tus.HttpResponse> {
    const answered = this.#inner.send(body)
    // Created by send, synchronously: listened to before any byte of the response can arrive.
    const request = this.#inner.getUnderlyingObject() as ClientRequest
    const cut = new Promise<never>((_, reject) => {
      request.on('response', (response: IncomingMessage) => {
        response.on('close', () => {
          if (!response.complete) reject(new Error('the connection closed inside the response'))
        })
      })
    })
    cut.catch(() => undefined)
    return Promise.race([answered, cut])
  }

  abort(): Promise<void> {
    return this.#inner.abort()
  }

  getUnderlyingObject(): unknown {
    return this.#inner.getUnderlyingObject()
  }
}
