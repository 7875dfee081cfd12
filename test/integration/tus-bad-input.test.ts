import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { elfBytes, pngBytes } from '../helpers/fixtures.ts'
import { countRows } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, encodeMetadata, errorOf, patchUpload, TUS } from '../helpers/tus-requests.ts'

const MAX_SIZE = 1024 * 1024
const png = { filename: 'a.png', filetype: 'image/png' }

describe.each(TEST_STORES)('tus requests with bad input on the $name store', (store) => {
  let server: TestServer
  let rowsBefore: number
  let filesBefore: string[]

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_MAX_SIZE: String(MAX_SIZE) }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  beforeEach(async () => {
    rowsBefore = await countRows(server.knex, 'upload_files')
    filesBefore = await server.storedFiles()
  })

  async function expectNothingLeftBehind() {
    expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore)
    expect(await server.storedFiles()).toEqual(filesBefore)
  }

  async function newUpload(length: number): Promise<string> {
    const response = await createUpload(server.tusEndpoint, length, png)
    expect(response.status).toBe(201)
    return response.headers.get('location') ?? ''
  }

  it('answers 412 with Tus-Version when Tus-Resumable is missing', async () => {
    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { 'Upload-Length': '10' },
    })
    expect(response.status).toBe(412)
    expect(response.headers.get('tus-version')).toBe('1.0.0')
    expect((await errorOf(response)).code).toBe('tus_resumable_required')
    await expectNothingLeftBehind()
  })

  it('answers 412 when Tus-Resumable names an unsupported version', async () => {
    const response = await createUpload(server.tusEndpoint, 10, png, { 'Tus-Resumable': '0.2.2' })
    expect(response.status).toBe(412)
    expect(response.headers.get('tus-version')).toBe('1.0.0')
    expect((await errorOf(response)).code).toBe('unsupported_tus_version')
    await expectNothingLeftBehind()
  })

  it.each(['-1', 'abc', '1.5', '99999999999999999999'])(
    'answers 400 when Upload-Length is %s',
    async (length) => {
      const response = await createUpload(server.tusEndpoint, length, png)
      expect(response.status).toBe(400)
      expect((await errorOf(response)).code).toBe('invalid_header')
      await expectNothingLeftBehind()
    },
  )

  it('answers 413 naming the size, the limit and the setting when Upload-Length is over FILE_UPLOAD_MAX_SIZE', async () => {
    const response = await createUpload(server.tusEndpoint, MAX_SIZE + 1, png)
    expect(response.status).toBe(413)
    expect(await errorOf(response)).toEqual({
      code: 'max_size_exceeded',
      message: `The file is ${MAX_SIZE + 1} bytes; the limit is ${MAX_SIZE} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
    })
    await expectNothingLeftBehind()
  })

  it('answers 413 naming the size, the limit and the setting when a deferred length is declared over FILE_UPLOAD_MAX_SIZE, and keeps the offset', async () => {
    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Defer-Length': '1', 'Upload-Metadata': encodeMetadata(png) },
    })
    const url = created.headers.get('location') ?? ''
    const response = await patchUpload(url, 0, pngBytes(100), {
      'Upload-Length': String(MAX_SIZE + 5),
    })
    expect(response.status).toBe(413)
    expect(await errorOf(response)).toEqual({
      code: 'max_size_exceeded',
      message: `The file is ${MAX_SIZE + 5} bytes; the limit is ${MAX_SIZE} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
    })
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('0')
  })

  it('answers 413 naming where the body would end and the limit when a deferred-length upload would grow past FILE_UPLOAD_MAX_SIZE', async () => {
    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Defer-Length': '1', 'Upload-Metadata': encodeMetadata(png) },
    })
    const url = created.headers.get('location') ?? ''
    const response = await patchUpload(url, 0, pngBytes(MAX_SIZE + 10))
    expect(response.status).toBe(413)
    expect((await errorOf(response)).message).toBe(
      `This body would take the upload to ${MAX_SIZE + 10} bytes; the limit is ${MAX_SIZE} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
    )
  })

  it('answers 400 when Upload-Metadata is not valid base64 pairs', async () => {
    const response = await createUpload(server.tusEndpoint, 10, 'filename not*base64!')
    expect(response.status).toBe(400)
    expect((await errorOf(response)).code).toBe('invalid_header')
    await expectNothingLeftBehind()
  })

  it('answers 400 when Upload-Metadata is over 4096 bytes', async () => {
    const response = await createUpload(server.tusEndpoint, 10, { ...png, note: 'x'.repeat(4000) })
    expect(response.status).toBe(400)
    expect((await errorOf(response)).code).toBe('metadata_too_large')
    await expectNothingLeftBehind()
  })

  it.each([
    ['a path that climbs out', '../../etc/passwd.png'],
    ['a NUL byte', 'a\u0000.png'],
    ['only dots', '...'],
    ['a control character', 'a\u0007b.png'],
  ])('answers 400 for a filename with %s', async (_case, filename) => {
    const response = await createUpload(server.tusEndpoint, 10, { filename, filetype: 'image/png' })
    expect(response.status).toBe(400)
    expect((await errorOf(response)).code).toBe('invalid_filename')
    await expectNothingLeftBehind()
  })

  it('answers 415 when the declared type is not allowed', async () => {
    const response = await createUpload(server.tusEndpoint, 10, {
      filename: 'run.exe',
      filetype: 'application/x-msdownload',
    })
    expect(response.status).toBe(415)
    expect((await errorOf(response)).code).toBe('unsupported_file_type')
    await expectNothingLeftBehind()
  })

  it('answers 400 for an unknown batchId and for one that is not an id', async () => {
    const unknown = await createUpload(server.tusEndpoint, 10, {
      ...png,
      batchId: '01a22063-b7db-76c5-ade9-046081fece3e',
    })
    expect(unknown.status).toBe(400)
    expect((await errorOf(unknown)).code).toBe('unknown_batch')
    const malformed = await createUpload(server.tusEndpoint, 10, { ...png, batchId: 'nope' })
    expect(malformed.status).toBe(400)
    expect((await errorOf(malformed)).code).toBe('invalid_batch_id')
    await expectNothingLeftBehind()
  })

  it('answers 409 batch_full when a batch already holds 1000 files', async () => {
    const batch = (await (await fetch(`${server.url}/api/batches`, { method: 'POST' })).json()) as {
      id: string
    }
    const rows = Array.from({ length: 1000 }, () => {
      const id = uuidv7()
      return { id, batch_id: batch.id, status: 'FAILED', storage_key: `test/${id}` }
    })
    await server.knex.batchInsert('upload_files', rows, 500)

    const response = await createUpload(server.tusEndpoint, 10, { ...png, batchId: batch.id })
    expect(response.status).toBe(409)
    expect((await errorOf(response)).code).toBe('batch_full')
    await server.knex('upload_files').where({ batch_id: batch.id }).delete()
  })

  it('answers 400 for an empty upload, naming FILE_UPLOAD_MIN_SIZE', async () => {
    const response = await createUpload(server.tusEndpoint, 0, png)
    expect(response.status).toBe(400)
    expect(await errorOf(response)).toEqual({
      code: 'empty_file',
      message:
        'The file is empty (0 bytes); empty files are refused unless the server sets FILE_UPLOAD_MIN_SIZE=0.',
    })
    await expectNothingLeftBehind()
  })

  it('answers 404 for an unknown upload id and for a path that is not an upload id', async () => {
    for (const path of ['01a22063-b7db-76c5-ade9-046081fece3e', '..%2F..%2Fetc%2Fpasswd', 'a/b']) {
      const head = await fetch(`${server.tusEndpoint}/${path}`, { method: 'HEAD', headers: TUS })
      expect(head.status).toBe(404)
      const patch = await patchUpload(`${server.tusEndpoint}/${path}`, 0, new Uint8Array(1))
      expect(patch.status).toBe(404)
      expect((await errorOf(patch)).code).toMatch(/not_found/)
    }
    await expectNothingLeftBehind()
  })

  it('answers 415 when a PATCH is not application/offset+octet-stream, and keeps the offset', async () => {
    const url = await newUpload(100)
    const response = await patchUpload(url, 0, pngBytes(100), { 'Content-Type': 'text/plain' })
    expect(response.status).toBe(415)
    expect((await errorOf(response)).code).toBe('unsupported_media_type')
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('0')
  })

  it('answers 415 to a creation whose body is not application/offset+octet-stream, creating no upload', async () => {
    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: {
        ...TUS,
        'Upload-Length': '12',
        'Upload-Metadata': encodeMetadata({ filename: 'a.txt', filetype: 'text/plain' }),
        'Content-Type': 'text/plain',
      },
      body: 'Hello, tus!\n',
    })
    expect(response.status).toBe(415)
    expect((await errorOf(response)).code).toBe('unsupported_media_type')
    await expectNothingLeftBehind()
  })

  it('creates an upload from a bodiless POST whatever Content-Type it names', async () => {
    const response = await createUpload(server.tusEndpoint, 100, png, {
      'Content-Type': 'text/plain',
    })
    expect(response.status).toBe(201)
  })

  it('answers 409 naming the current Upload-Offset when Upload-Offset does not match, and keeps the offset', async () => {
    const url = await newUpload(100)
    const bytes = pngBytes(100)
    expect((await patchUpload(url, 0, bytes.subarray(0, 40))).status).toBe(204)
    const response = await patchUpload(url, 10, bytes.subarray(10))
    expect(response.status).toBe(409)
    expect(response.headers.get('upload-offset')).toBe('40')
    expect((await errorOf(response)).code).toBe('offset_mismatch')
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('40')
  })

  it('answers 413 to a body longer than Upload-Length and stores none of it', async () => {
    const url = await newUpload(100)
    const response = await patchUpload(url, 0, pngBytes(150))
    expect(response.status).toBe(413)
    expect((await errorOf(response)).code).toBe('size_exceeded')
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('0')
  })

  it('answers 409 to a PATCH after the upload was STORED', async () => {
    const url = await newUpload(100)
    expect((await patchUpload(url, 0, pngBytes(100))).status).toBe(204)
    const response = await patchUpload(url, 100, new Uint8Array(0))
    expect(response.status).toBe(409)
    expect((await errorOf(response)).code).toBe('upload_already_stored')
  })

  it('answers 415 when the last PATCH reveals a disallowed type, then 410 to any later PATCH or HEAD', async () => {
    const url = await newUpload(100)
    const finalPatch = await patchUpload(url, 0, elfBytes(100))
    expect(finalPatch.status).toBe(415)
    expect((await errorOf(finalPatch)).code).toBe('unsupported_file_type')

    const again = await patchUpload(url, 100, new Uint8Array(0))
    expect(again.status).toBe(410)
    expect((await errorOf(again)).code).toBe('unsupported_file_type')
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.status).toBe(410)
    const id = url.split('/').at(-1)
    expect((await server.storedFiles()).filter((name) => name.includes(id ?? '?'))).toEqual([])
  })

  describe('the type, judged from the first 64 KiB before the rest is sent', () => {
    const KiB = 1024
    const SIZE = 300 * KiB

    async function expectFailedAndRemoved(url: string, code: string) {
      const id = url.split('/').at(-1) ?? '?'
      const row = await server.knex('upload_files').where({ id }).first()
      expect(row).toMatchObject({ status: 'FAILED', error_code: code })
      expect(row.error_message).toMatch(/declared as image\/png/)
      expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
      const head = await fetch(url, { method: 'HEAD', headers: TUS })
      expect(head.status).toBe(410)
    }

    it('answers 415 to the first PATCH that brings a disallowed type, fails the row and removes its bytes', async () => {
      const url = await newUpload(SIZE)
      const response = await patchUpload(url, 0, elfBytes(SIZE).subarray(0, 100 * KiB))
      expect(response.status).toBe(415)
      expect((await errorOf(response)).code).toBe('unsupported_file_type')
      await expectFailedAndRemoved(url, 'unsupported_file_type')
    })

    it('answers 204 to PATCHes below 64 KiB and 415 to the one that completes the window', async () => {
      const url = await newUpload(SIZE)
      const bytes = elfBytes(SIZE)
      expect((await patchUpload(url, 0, bytes.subarray(0, 30 * KiB))).status).toBe(204)
      const response = await patchUpload(url, 30 * KiB, bytes.subarray(30 * KiB, 70 * KiB))
      expect(response.status).toBe(415)
      await expectFailedAndRemoved(url, 'unsupported_file_type')
    })

    it('answers 415 content_type_mismatch at once to text declared as an image', async () => {
      const url = await newUpload(SIZE)
      const response = await patchUpload(url, 0, Buffer.alloc(80 * KiB, 'a'))
      expect(response.status).toBe(415)
      expect((await errorOf(response)).code).toBe('content_type_mismatch')
      await expectFailedAndRemoved(url, 'content_type_mismatch')
    })

    it('answers 415 to a creation-with-upload POST whose body brings a disallowed type', async () => {
      const response = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: {
          ...TUS,
          'Upload-Length': String(SIZE),
          'Upload-Metadata': encodeMetadata(png),
          'Content-Type': 'application/offset+octet-stream',
        },
        body: elfBytes(SIZE).subarray(0, 100 * KiB),
      })
      expect(response.status).toBe(415)
      expect((await errorOf(response)).code).toBe('unsupported_file_type')
      const [row] = await server.knex('upload_files').orderBy('created_at', 'desc').limit(1)
      expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore + 1)
      expect(row).toMatchObject({ status: 'FAILED', error_code: 'unsupported_file_type' })
      expect((await server.storedFiles()).filter((name) => name.includes(row.id))).toEqual([])
    })

    it('goes on taking the chunks of an allowed type', async () => {
      const url = await newUpload(SIZE)
      const bytes = pngBytes(SIZE)
      expect((await patchUpload(url, 0, bytes.subarray(0, 100 * KiB))).status).toBe(204)
      expect((await patchUpload(url, 100 * KiB, bytes.subarray(100 * KiB))).status).toBe(204)
    })
  })

  it('answers 409 with a JSON error, never the bytes so far, to GET on an unfinished upload URL', async () => {
    const url = await newUpload(10)
    expect((await patchUpload(url, 0, new Uint8Array(4))).status).toBe(204)
    const response = await fetch(url, { headers: TUS })
    expect(response.status).toBe(409)
    expect((await errorOf(response)).code).toBe('file_not_stored')
  })

  it('answers every tus error with a JSON body naming a code', async () => {
    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Metadata': encodeMetadata(png) },
    })
    expect(response.status).toBe(400)
    expect(await errorOf(response)).toEqual({
      code: 'invalid_length',
      message: 'Upload-Length or Upload-Defer-Length header required',
    })
  })
})
