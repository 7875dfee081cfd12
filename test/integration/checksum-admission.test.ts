import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { errorCodeOf, type OpenBody, openBody } from '../helpers/open-body.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { encodeMetadata, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

// Security review M1: a checksummed body is buffered to CHECKSUM_TEMP_DIR before it reaches the
// store. Each test reproduces one of the review's measurements and watches that directory.

const SECRET = 'checksum-admission-secret-0123456789'
const TOTAL = 100_000
const SHARE = 60_000
const png = { filename: 'a.png', filetype: 'image/png' }

function sha256Header(bytes: Uint8Array): string {
  return `sha256 ${createHash('sha256').update(bytes).digest('base64')}`
}

const WRONG_CHECKSUM = sha256Header(Buffer.from('not the body'))

describe.each(TEST_STORES)('checksummed bodies on the $name store', (store) => {
  let server: TestServer
  let tempDir: string
  const tokens: Record<string, string> = {}

  beforeAll(async () => {
    tempDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-checksum-admission-'))
    server = await startTestServer(
      {
        ...jwtSettings(SECRET),
        FILE_UPLOAD_MAX_SIZE: String(1024 * 1024),
        CHECKSUM_TEMP_DIR: tempDir,
        CHECKSUM_BUFFER_MAX_BYTES: String(TOTAL),
        CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER: String(SHARE),
        CHECKSUM_MIN_BYTES_PER_SECOND: '1024',
        CHECKSUM_RATE_WINDOW: '1s',
        MAX_UNFINISHED_UPLOADS_PER_OWNER: '3',
      },
      store,
    )
    for (const owner of ['alice', 'bob', 'carol']) {
      tokens[owner] = await signHs256(SECRET, { sub: owner })
    }
  })

  afterAll(async () => {
    await server?.close()
    await rm(tempDir, { recursive: true, force: true })
  })

  function auth(owner: string): Record<string, string> {
    return { ...TUS, Authorization: `Bearer ${tokens[owner]}` }
  }

  async function newUpload(owner: string, length: number): Promise<string> {
    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: {
        ...auth(owner),
        'Upload-Length': String(length),
        'Upload-Metadata': encodeMetadata(png),
      },
    })
    expect(response.status).toBe(201)
    return response.headers.get('location') ?? ''
  }

  async function deleteUpload(owner: string, url: string): Promise<void> {
    expect((await fetch(url, { method: 'DELETE', headers: auth(owner) })).status).toBe(204)
  }

  function openPatch(owner: string, url: string, headers: Record<string, string>): OpenBody {
    return openBody(url, 'PATCH', {
      ...auth(owner),
      'Upload-Offset': '0',
      'Content-Type': 'application/offset+octet-stream',
      ...headers,
    })
  }

  function patchWhole(owner: string, url: string, body: Uint8Array, checksum: string) {
    return fetch(url, {
      method: 'PATCH',
      headers: {
        ...auth(owner),
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Upload-Checksum': checksum,
      },
      body,
    })
  }

  async function bufferedBytes(): Promise<number> {
    let total = 0
    for (const name of await readdir(tempDir)) {
      total += (await stat(path.join(tempDir, name)).catch(() => ({ size: 0 }))).size
    }
    return total
  }

  it("answers 404 to checksummed PATCHes on another owner's upload before reading their bodies", async () => {
    const url = await newUpload('alice', 500_000)
    const attempts = Array.from({ length: 5 }, () => {
      const attempt = openPatch('bob', url, {
        'Content-Length': '500000',
        'Upload-Checksum': WRONG_CHECKSUM,
      })
      // Part of the body only: the answer must come without the rest.
      attempt.request.write(randomBytes(64 * 1024))
      return attempt
    })
    const replies = await Promise.all(attempts.map((attempt) => attempt.reply))
    for (const attempt of attempts) attempt.request.destroy()
    expect(replies.map((reply) => reply.status)).toEqual([404, 404, 404, 404, 404])
    expect(await readdir(tempDir)).toEqual([])
    await deleteUpload('alice', url)
  })

  it('answers 404 to PATCH /files/%00 whatever its checksum', async () => {
    const response = await fetch(`${server.tusEndpoint}/%00`, {
      method: 'PATCH',
      headers: {
        ...auth('bob'),
        'Upload-Offset': '0',
        'Content-Type': 'application/offset+octet-stream',
        'Upload-Checksum': WRONG_CHECKSUM,
      },
      body: Buffer.from('abc'),
    })
    expect(response.status).toBe(404)
  })

  it('answers 429 to a checksummed creation over the owner limit before reading its body', async () => {
    const urls = [
      await newUpload('carol', 100),
      await newUpload('carol', 100),
      await newUpload('carol', 100),
    ]
    const creation = openBody(server.tusEndpoint, 'POST', {
      ...auth('carol'),
      'Upload-Length': '500000',
      'Upload-Metadata': encodeMetadata(png),
      'Content-Type': 'application/offset+octet-stream',
      'Content-Length': '500000',
      'Upload-Checksum': WRONG_CHECKSUM,
    })
    creation.request.write(randomBytes(64 * 1024))
    const reply = await creation.reply
    creation.request.destroy()
    expect(reply.status).toBe(429)
    expect(errorCodeOf(reply)).toBe('too_many_unfinished_uploads')
    expect(reply.headers['retry-after']).toBeDefined()
    expect(await readdir(tempDir)).toEqual([])
    for (const url of urls) await deleteUpload('carol', url)
  })

  it('cuts a body that trickles below the rate floor with 408 and removes its buffer', async () => {
    const url = await newUpload('alice', 50_000)
    const trickle = openPatch('alice', url, {
      'Content-Length': '50000',
      'Upload-Checksum': WRONG_CHECKSUM,
    })
    // One byte, then nothing: the review's one byte every 45 s, within one window.
    trickle.request.write(Buffer.from([1]))
    const reply = await trickle.reply
    trickle.request.destroy()
    expect(reply.status).toBe(408)
    expect(errorCodeOf(reply)).toBe('body_too_slow')
    await waitUntil('the buffer is removed', async () => (await readdir(tempDir)).length === 0)
    const head = await fetch(url, { method: 'HEAD', headers: auth('alice') })
    expect(head.headers.get('upload-offset')).toBe('0')
    await deleteUpload('alice', url)
  })

  it('holds the buffers to the per-owner share (429) and the total (503), then takes the body once room is free', async () => {
    const first = await newUpload('alice', 50_000)
    const second = await newUpload('alice', 20_000)
    const bobs = await newUpload('bob', 50_001)
    const body = pngBytes(50_000)
    const holding = openPatch('alice', first, {
      'Content-Length': '50000',
      'Upload-Checksum': sha256Header(body),
    })
    holding.request.write(body.subarray(0, 10_000))
    await waitUntil('the first body is buffered', async () => (await bufferedBytes()) >= 10_000)

    const overShare = await patchWhole('alice', second, randomBytes(20_000), WRONG_CHECKSUM)
    expect(overShare.status).toBe(429)
    expect(((await overShare.json()) as { error: { code: string } }).error.code).toBe(
      'too_many_buffered_bytes',
    )
    expect(overShare.headers.get('retry-after')).toBeDefined()

    const bobBody = pngBytes(50_001)
    const overTotal = () => patchWhole('bob', bobs, bobBody, sha256Header(bobBody))
    const full = await overTotal()
    expect(full.status).toBe(503)
    expect(((await full.json()) as { error: { code: string } }).error.code).toBe(
      'checksum_buffer_full',
    )
    expect(full.headers.get('retry-after')).toBeDefined()
    expect(await bufferedBytes()).toBeLessThanOrEqual(TOTAL)
    expect(await readdir(tempDir)).toHaveLength(1)

    holding.request.end(Buffer.from(body.subarray(10_000)))
    expect((await holding.reply).status).toBe(204)
    expect((await overTotal()).status).toBe(204)
    expect(await readdir(tempDir)).toEqual([])
    await deleteUpload('alice', second)
  })

  it('answers 413 to a checksummed chunk larger than an owner share, before reading it', async () => {
    const url = await newUpload('alice', SHARE + 1)
    const response = await patchWhole('alice', url, randomBytes(SHARE + 1), WRONG_CHECKSUM)
    expect(response.status).toBe(413)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      'checksummed_chunk_too_large',
    )
    await deleteUpload('alice', url)
  })

  it('buffers no more than the upload can still take: exactly the rest passes, one byte more is refused', async () => {
    const bytes = pngBytes(3000)
    const url = await newUpload('alice', 3000)
    const sendChunked = async (body: Uint8Array, offset: number) => {
      const patch = openPatch('alice', url, {
        'Upload-Offset': String(offset),
        'Transfer-Encoding': 'chunked',
        'Upload-Checksum': sha256Header(body),
      })
      patch.request.end(Buffer.from(body))
      return patch.reply
    }
    expect((await sendChunked(bytes.subarray(0, 1000), 0)).status).toBe(204)
    const tooLong = await sendChunked(Buffer.concat([bytes.subarray(1000), Buffer.from([0])]), 1000)
    expect(tooLong.status).toBe(413)
    // Our limit, not @tus/server's (which would read the whole body from the buffer first).
    expect(tooLong.body).toContain('at most 2000 bytes')
    expect((await sendChunked(bytes.subarray(1000), 1000)).status).toBe(204)
    expect(await readdir(tempDir)).toEqual([])
  })
})
