import { createHash } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { BufferBudget } from '../../src/tus/buffer-budget.ts'
import { verifyChecksum } from '../../src/tus/checksum.ts'
import { watchRateFloor } from '../../src/tus/rate-floor.ts'

const UPLOAD_URL = 'http://127.0.0.1/files/0190a5d2-0000-7000-8000-000000000000'
const UPLOAD_TYPE = 'application/offset+octet-stream'
/** A floor no test body here can fall under in a day. */
const NO_FLOOR = { minBytesPerSecond: 1, windowMs: 86_400_000 }

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
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100, rateFloor: NO_FLOOR })
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
    const result = await verifyChecksum(request, {
      tempDir,
      maxBodySize: 10_000,
      rateFloor: NO_FLOOR,
    })
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
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100, rateFloor: NO_FLOOR })
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
    const result = await verifyChecksum(request, { tempDir, maxBodySize: 100, rateFloor: NO_FLOOR })
    if (!result.ok) throw new Error(`refused: ${result.code}`)
    expect(Buffer.from(await result.request.arrayBuffer())).toEqual(bytes)
    await result.release()
  })
})

describe('the checksum buffer limit', () => {
  let tempDir: string

  beforeEach(async () => {
    tempDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-checksum-limit-'))
  })

  afterEach(async () => {
    await rm(tempDir, { recursive: true, force: true })
  })

  function chunkedPatch(bytes: Uint8Array): Request {
    return new Request(UPLOAD_URL, {
      method: 'PATCH',
      headers: { 'Content-Type': UPLOAD_TYPE, 'Upload-Checksum': sha1Header(bytes) },
      body: new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(bytes)
          controller.close()
        },
      }),
      duplex: 'half',
    })
  }

  it('takes a body of exactly maxBodySize bytes and refuses one byte more with 413', async () => {
    const exact = await verifyChecksum(chunkedPatch(new Uint8Array(10)), {
      tempDir,
      maxBodySize: 10,
      rateFloor: NO_FLOOR,
    })
    expect(exact.ok).toBe(true)
    if (exact.ok) await exact.release()
    const over = await verifyChecksum(chunkedPatch(new Uint8Array(11)), {
      tempDir,
      maxBodySize: 10,
      rateFloor: NO_FLOOR,
    })
    expect(over).toMatchObject({ ok: false, status: 413, code: 'size_exceeded' })
    expect(await readdir(tempDir)).toEqual([])
  })
})

describe('BufferBudget', () => {
  it('refuses an owner past its share and anyone past the total, and frees on release', () => {
    const budget = new BufferBudget({ totalBytes: 100, perOwnerBytes: 60 })
    const alice = budget.reserve('alice', 60)
    expect(alice).not.toBeTypeOf('string')
    expect(budget.reserve('alice', 1)).toBe('owner')
    const bob = budget.reserve('bob', 40)
    expect(bob).not.toBeTypeOf('string')
    expect(budget.reserve(null, 1)).toBe('total')
    if (typeof alice === 'string' || typeof bob === 'string') throw new Error('refused')
    alice.release()
    alice.release()
    expect(budget.usedBytes).toBe(40)
    expect(budget.reserve('alice', 60)).not.toBeTypeOf('string')
    expect(budget.largestBody('alice')).toBe(60)
    expect(budget.largestBody(null)).toBe(100)
  })
})

describe('watchRateFloor', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('lets a body through that stalls within a window but keeps the average, and cuts one that falls below it', () => {
    vi.useFakeTimers()
    let cut = 0
    const floor = watchRateFloor({ minBytesPerSecond: 1024, windowMs: 60_000 }, () => cut++)
    // A real slow link: 2 KiB/s for 40 s, then a 20 s stall; 80 KiB >= the 60 KiB a window needs.
    floor.received(80 * 1024)
    vi.advanceTimersByTime(60_000)
    expect(cut).toBe(0)
    // The review's trickle: one byte every 45 s.
    floor.received(1)
    vi.advanceTimersByTime(45_000)
    floor.received(1)
    vi.advanceTimersByTime(15_000)
    expect(cut).toBe(1)
    expect(floor.tripped).toBe(true)
    vi.advanceTimersByTime(120_000)
    expect(cut).toBe(1)
    floor.stop()
  })
})
