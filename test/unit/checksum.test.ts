import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { verifyChecksum } from '../../src/tus/checksum.ts'

const UPLOAD_URL = 'http://127.0.0.1/files/0190a5d2-0000-7000-8000-000000000000'
const UPLOAD_TYPE = 'application/offset+octet-stream'

function sha1Header(bytes: Uint8Array): string {
  return `sha1 ${createHash('sha1').update(bytes).digest('base64')}`
}

describe('verifyChecksum', () => {
  let tempDir: string

  beforeEach(async () => {
    tempDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-checksum-unit-'))
  })

  afterEach(async () => {
    await rm(tempDir, { recursive: true, force: true })
  })

  it('hands on a request without Upload-Checksum as it is, buffering nothing', async () => {
    const request = new Request(UPLOAD_URL, {
      method: 'PATCH',
      headers: { 'Content-Type': UPLOAD_TYPE },
      body: 'abc',
    })
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100 })
    expect(result.ok && result.request).toBe(request)
    expect(await readdir(tempDir)).toEqual([])
  })

  it('stops reading an endless body at the limit and answers 413, leaving no file', async () => {
    let pulled = 0
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1024
        controller.enqueue(new Uint8Array(1024))
      },
    })
    const request = new Request(UPLOAD_URL, {
      method: 'PATCH',
      headers: { 'Content-Type': UPLOAD_TYPE, 'Upload-Checksum': sha1Header(new Uint8Array(0)) },
      body: endless,
      duplex: 'half',
    })
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 10_000 })
    expect(result).toMatchObject({ ok: false, status: 413, code: 'size_exceeded' })
    expect(pulled).toBeLessThan(20_000)
    expect(await readdir(tempDir)).toEqual([])
  })

  it('hands on a verified body from its file, which release removes even when nobody read it', async () => {
    const bytes = Buffer.from('the verified chunk')
    const request = new Request(UPLOAD_URL, {
      method: 'PATCH',
      headers: { 'Content-Type': UPLOAD_TYPE, 'Upload-Checksum': sha1Header(bytes) },
      body: bytes,
    })
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100 })
    if (!result.ok) throw new Error(`refused: ${result.code}`)
    expect(result.request).not.toBe(request)
    expect(result.request.headers.get('content-length')).toBe(String(bytes.length))
    expect(await readdir(tempDir)).toHaveLength(1)
    await result.release()
    expect(await readdir(tempDir)).toEqual([])
  })

  it('hands on a verified body whose bytes are exactly those received', async () => {
    const bytes = Buffer.from('every byte that was hashed')
    const request = new Request(UPLOAD_URL, {
      method: 'PATCH',
      headers: { 'Content-Type': UPLOAD_TYPE, 'Upload-Checksum': sha1Header(bytes) },
      body: bytes,
    })
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100 })
    if (!result.ok) throw new Error(`refused: ${result.code}`)
    expect(Buffer.from(await result.request.arrayBuffer())).toEqual(bytes)
    await result.release()
  })
})
