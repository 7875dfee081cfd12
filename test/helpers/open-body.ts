import { type ClientRequest, request as httpRequest, type IncomingHttpHeaders } from 'node:http'

export interface OpenBodyReply {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

export interface OpenBody {
  readonly request: ClientRequest
  /** Settles when the server answers, whether or not the body was sent in full. */
  readonly reply: Promise<OpenBodyReply>
}

/**
 * A request whose body the test writes piece by piece and may never finish: what a slow or
 * hostile client sends. Write errors after the server answered (it may close) are ignored.
 */
export function openBody(url: string, method: string, headers: Record<string, string>): OpenBody {
  const request = httpRequest(url, { method, headers })
  const reply = new Promise<OpenBodyReply>((resolve, reject) => {
    request.on('error', reject)
    request.on('response', (response) => {
      request.removeListener('error', reject)
      request.on('error', () => {})
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      )
    })
  })
  return { request, reply }
}

export function errorCodeOf(reply: OpenBodyReply): string {
  return (JSON.parse(reply.body) as { error: { code: string } }).error.code
}
