import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createHttpServer, HTTP_LIMITS } from '../../src/http/server.ts'
import { createLogger } from '../../src/lib/logger.ts'

describe('createHttpServer', () => {
  let server: Server | undefined

  afterEach(async () => {
    await new Promise<void>((resolve) => {
      server?.close(() => resolve())
      server?.closeAllConnections()
    })
  })

  async function listen(fetch: (request: Request) => Promise<Response>, idleTimeoutMs = 60_000) {
    server = createHttpServer(fetch, {
      hostname: '127.0.0.1',
      logger: createLogger('silent'),
      limits: { ...HTTP_LIMITS, idleTimeoutMs },
    })
    await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  it('keeps the connection of a request the server is still working on past the idle timeout', async () => {
    let finishWork = () => {}
    const working = new Promise<void>((resolve) => {
      finishWork = resolve
    })
    const url = await listen(async () => {
      await working
      return new Response('done')
    }, 100)
    // The work ends only once the idle timeout has fired on this connection.
    server?.on('timeout', () => finishWork())

    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('done')
  })

  it('answers 500 internal_error, without the error message, when the handler itself rejects', async () => {
    const url = await listen(() => Promise.reject(new Error('open /srv/tusbox/secret failed')))

    const response = await fetch(url)
    expect(response.status).toBe(500)
    expect(await response.json()).toEqual({
      error: { code: 'internal_error', message: 'Something went wrong; try again.' },
    })
  })
})
