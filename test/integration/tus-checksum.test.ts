import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { countRows, expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, encodeMetadata, errorOf, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

// tus-js-client never sends Upload-Checksum, so these tests speak tus with fetch and node:http.

const MAX_SIZE = 1024 * 1024
const CHECKSUM_MISMATCH = 460
const png = { filename: 'a.png', filetype: 'image/png' }

function uploadChecksum(algorithm: string, bytes: Uint8Array): string {
  return `${algorithm} ${createHash(algorithm).update(bytes).digest('base64')}`
}

function corrupted(bytes: Uint8Array): Buffer {
  const copy = Buffer.from(bytes)
  copy[copy.length - 1] = (copy.at(-1) ?? 0) ^ 0xff
  return copy
}

function idOf(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1)
}

describe.each(TEST_STORES)('the tus checksum extension on the $name store', (store) => {
  let server: TestServer
  let tempDir: string

  beforeAll(async () => {
    tempDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-checksum-'))
    server = await startTestServer(
      { FILE_UPLOAD_MAX_SIZE: String(MAX_SIZE), CHECKSUM_TEMP_DIR: tempDir },
      store,
    )
  })

  afterAll(async () => {
    await server?.close()
    await rm(tempDir, { recursive: true, force: true })
  })

  beforeEach(async () => {
    expect(await readdir(tempDir)).toEqual([])
  })

  async function newUpload(length: number): Promise<string> {
    const response = await createUpload(server.tusEndpoint, length, png)
    expect(response.status).toBe(201)
    return response.headers.get('location') ?? ''
  }

  async function offsetOf(url: string): Promise<string | null> {
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.status).toBe(200)
    return head.headers.get('upload-offset')
  }

  async function expectNoTempFiles() {
    expect(await readdir(tempDir)).toEqual([])
  }

  it('advertises the checksum extension and sha1, md5 and sha256 on OPTIONS', async () => {
    const response = await fetch(server.tusEndpoint, { method: 'OPTIONS' })
    expect(response.status).toBe(204)
    const extensions = response.headers.get('tus-extension')?.split(',') ?? []
    expect(extensions).toContain('checksum')
    expect(extensions).toContain('creation-with-upload')
    expect(response.headers.get('tus-checksum-algorithm')).toBe('sha1,md5,sha256')
    expect(response.headers.get('access-control-allow-headers')).toContain('Upload-Checksum')
  })

  it.each(['sha1', 'md5', 'sha256'])(
    'accepts a chunk whose %s checksum matches and advances the offset',
    async (algorithm) => {
      const url = await newUpload(300)
      const chunk = pngBytes(300).subarray(0, 120)
      const response = await patchUpload(url, 0, chunk, {
        'Upload-Checksum': uploadChecksum(algorithm, chunk),
      })
      expect(response.status).toBe(204)
      expect(response.headers.get('upload-offset')).toBe('120')
      expect(await offsetOf(url)).toBe('120')
      await expectNoTempFiles()
    },
  )

  it('answers 460 checksum_mismatch to a corrupted chunk and keeps the offset; the correct chunk then stores the file', async () => {
    const bytes = pngBytes(4000)
    const url = await newUpload(bytes.length)
    const first = bytes.subarray(0, 1500)
    const rest = bytes.subarray(1500)
    expect(
      (await patchUpload(url, 0, first, { 'Upload-Checksum': uploadChecksum('sha1', first) }))
        .status,
    ).toBe(204)

    const mismatch = await patchUpload(url, 1500, corrupted(rest), {
      'Upload-Checksum': uploadChecksum('sha256', rest),
    })
    expect(mismatch.status).toBe(CHECKSUM_MISMATCH)
    expect(mismatch.headers.get('tus-resumable')).toBe('1.0.0')
    expect((await errorOf(mismatch)).code).toBe('checksum_mismatch')
    expect(await offsetOf(url)).toBe('1500')
    await expectNoTempFiles()

    const final = await patchUpload(url, 1500, rest, {
      'Upload-Checksum': uploadChecksum('sha256', rest),
    })
    expect(final.status).toBe(204)
    expect(final.headers.get('upload-offset')).toBe(String(bytes.length))
    await expectStoredOnce(server.knex, idOf(url), bytes)
    await expectNoTempFiles()
  })

  it.each([
    ['crc32', 'crc32 AAAAAA=='],
    ['sha512', `sha512 ${createHash('sha512').update('x').digest('base64')}`],
  ])(
    'answers 400 unsupported_checksum_algorithm for %s and keeps the offset',
    async (_name, header) => {
      const url = await newUpload(100)
      const response = await patchUpload(url, 0, pngBytes(100), { 'Upload-Checksum': header })
      expect(response.status).toBe(400)
      expect((await errorOf(response)).code).toBe('unsupported_checksum_algorithm')
      expect(await offsetOf(url)).toBe('0')
    },
  )

  it.each([
    ['no space', 'sha1'],
    ['no digest', 'sha1 '],
    ['two spaces', `sha1  ${createHash('sha1').update('x').digest('base64')}`],
    ['a character outside Base64', 'sha1 2jmj7l5rSw0yVb/vlWAYkK/YBw!='],
    ['unpadded Base64', 'sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk'],
  ])(
    'answers 400 invalid_checksum for a header with %s and keeps the offset',
    async (_case, header) => {
      const url = await newUpload(100)
      const response = await patchUpload(url, 0, pngBytes(100), { 'Upload-Checksum': header })
      expect(response.status).toBe(400)
      expect((await errorOf(response)).code).toBe('invalid_checksum')
      expect(await offsetOf(url)).toBe('0')
    },
  )

  it.each([
    ['21 bytes for sha1', `sha1 ${'A'.repeat(28)}`],
    [
      'hex text for sha1 (30 bytes as Base64)',
      `sha1 ${createHash('sha1').update('x').digest('hex')}`,
    ],
    ['an md5 digest named sha256', `sha256 ${createHash('md5').update('x').digest('base64')}`],
  ])(
    'answers 460 checksum_mismatch to a digest of the wrong length (%s), which no body can match, and keeps the offset',
    async (_case, header) => {
      const url = await newUpload(100)
      const response = await patchUpload(url, 0, pngBytes(100), { 'Upload-Checksum': header })
      expect(response.status).toBe(CHECKSUM_MISMATCH)
      expect((await errorOf(response)).code).toBe('checksum_mismatch')
      expect(await offsetOf(url)).toBe('0')
      await expectNoTempFiles()
    },
  )

  it('answers 409 offset_mismatch to a checksummed chunk at the wrong offset', async () => {
    const url = await newUpload(100)
    const chunk = pngBytes(100).subarray(10)
    const response = await patchUpload(url, 10, chunk, {
      'Upload-Checksum': uploadChecksum('md5', chunk),
    })
    expect(response.status).toBe(409)
    expect((await errorOf(response)).code).toBe('offset_mismatch')
    expect(await offsetOf(url)).toBe('0')
    await expectNoTempFiles()
  })

  it('answers 413 to a checksummed body longer than Upload-Length and stores none of it', async () => {
    const url = await newUpload(100)
    const body = pngBytes(150)
    const response = await patchUpload(url, 0, body, {
      'Upload-Checksum': uploadChecksum('sha1', body),
    })
    expect(response.status).toBe(413)
    expect((await errorOf(response)).code).toBe('size_exceeded')
    expect(await offsetOf(url)).toBe('0')
    await expectNoTempFiles()
  })

  it('answers 413 to a checksummed body over FILE_UPLOAD_MAX_SIZE, with or without Content-Length', async () => {
    const url = await newUpload(100)
    const body = Buffer.alloc(MAX_SIZE + 1)
    const declared = await patchUpload(url, 0, body, {
      'Upload-Checksum': uploadChecksum('sha1', body),
    })
    expect(declared.status).toBe(413)
    expect((await errorOf(declared)).code).toBe('size_exceeded')

    const chunked = await chunkedPatch(url, body, {
      'Upload-Checksum': uploadChecksum('sha1', body),
    })
    expect(chunked.status).toBe(413)
    expect(JSON.parse(chunked.body).error.code).toBe('size_exceeded')
    expect(await offsetOf(url)).toBe('0')
    await expectNoTempFiles()
  })

  it('creates and stores a file in one creation-with-upload POST whose checksum matches', async () => {
    const bytes = pngBytes(2000)
    const response = await createWithUpload(server.tusEndpoint, bytes, {
      'Upload-Checksum': uploadChecksum('sha256', bytes),
    })
    expect(response.status).toBe(201)
    expect(response.headers.get('upload-offset')).toBe(String(bytes.length))
    await expectStoredOnce(server.knex, idOf(response.headers.get('location') ?? ''), bytes)
    await expectNoTempFiles()
  })

  it('answers 460 to a creation-with-upload POST whose body does not match, creating no upload', async () => {
    const rowsBefore = await countRows(server.knex, 'upload_files')
    const filesBefore = await server.storedFiles()
    const bytes = pngBytes(2000)
    const response = await createWithUpload(server.tusEndpoint, corrupted(bytes), {
      'Upload-Checksum': uploadChecksum('md5', bytes),
    })
    expect(response.status).toBe(CHECKSUM_MISMATCH)
    expect((await errorOf(response)).code).toBe('checksum_mismatch')
    expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore)
    expect(await server.storedFiles()).toEqual(filesBefore)
    await expectNoTempFiles()
  })

  it('stores a deferred-length upload whose one checksummed PATCH declares its length', async () => {
    const bytes = pngBytes(3000)
    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Defer-Length': '1', 'Upload-Metadata': encodeMetadata(png) },
    })
    expect(created.status).toBe(201)
    const url = created.headers.get('location') ?? ''
    const response = await patchUpload(url, 0, bytes, {
      'Upload-Length': String(bytes.length),
      'Upload-Checksum': uploadChecksum('sha1', bytes),
    })
    expect(response.status).toBe(204)
    await expectStoredOnce(server.knex, idOf(url), bytes)
    await expectNoTempFiles()
  })

  it('removes the buffered body and stores nothing when the client aborts mid-body', async () => {
    const bytes = pngBytes(200_000)
    const url = await newUpload(bytes.length)
    const request = httpRequest(url, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Content-Length': String(bytes.length),
        'Upload-Checksum': uploadChecksum('sha256', bytes),
      },
    })
    const gone = new Promise<void>((resolve) => request.once('close', resolve))
    request.on('error', () => {})
    request.write(bytes.subarray(0, 50_000))
    await waitUntil('the server buffers the body', async () => (await readdir(tempDir)).length > 0)
    request.destroy()
    await gone
    await waitUntil(
      'the buffered body is removed',
      async () => (await readdir(tempDir)).length === 0,
    )
    expect(await offsetOf(url)).toBe('0')

    const retry = await patchUpload(url, 0, bytes, {
      'Upload-Checksum': uploadChecksum('sha256', bytes),
    })
    expect(retry.status).toBe(204)
    await expectStoredOnce(server.knex, idOf(url), bytes)
  })
})

async function createWithUpload(
  endpoint: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<Response> {
  return fetch(endpoint, {
    method: 'POST',
    headers: {
      ...TUS,
      'Upload-Length': String(body.length),
      'Upload-Metadata': encodeMetadata(png),
      'Content-Type': 'application/offset+octet-stream',
      ...headers,
    },
    body,
  })
}

/** A PATCH whose body goes chunked, without Content-Length: fetch cannot send one. */
function chunkedPatch(
  url: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, {
      method: 'PATCH',
      headers: {
        ...TUS,
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Transfer-Encoding': 'chunked',
        ...headers,
      },
    })
    request.on('error', reject)
    request.on('response', (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
      )
    })
    request.end(body)
  })
}
