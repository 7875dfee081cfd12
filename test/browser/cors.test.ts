import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, launchBrowser } from '../helpers/browser.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import type { TusOptions, TusProtocol } from '../helpers/tus-client.ts'

const SECRET = 'a-shared-hs256-secret-for-the-browser'

/** A page on an origin of its own (another port is another origin) that has tus-js-client. */
async function startPageServer(): Promise<{ server: Server; origin: string }> {
  const tusClient = await readFile(
    new URL('../../node_modules/tus-js-client/dist/tus.min.js', import.meta.url),
  )
  const server = createServer((request, response) => {
    if (request.url === '/tus.min.js') {
      response.writeHead(200, { 'Content-Type': 'text/javascript' }).end(tusClient)
      return
    }
    response
      .writeHead(200, { 'Content-Type': 'text/html' })
      .end('<!doctype html><title>another app</title><script src="/tus.min.js"></script>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }
}

/** Runs tus-js-client in the page: the browser sends its own preflights, as for any web app. */
function uploadFromPage(
  browser: Browser,
  origin: string,
  upload: {
    endpoint: string
    token: string
    bytes: Uint8Array
    protocol?: TusProtocol
    parallelUploads?: number
  },
): Promise<{ url?: string; error?: string; downloaded?: number[] }> {
  return browser.context.newPage().then(async (page) => {
    await page.goto(origin)
    return page.evaluate(
      ({ endpoint, token, bytes, protocol, parallelUploads }) =>
        new Promise<{ url?: string; error?: string; downloaded?: number[] }>((resolve) => {
          const tus = (globalThis as unknown as { tus: typeof import('tus-js-client') }).tus
          const file = new Blob([new Uint8Array(bytes)], { type: 'image/png' })
          const options: TusOptions & import('tus-js-client').UploadOptions = {
            endpoint,
            protocol,
            parallelUploads,
            chunkSize: 64 * 1024,
            retryDelays: [],
            headers: { Authorization: `Bearer ${token}` },
            metadata: { filename: 'from-the-browser.png', filetype: 'image/png' },
            // As tus-js-client's own browser specs do: download the file from its upload URL.
            onSuccess: async () => {
              const url = client.url ?? ''
              const download = await fetch(url, { headers: { Authorization: `Bearer ${token}` } })
              resolve({ url, downloaded: [...new Uint8Array(await download.arrayBuffer())] })
            },
            onError: (error) => resolve({ error: String(error) }),
          }
          const client = new tus.Upload(file, options)
          client.start()
        }),
      {
        endpoint: upload.endpoint,
        token: upload.token,
        bytes: [...upload.bytes],
        protocol: upload.protocol ?? 'tus-v1',
        parallelUploads: upload.parallelUploads ?? 1,
      },
    )
  })
}

describe('CORS from a real browser (chromium)', () => {
  let browser: Browser
  let allowed: { server: Server; origin: string }
  let other: { server: Server; origin: string }
  let server: TestServer
  let token: string

  beforeAll(async () => {
    allowed = await startPageServer()
    other = await startPageServer()
    server = await startTestServer({
      ...jwtSettings(SECRET),
      CORS_ALLOWED_ORIGINS: allowed.origin,
    })
    token = await signHs256(SECRET, { sub: 'browser-user' })
    browser = await launchBrowser()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    allowed?.server.close()
    other?.server.close()
  })

  it('uploads in 64 KiB chunks with a bearer token from an allowed origin, preflights and all', async () => {
    const bytes = pngBytes(300_000)

    const result = await uploadFromPage(browser, allowed.origin, {
      endpoint: server.tusEndpoint,
      token,
      bytes,
    })

    expect(result.error).toBeUndefined()
    const id = result.url?.split('/').at(-1) ?? ''
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('uploads over RUFH (tus-js-client ietf-draft-05) from an allowed origin, its headers allowed and exposed', async () => {
    const bytes = pngBytes(200_000)

    const result = await uploadFromPage(browser, allowed.origin, {
      endpoint: server.tusEndpoint,
      token,
      bytes,
      protocol: 'ietf-draft-05',
    })

    expect(result.error).toBeUndefined()
    const id = result.url?.split('/').at(-1) ?? ''
    await expectStoredOnce(server.knex, id, bytes)
    const metrics = await server.container.metrics.render()
    expect(metrics).toMatch(/tusbox_uploads_created_total\{protocol="rufh"\} 1/)
  })

  it('stores a parallelUploads: 4 upload from an allowed origin, and downloads it from upload.url', async () => {
    const bytes = pngBytes(300_000)

    const result = await uploadFromPage(browser, allowed.origin, {
      endpoint: server.tusEndpoint,
      token,
      bytes,
      parallelUploads: 4,
    })

    expect(result.error).toBeUndefined()
    const id = result.url?.split('/').at(-1) ?? ''
    await expectStoredOnce(server.knex, id, bytes)
    expect((await server.knex('upload_files').where({ final_id: id })).length).toBe(4)
    expect(Buffer.from(result.downloaded ?? [])).toEqual(bytes)
  })

  it('is refused by the browser itself from an origin that is not allowed, before any upload exists', async () => {
    const before = await server.knex('upload_files').count<{ count: string }[]>({ count: '*' })

    const result = await uploadFromPage(browser, other.origin, {
      endpoint: server.tusEndpoint,
      token,
      bytes: pngBytes(1_000),
    })

    expect(result.error).toMatch(/failed to create upload/)
    const after = await server.knex('upload_files').count<{ count: string }[]>({ count: '*' })
    expect(after).toEqual(before)
  })
})
