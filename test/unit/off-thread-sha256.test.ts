import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { OffThreadSha256 } from '../../src/tus/off-thread-sha256.ts'
import { sha256 } from '../helpers/fixtures.ts'

const KiB = 1024
const MiB = 1024 * KiB

/** `bytes` cut into pieces of the given sizes, cycled: boundaries land anywhere in a batch. */
function piecesOf(bytes: Buffer, sizes: readonly number[]): Buffer[] {
  const pieces: Buffer[] = []
  for (let at = 0, index = 0; at < bytes.length; index++) {
    const size = sizes[index % sizes.length] ?? 1
    pieces.push(bytes.subarray(at, at + size))
    at += size
  }
  return pieces
}

describe('OffThreadSha256', () => {
  it('gives the sha256 of bytes given in pieces that straddle its batches', async () => {
    const bytes = randomBytes(MiB + 4321)
    const hash = new OffThreadSha256()

    for (const piece of piecesOf(bytes, [1, 65_536, 262_143, 7, 300_000])) hash.update(piece)

    expect(await hash.digest()).toBe(sha256(bytes))
  })

  it('copies the bytes: the caller keeps its buffers, and changing them later changes nothing', async () => {
    // Small unsafe buffers are slices of one shared pool, as chunks sliced out of a socket read
    // are: transferring their memory to the thread would detach what others still use.
    const pooled = Buffer.allocUnsafe(100).fill(7)
    const expected = sha256(Buffer.from(pooled))
    const hash = new OffThreadSha256()

    hash.update(pooled)
    const attached = pooled.buffer.byteLength
    pooled.fill(9)

    expect(attached).toBeGreaterThan(0)
    expect(await hash.digest()).toBe(expected)
  })

  it('keeps interleaved uploads apart on the one hashing thread', async () => {
    const first = randomBytes(600 * KiB)
    const second = randomBytes(500 * KiB)
    const a = new OffThreadSha256()
    const b = new OffThreadSha256()
    const firstPieces = piecesOf(first, [100 * KiB])
    const secondPieces = piecesOf(second, [100 * KiB])

    for (let index = 0; index < firstPieces.length; index++) {
      a.update(firstPieces[index] as Buffer)
      const other = secondPieces[index]
      if (other) b.update(other)
    }

    expect(await a.digest()).toBe(sha256(first))
    expect(await b.digest()).toBe(sha256(second))
  })

  it('answers a digest more than once, and goes on hashing after it', async () => {
    const bytes = randomBytes(300 * KiB)
    const hash = new OffThreadSha256()

    hash.update(bytes.subarray(0, 100 * KiB))
    const early = await hash.digest()
    hash.update(bytes.subarray(100 * KiB))

    expect(early).toBe(sha256(bytes.subarray(0, 100 * KiB)))
    expect(await hash.digest()).toBe(sha256(bytes))
    expect(await hash.digest()).toBe(sha256(bytes))
  })

  it('hashes exactly when more uploads are written at once than get large batches', async () => {
    const uploads = Array.from({ length: 12 }, () => ({
      bytes: randomBytes(1536 * KiB),
      hash: new OffThreadSha256(),
    }))

    for (let at = 0; at < 1536 * KiB; at += 96 * KiB) {
      for (const { bytes, hash } of uploads) hash.update(bytes.subarray(at, at + 96 * KiB))
    }

    for (const { bytes, hash } of uploads) expect(await hash.digest()).toBe(sha256(bytes))
  })

  it('asks its writer to wait while too many bytes wait for the thread, and loses none', async () => {
    const bytes = randomBytes(16 * MiB)
    const hash = new OffThreadSha256()

    // No answer from the thread can arrive during this synchronous loop: the bound is reached.
    for (const piece of piecesOf(bytes, [64 * KiB])) hash.update(piece)
    const room = hash.room()

    expect(room).toBeInstanceOf(Promise)
    await room
    expect(await hash.digest()).toBe(sha256(bytes))
  })
  it('lets every writer waiting for room go on once the thread has caught up, however many wait', async () => {
    const busy = new OffThreadSha256()
    // Four 1 MiB batches posted in this synchronous step: the bound is reached.
    busy.update(randomBytes(4 * MiB))
    const writers = Array.from({ length: 6 }, () => new OffThreadSha256())
    const rooms = writers.map((writer) => {
      writer.update(Buffer.alloc(10))
      return writer.room()
    })
    let resumed = 0
    for (const room of rooms) void room?.then(() => resumed++)

    // The thread answers after giving back every batch posted before the question.
    await busy.digest()

    expect(rooms.every((room) => room instanceof Promise)).toBe(true)
    expect(resumed).toBe(writers.length)
    for (const writer of writers) writer.drop()
  })
})
