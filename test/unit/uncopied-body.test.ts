import { once } from 'node:events'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { withUncopiedBody } from '../../src/http/uncopied-body.ts'

type Handler = (incoming: IncomingMessage, outgoing: ServerResponse) => Promise<void>

const servers: http.Server[] = []

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

/** A real node:http server on loopback whose requests `handle` answers. */
async function serve(handle: Handler): Promise<string> {
  const server = http.createServer((incoming, outgoing) => {
    handle(incoming, outgoing).catch((error: unknown) => {
      outgoing.statusCode = 599
      outgoing.end(String(error))
    })
  })
  servers.push(server)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/files/x`
}

function webRequest(incoming: IncomingMessage): Request {
  const original = new Request(`http://127.0.0.1${incoming.url}`, {
    method: incoming.method ?? 'GET',
    headers: incoming.headers as Record<string, string>,
  })
  return withUncopiedBody(original, incoming)
}

describe('withUncopiedBody', () => {
  it('hands on the very buffers Node read, every byte in order', async () => {
    const body = Buffer.alloc(3 * 1024 * 1024, 'tusbox ')
    let sameBuffers = true
    let received = Buffer.alloc(0)
    const url = await serve(async (incoming, outgoing) => {
      const seen: Buffer[] = []
      incoming.on('data', (chunk: Buffer) => seen.push(chunk))
      const request = webRequest(incoming)
      const chunks: Uint8Array[] = []
      for await (const chunk of request.body as ReadableStream<Uint8Array>) chunks.push(chunk)
      sameBuffers = chunks.every((chunk, index) => chunk === seen[index])
      received = Buffer.concat(chunks)
      outgoing.end('ok')
    })

    const answer = await fetch(url, { method: 'PATCH', body })

    expect(answer.status).toBe(200)
    expect(received.equals(body)).toBe(true)
    expect(sameBuffers).toBe(true)
  })

  it('keeps the connection for the answer when a complete request cancels its body', async () => {
    const url = await serve(async (incoming, outgoing) => {
      await webRequest(incoming).body?.cancel()
      outgoing.statusCode = 201
      outgoing.end()
    })

    const answer = await fetch(url, { method: 'POST' })

    expect(answer.status).toBe(201)
  })

  it('fails the body with the connection reset when the client goes away mid-body', async () => {
    const firstChunk = Promise.withResolvers<void>()
    const failure = Promise.withResolvers<unknown>()
    const url = await serve(async (incoming, outgoing) => {
      const reader = (webRequest(incoming).body as ReadableStream<Uint8Array>).getReader()
      try {
        for (;;) {
          if ((await reader.read()).done) break
          firstChunk.resolve()
        }
        failure.resolve(undefined)
      } catch (error) {
        failure.resolve(error)
      }
      outgoing.end()
    })
    const client = http.request(url, {
      method: 'PATCH',
      headers: { 'Content-Length': String(1024 * 1024) },
    })
    client.on('error', () => undefined)
    client.write(Buffer.alloc(64 * 1024))
    await firstChunk.promise

    client.destroy()

    expect(await failure.promise).toMatchObject({ code: 'ECONNRESET' })
  })

  it('leaves requests of other methods as the adapter made them', async () => {
    const original = new Request('http://127.0.0.1/files/x', { method: 'DELETE' })
    const url = await serve(async (incoming, outgoing) => {
      expect(withUncopiedBody(original, incoming)).toBe(original)
      outgoing.end()
    })

    expect((await fetch(url, { method: 'DELETE' })).status).toBe(200)
  })
})
