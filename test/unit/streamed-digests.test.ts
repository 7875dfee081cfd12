import { PassThrough, Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { StreamedDigestRegistry } from '../../src/tus/streamed-digests.ts'
import { sha256 } from '../helpers/fixtures.ts'

const HEAD_BYTES = 16

/**
 * A store as the registry sees one: it appends what it reads to the upload's bytes and answers
 * the new offset, as FileStore and S3Store do. The integration suite runs the real ones.
 */
function byteStore() {
  const uploads = new Map<string, Buffer>()
  return {
    bytesOf: (key: string) => uploads.get(key) ?? Buffer.alloc(0),
    async write(key: string, source: Readable, stored = () => {}): Promise<number> {
      for await (const chunk of source) {
        uploads.set(key, Buffer.concat([uploads.get(key) ?? Buffer.alloc(0), chunk]))
        stored()
      }
      return uploads.get(key)?.length ?? 0
    },
  }
}

function chunksOf(bytes: Buffer, size: number): Readable {
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size))
  return Readable.from(chunks)
}

function bytes(length: number, seed = 1): Buffer {
  return Buffer.from(Array.from({ length }, (_, index) => (index * seed + 7) % 251))
}

describe('StreamedDigestRegistry', () => {
  it('gives the sha256 and head of exactly the bytes of consecutive writes', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    const data = bytes(100)

    let offset = 0
    for (const part of [data.subarray(0, 5), data.subarray(5, 40), data.subarray(40)]) {
      offset = await registry.write('k', offset, chunksOf(part, 7), (hashed) =>
        store.write('k', hashed),
      )
    }

    expect(store.bytesOf('k')).toEqual(data)
    expect(await registry.digestOf('k', 100)).toEqual({
      sha256: sha256(data),
      head: data.subarray(0, HEAD_BYTES),
    })
    expect(await registry.digestOf('k', 99)).toBeUndefined()
  })

  it('gives the head of an upload still growing once that many bytes arrived from offset 0, and none of one that started elsewhere', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    const data = bytes(40)
    await registry.write('k', 0, chunksOf(data.subarray(0, 10), 4), (hashed) =>
      store.write('k', hashed),
    )
    expect(registry.headOf('k', HEAD_BYTES)).toBeUndefined()
    await registry.write('k', 10, chunksOf(data.subarray(10, 30), 4), (hashed) =>
      store.write('k', hashed),
    )
    expect(registry.headOf('k', HEAD_BYTES)).toEqual(data.subarray(0, HEAD_BYTES))

    await registry.write('other', 20, chunksOf(data.subarray(20), 4), (hashed) =>
      store.write('other', hashed),
    )
    expect(registry.headOf('other', 1)).toBeUndefined()
  })

  it('gives the whole upload as head when it is smaller than the head, and can be asked twice', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    const data = bytes(10)

    await registry.write('k', 0, chunksOf(data, 3), (hashed) => store.write('k', hashed))

    const expected = { sha256: sha256(data), head: data }
    expect(await registry.digestOf('k', 10)).toEqual(expected)
    expect(await registry.digestOf('k', 10)).toEqual(expected)
  })

  it('has no digest for an upload whose bytes it first sees past offset 0, as after a restart', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()

    const offset = await registry.write('k', 20, chunksOf(bytes(30), 8), (hashed) =>
      store.write('k', hashed),
    )

    expect(offset).toBe(30)
    expect(await registry.digestOf('k', 30)).toBeUndefined()
    expect(registry.size).toBe(0)
  })

  it('drops the digest when a write starts where it did not end, as when another instance took a chunk', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    await registry.write('k', 0, chunksOf(bytes(10), 4), (hashed) => store.write('k', hashed))

    await registry.write('k', 15, chunksOf(bytes(10), 4), async (hashed) => {
      await store.write('k', hashed)
      return 25
    })

    expect(await registry.digestOf('k', 25)).toBeUndefined()
    expect(registry.size).toBe(0)
  })

  it('drops the digest when a write fails after part of the stream reached the store', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    await registry.write('k', 0, chunksOf(bytes(10), 4), (hashed) => store.write('k', hashed))
    const source = new PassThrough()
    const reached = Promise.withResolvers<void>()
    const cut = new Error('the client went away')

    const writing = registry.write('k', 10, source, (hashed) =>
      store.write('k', hashed, reached.resolve),
    )
    source.write(bytes(8))
    await reached.promise
    source.destroy(cut)

    await expect(writing).rejects.toBe(cut)
    expect(store.bytesOf('k')).toHaveLength(18)
    expect(await registry.digestOf('k', 18)).toBeUndefined()
    expect(await registry.digestOf('k', 10)).toBeUndefined()
  })

  it('drops the digest when the store answers another offset than where the hashed bytes end', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })

    const offset = await registry.write('k', 0, chunksOf(bytes(10), 4), async (hashed) => {
      // A store that read every byte but kept one less.
      await hashed.toArray()
      return 9
    })

    expect(offset).toBe(9)
    expect(await registry.digestOf('k', 9)).toBeUndefined()
    expect(await registry.digestOf('k', 10)).toBeUndefined()
  })

  it('starts afresh at offset 0 without the digest of an earlier start', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const data = bytes(12, 3)

    await registry.write('k', 0, chunksOf(bytes(30), 8), async (hashed) => {
      await hashed.toArray()
      return 30
    })
    // The store lost its tail and the upload went back to 0 (an S3 `.part` lost in a failed PATCH).
    await registry.write('k', 0, chunksOf(data, 5), async (hashed) => {
      await hashed.toArray()
      return 12
    })

    expect(await registry.digestOf('k', 12)).toEqual({ sha256: sha256(data), head: data })
  })

  it('drops the digest when told another instance released the upload, even while a write is under way', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    await registry.write('a', 0, chunksOf(bytes(10), 4), (hashed) => store.write('a', hashed))
    await registry.write('b', 0, chunksOf(bytes(10), 4), (hashed) => store.write('b', hashed))

    registry.releasedElsewhere('a')
    await registry.write('b', 10, chunksOf(bytes(10), 4), async (hashed) => {
      registry.releasedElsewhere('b')
      return store.write('b', hashed)
    })

    expect(await registry.digestOf('a', 10)).toBeUndefined()
    expect(await registry.digestOf('b', 20)).toBeUndefined()
    expect(registry.size).toBe(0)
  })

  it('drops every digest when releases may have gone unheard', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    for (const key of ['a', 'b', 'c']) {
      await registry.write(key, 0, chunksOf(bytes(10), 4), (hashed) => store.write(key, hashed))
    }

    registry.mayHaveMissedReleases()

    expect(registry.size).toBe(0)
  })

  it('keeps at most maxUploads digests, dropping the least recently written', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES, maxUploads: 2 })
    const store = byteStore()
    const write = (key: string, offset: number) =>
      registry.write(key, offset, chunksOf(bytes(10), 4), (hashed) => store.write(key, hashed))

    await write('a', 0)
    await write('b', 0)
    await write('a', 10)
    await write('c', 0)

    expect(registry.size).toBe(2)
    expect(await registry.digestOf('a', 20)).toBeDefined()
    expect(await registry.digestOf('b', 10)).toBeUndefined()
    expect(await registry.digestOf('c', 10)).toBeDefined()
  })

  it('drops digests nobody wrote to for longer than idleMs, at the next write', async () => {
    let now = 0
    const registry = new StreamedDigestRegistry({
      headBytes: HEAD_BYTES,
      idleMs: 60_000,
      now: () => now,
    })
    const store = byteStore()
    const write = (key: string) =>
      registry.write(key, 0, chunksOf(bytes(10), 4), (hashed) => store.write(key, hashed))
    await write('old')
    now = 30_000
    await write('recent')

    now = 70_000
    await write('new')

    expect(await registry.digestOf('old', 10)).toBeUndefined()
    expect(await registry.digestOf('recent', 10)).toBeDefined()
    expect(await registry.digestOf('new', 10)).toBeDefined()
  })

  it('hashes a write of many batches exactly, and stores its bytes unchanged', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    // The bytes the store writes must survive being hashed on another thread.
    const data = Buffer.concat(Array.from({ length: 24 }, (_, seed) => bytes(64 * 1024, seed)))

    const offset = await registry.write('k', 0, chunksOf(data, 64 * 1024 - 3), (hashed) =>
      store.write('k', hashed),
    )

    expect(offset).toBe(data.length)
    expect(store.bytesOf('k')).toEqual(data)
    expect(await registry.digestOf('k', data.length)).toEqual({
      sha256: sha256(data),
      head: data.subarray(0, HEAD_BYTES),
    })
  })

  it('forgets an upload on request', async () => {
    const registry = new StreamedDigestRegistry({ headBytes: HEAD_BYTES })
    const store = byteStore()
    await registry.write('k', 0, chunksOf(bytes(10), 4), (hashed) => store.write('k', hashed))

    registry.forget('k')

    expect(await registry.digestOf('k', 10)).toBeUndefined()
    expect(registry.size).toBe(0)
  })
})
