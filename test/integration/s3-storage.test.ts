import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest'
import { createLogger } from '../../src/lib/logger.ts'
import { MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { openConnection, rawRequest } from '../helpers/raw-http.ts'
import { expectStoredOnce, recordsFor, uploadLocksHeld } from '../helpers/records.ts'
import { TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { TcpProxy } from '../helpers/tcp-proxy.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

const s3Store = TEST_STORES.find((store) => store.name === 's3') as TestStore

describe('S3 storage with presigned downloads and a key prefix', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer(
      { AWS_LOCATION: '/tenant-a/', AWS_QUERYSTRING_EXPIRE: '600' },
      s3Store,
    )
  })

  afterAll(async () => {
    await server?.close()
  })

  it('keeps objects under <AWS_LOCATION>uploads/YYYY/MM/<id>', async () => {
    const bytes = pngBytes(20_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'p.png' },
    })
    const { file, events } = await recordsFor(server.knex, id)
    expect(file.storage_key).toMatch(new RegExp(`^tenant-a/uploads/\\d{4}/\\d{2}/${id}$`))
    expect(events[0].payload.storageKey).toBe(file.storage_key)
    expect(await server.storedFiles()).toContain(file.storage_key)
  })

  it('redirects a download to a freshly presigned URL that names the file and serves Range', async () => {
    const bytes = pngBytes(30_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'café.png' },
    })

    const response = await fetch(`${server.url}/api/files/${id}/content`, { redirect: 'manual' })

    expect(response.status).toBe(302)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const location = new URL(response.headers.get('location') ?? '')
    expect(location.origin).toBe(new URL(s3Endpoint(server)).origin)
    expect(location.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/)
    expect(location.searchParams.get('X-Amz-Expires')).toBe('600')
    expect(location.searchParams.get('response-content-disposition')).toBe(
      `attachment; filename="caf_.png"; filename*=UTF-8''caf%C3%A9.png`,
    )
    expect(location.searchParams.get('response-content-type')).toBe('image/png')
    const signedAt = location.searchParams.get('X-Amz-Date') ?? ''
    const signedAtMs = Date.parse(
      signedAt.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    )
    expect(Math.abs(Date.now() - signedAtMs)).toBeLessThan(60_000)

    const whole = await fetch(location)
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(bytes))
    const part = await fetch(`${server.url}/api/files/${id}/content`, {
      headers: { Range: 'bytes=10-19' },
    })
    expect(part.status).toBe(206)
    expect(Buffer.from(await part.arrayBuffer())).toEqual(bytes.subarray(10, 20))
  })

  it('redirects a download from the tus upload URL by the same rule', async () => {
    const bytes = pngBytes(20_000)
    const { url } = await uploadWithTus(server.tusEndpoint, bytes, { parallelUploads: 2 })

    const response = await fetch(url, { redirect: 'manual' })

    expect(response.status).toBe(302)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const location = new URL(response.headers.get('location') ?? '')
    expect(location.origin).toBe(new URL(s3Endpoint(server)).origin)
    expect(sha256(Buffer.from(await (await fetch(location)).arrayBuffer()))).toBe(sha256(bytes))
  })
})

function s3Endpoint(server: TestServer): string {
  const { storage } = server.config
  if (storage.backend !== 's3' || !storage.endpoint) throw new Error('not an S3 test server')
  return storage.endpoint
}

describe('S3 writes whose body fails while an incomplete part is pending', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, s3Store)
  })

  afterAll(async () => {
    await server?.close()
  })

  it('answers 413 to a chunked PATCH that runs past Upload-Length, keeps only the bytes before it, and the upload goes on to its exact sha256', async () => {
    const bytes = pngBytes(300_000)
    const created = await createUpload(server.tusEndpoint, bytes.length, { filename: 'tail.png' })
    const url = created.headers.get('location') ?? ''
    // 100 KB is under the minimum part size: S3Store keeps it as the upload's .part tail.
    expect((await patchUpload(url, 0, bytes.subarray(0, 100_000))).status).toBe(204)

    // No Content-Length: the body's excess is only found while S3Store reads the tail first.
    const tooLong = await fetch(url, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'Upload-Offset': '100000',
        'Content-Type': 'application/offset+octet-stream',
      },
      body: Readable.toWeb(
        Readable.from([bytes.subarray(100_000), new Uint8Array(50_000)]),
      ) as ReadableStream,
      duplex: 'half',
    } as RequestInit)

    expect(tooLong.status).toBe(413)
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    const offset = Number(head.headers.get('upload-offset'))
    // What arrived before the excess is kept (it is the file's own bytes), never more.
    expect(offset).toBeLessThanOrEqual(bytes.length)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, { uploadUrl: url })
    expect((await recordsFor(server.knex, id)).file.sha256).toBe(sha256(bytes))
  })
})

