import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { CutResponseAwareHttpStack } from '../../src/client/http-stack.ts'

/** A server on 127.0.0.1 that answers each request with `answer`, then closes if told to. */
async function rawServer(answer: string, close: boolean): Promise<Server> {
  const server = createServer((socket: Socket) => {
    socket.once('data', () => {
      socket.write(answer)
      if (close) socket.destroy()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return server
}

function urlOf(server: Server): string {
  const address = server.address()
  if (typeof address !== 'object' || !address) throw new Error('not listening')
  return `http://127.0.0.1:${address.port}/files/x`
}

describe('CutResponseAwareHttpStack', () => {
  let server: Server | undefined

  afterEach(async () => {
    server?.close()
    server = undefined
  })

  it('fails a request whose connection closes inside the response body, as a network error', async () => {
    // tus-js-client's own Node stack never settles this request (it waits for the body's end).
    const body = JSON.stringify({ error: { code: 'conflict', message: 'x'.repeat(200) } })
    server = await rawServer(
      `HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 40)}`,
      true,
    )
    const request = new CutResponseAwareHttpStack().createRequest('PATCH', urlOf(server))

    await expect(request.send(Buffer.from('bytes'))).rejects.toThrow(
      'the connection closed inside the response',
    )
  })

  it('answers a complete response with its status, headers and body', async () => {
    server = await rawServer(
      'HTTP/1.1 200 OK\r\nUpload-Offset: 5\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
      false,
    )
    const request = new CutResponseAwareHttpStack().createRequest('PATCH', urlOf(server))
    request.setHeader('Upload-Offset', '0')

    const response = await request.send(Buffer.from('bytes'))

    expect(response.getStatus()).toBe(200)
    expect(response.getHeader('Upload-Offset')).toBe('5')
    expect(response.getBody()).toBe('{}')
    expect(request.getHeader('Upload-Offset')).toBe('0')
  })
})