describe('S3 writes whose body is cut after a part landed', () => {
  let server: TestServer
  const logged: Array<{ level: string; message: string; component?: string }> = []

  beforeAll(async () => {
    const logger = createLogger('debug', {
      format: 'json',
      write: (line) => logged.push(JSON.parse(line)),
    })
    server = await startTestServer({}, s3Store, { logger })
  })

  afterAll(async () => {
    await server?.close()
  })

  it('keeps the part S3 acknowledged and no more than a tail of the cut one, then ends with the exact sha256 and no tail left', async () => {
    // The test store's parts are 5 MiB: a 1 MiB PATCH leaves a tail, which the next PATCH's
    // first part (1 MiB of tail + 4 MiB) takes in.
    const bytes = pngBytes(12 * MiB)
    const created = await createUpload(server.tusEndpoint, bytes.length, { filename: 'cut.png' })
    const url = created.headers.get('location') ?? ''
    const id = url.slice(url.lastIndexOf('/') + 1)
    const key = (await recordsFor(server.knex, id)).file.storage_key as string
    expect((await patchUpload(url, 0, bytes.subarray(0, MiB))).status).toBe(204)
    const connection = await openConnection(server.url)
    connection.socket.write(
      rawRequest('PATCH', new URL(url).pathname, [
        ['Tus-Resumable', '1.0.0'],
        ['Upload-Offset', String(MiB)],
        ['Content-Type', 'application/offset+octet-stream'],
        ['Content-Length', String(bytes.length - MiB)],
      ]),
    )
    connection.socket.write(bytes.subarray(MiB, 7 * MiB))
    const storage = server.container.datastore.storage
    await waitUntil('S3 acknowledged the first part', async () => {
      return ((await storage.progress(key))?.offset ?? 0) >= 5 * MiB
    })

    const consoleWarn = vi.spyOn(console, 'warn')
    connection.socket.destroy()
    await connection.closed
    await waitUntil('the cut PATCH let the upload go', async () => {
      return (await uploadLocksHeld(server.knex)) === 0
    })
    // The SDK reports the part's request the store aborted, in tusbox's log, as no warning.
    expect(consoleWarn).not.toHaveBeenCalled()
    consoleWarn.mockRestore()
    expect(logged.filter(({ component }) => component === 'aws-sdk')).toContainEqual(
      expect.objectContaining({
        level: 'debug',
        message: expect.stringContaining('streaming request'),
      }),
    )
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    const offset = Number(head.headers.get('upload-offset'))
    // The first part, and the first bytes of the second (up to 1 MiB), which had all arrived.
    expect(offset).toBeGreaterThan(5 * MiB)
    expect(offset).toBeLessThanOrEqual(6 * MiB)
    await uploadWithTus(server.tusEndpoint, bytes, { uploadUrl: url })

    await expectStoredOnce(server.knex, id, bytes)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([
      key,
      `${key}.info`,
    ])
  })
})

describe('S3 that stops answering', () => {
  let server: TestServer
  let s3: TcpProxy

  beforeAll(async () => {
    // tusbox reaches the S3 server through a proxy that can hold its requests: an S3 that
    // accepts a connection and then says nothing, as a silent network path or a stuck server does.
    s3 = await TcpProxy.start({ targetPort: Number(new URL(inject('s3').endpoint).port) })
    server = await startTestServer({ AWS_S3_ENDPOINT_URL: s3.url, S3_IDLE_TIMEOUT: '1s' }, s3Store)
  })

  afterAll(async () => {
    await server?.close()
    await s3?.close()
  })

  it('fails a PATCH whose S3 request goes silent for S3_IDLE_TIMEOUT, lets the upload go, and the client resumes once S3 answers', async () => {
    const bytes = pngBytes(300 * 1024)
    const created = await createUpload(server.tusEndpoint, bytes.length, { filename: 'quiet.png' })
    const url = created.headers.get('location') ?? ''
    expect((await patchUpload(url, 0, bytes.subarray(0, 100 * 1024))).status).toBe(204)

    await s3.holdAfter(s3.bytesToServer)
    const stalled = await patchUpload(url, 100 * 1024, bytes.subarray(100 * 1024, 200 * 1024))

    expect(stalled.status).toBe(500)
    await waitUntil('the stalled PATCH let the upload go', async () => {
      return (await uploadLocksHeld(server.knex)) === 0
    })
    s3.release()
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, { uploadUrl: url })
    await expectStoredOnce(server.knex, id, bytes)
  })
})
