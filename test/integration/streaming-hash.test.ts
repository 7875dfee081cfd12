import { randomBytes } from 'node:crypto'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { afterAll, afterEach, beforeAll, describe, expect, inject, it, vi } from 'vitest'
import { elfBytes, MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { openConnection } from '../helpers/raw-http.ts'
import { expectStoredOnce, recordsFor } from '../helpers/records.ts'
import { startRoundRobinProxy } from '../helpers/round-robin-proxy.ts'
import { s3TestClient, TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { isDetailedError, uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

const KiB = 1024
const png = (filename: string) => ({ filename, filetype: 'image/png' })

/**
 * Counts the finish step's reads of stored bytes on one instance. The spies wrap our own
 * UploadStorage port, not a library: every byte the finish step could read back goes through its
 * `sha256` and `readHead`, so "never called" proves the upload was finished from the digest made
 * as the bytes streamed in. The real methods still run when called.
 */
function readBacksOf(server: TestServer) {
  const { storage } = server.container.datastore
  const hashed = vi.spyOn(storage, 'sha256')
  const sniffed = vi.spyOn(storage, 'readHead')
  return {
    count: () => ({ sha256: hashed.mock.calls.length, readHead: sniffed.mock.calls.length }),
  }
}

function idOf(url: string): string {
  return url.slice(url.lastIndexOf('/') + 1)
}

describe.each(TEST_STORES)('hashing uploads as they stream in, on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, store)
  })

  afterEach(() => {
    vi.restoreAllMocks()
  })

  afterAll(async () => {
    await server?.close()
  })

  /** Another instance on the same database and store, with a container (and memory) of its own. */
  function anotherInstance(env: Record<string, string> = {}): Promise<TestServer> {
    return startTestServer(env, store, { sharing: server })
  }

  it('stores a chunked upload with the exact sha256 and type without reading its bytes back', async () => {
    const readBacks = readBacksOf(server)
    // Over one S3 part (5 MiB): S3Store uploads a part and keeps the tail in a `.part` object.
    const bytes = pngBytes(6 * MiB + 1234)

    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: 2 * MiB,
      metadata: png('chunked.png'),
    })

    await expectStoredOnce(server.knex, id, bytes)
    expect((await recordsFor(server.knex, id)).file.detected_type).toBe('image/png')
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
    // The finish step dropped the digest: nothing is left in memory for a finished upload.
    expect(await server.container.datastore.digests.digestOf(storageKeyOf(id), bytes.length)).toBe(
      undefined,
    )
  })

  it('stores uploads streaming at once with the exact sha256 each, hashed on the one hashing thread', async () => {
    const readBacks = readBacksOf(server)
    // Odd sizes and chunks: each upload's batches interleave with the others' on the thread.
    const files = [700 * KiB + 1, 900 * KiB + 77, 1200 * KiB + 5, 400 * KiB + 333].map(pngBytes)

    const uploads = await Promise.all(
      files.map((bytes, index) =>
        uploadWithTus(server.tusEndpoint, bytes, {
          chunkSize: 150 * KiB + index,
          metadata: png(`concurrent-${index}.png`),
        }),
      ),
    )

    for (const [index, { id }] of uploads.entries()) {
      await expectStoredOnce(server.knex, id, files[index] as Buffer)
    }
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
  })

  it.each(['ietf-draft-03', 'ietf-draft-05'] as const)(
    'stores a RUFH upload (tus-js-client %s) without reading its bytes back',
    async (protocol) => {
      const readBacks = readBacksOf(server)
      const bytes = pngBytes(6 * MiB + 99)

      const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
        protocol,
        chunkSize: 2 * MiB,
        metadata: png('rufh.png'),
      })

      await expectStoredOnce(server.knex, id, bytes)
      expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
    },
  )

  it('stores a creation-with-upload without reading its bytes back', async () => {
    const readBacks = readBacksOf(server)
    const bytes = pngBytes(50 * KiB)

    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadDataDuringCreation: true,
      metadata: png('created-with-upload.png'),
    })

    await expectStoredOnce(server.knex, id, bytes)
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
  })

  it('stores a deferred-length upload with the exact sha256 without reading its bytes back', async () => {
    const readBacks = readBacksOf(server)
    const bytes = pngBytes(300 * KiB + 17)

    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadLengthDeferred: true,
      chunkSize: 100 * KiB,
      metadata: png('deferred.png'),
    })

    await expectStoredOnce(server.knex, id, bytes)
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
  })

  it('resumes an upload stopped between chunks in a new client, without reading its bytes back', async () => {
    const readBacks = readBacksOf(server)
    const bytes = pngBytes(500 * KiB + 3)
    const stopped = await uploadUntil(server.tusEndpoint, bytes, 200 * KiB, {
      chunkSize: 100 * KiB,
      metadata: png('resumed.png'),
    })

    const resumed = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadUrl: stopped.url,
      chunkSize: 100 * KiB,
    })

    await expectStoredOnce(server.knex, resumed.id, bytes)
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
  })

  it('ends with the exact sha256 after a PATCH whose body the client cut off mid-way', async () => {
    // The first PATCH fills exactly one S3 part, leaving no `.part` tail: a PATCH cut off while
    // S3Store reads a tail hangs @tus/s3-store 2.0.7 for good (see the S3 suite below).
    const first = 5 * MiB
    const bytes = pngBytes(first + 400 * KiB)
    const created = await createUpload(server.tusEndpoint, bytes.length, png('cut.png'))
    const url = created.headers.get('location') ?? ''
    expect((await patchUpload(url, 0, bytes.subarray(0, first))).status).toBe(204)
    const connection = await openConnection(server.url)
    connection.socket.write(
      [
        `PATCH ${new URL(url).pathname} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Tus-Resumable: 1.0.0',
        `Upload-Offset: ${first}`,
        'Content-Type: application/offset+octet-stream',
        `Content-Length: ${bytes.length - first}`,
        '',
        '',
      ].join('\r\n'),
    )
    connection.socket.write(bytes.subarray(first, first + 150 * KiB))
    await waitUntil('the PATCH is writing to the store', async () => {
      if ((await uploadLocksHeld(server)) === 0) return false
      // FileStore appends as bytes arrive; S3Store keeps them in a part file until the part is
      // complete, so there nothing shows before the request ends.
      if (store.name === 's3') return true
      const progress = await server.container.datastore.storage.progress(storageKeyOf(idOf(url)))
      return (progress?.offset ?? 0) > first
    })

    connection.socket.destroy()
    await connection.closed
    const resumed = await uploadWithTus(server.tusEndpoint, bytes, {
      uploadUrl: url,
      chunkSize: 100 * KiB,
    })

    // Whether the digest outlived the cut depends on where the store was when it came; either
    // way the finish must get the exact bytes' sha256.
    await expectStoredOnce(server.knex, resumed.id, bytes)
  })

  it('rejects a disallowed type sniffed from the head kept from the stream, with 415 and no event', async () => {
    const readBacks = readBacksOf(server)
    const bytes = elfBytes(200 * KiB)

    const failure = await uploadWithTus(server.tusEndpoint, bytes, {
      chunkSize: 100 * KiB,
      metadata: png('not-really.png'),
    }).catch((error: unknown) => error)

    expect(isDetailedError(failure) && failure.originalResponse?.getStatus()).toBe(415)
    const id = idOf(isDetailedError(failure) ? (failure.originalRequest?.getURL() ?? '') : '')
    const { file, events } = await recordsFor(server.knex, id)
    expect(file.status).toBe('FAILED')
    expect(file.error_code).toBe('unsupported_file_type')
    expect(file.detected_type).toBe('application/x-elf')
    expect(events).toHaveLength(0)
    expect(readBacks.count()).toEqual({ sha256: 0, readHead: 0 })
  })

  it('forgets the digest of an upload terminated with DELETE', async () => {
    const bytes = pngBytes(300 * KiB)
    const { url, id } = await uploadUntil(server.tusEndpoint, bytes, 100 * KiB, {
      chunkSize: 100 * KiB,
      metadata: png('terminated.png'),
    })
    const { digests } = server.container.datastore
    expect(await digests.digestOf(storageKeyOf(id), 100 * KiB)).toBeDefined()

    const terminated = await fetch(url, { method: 'DELETE', headers: TUS })

    expect(terminated.status).toBe(204)
    expect(await digests.digestOf(storageKeyOf(id), 100 * KiB)).toBeUndefined()
  })

  it('reads the bytes back to end with the exact sha256 when the upload resumes after a restart', async () => {
    const before = await anotherInstance()
    const bytes = pngBytes(500 * KiB + 9)
    const stopped = await uploadUntil(before.tusEndpoint, bytes, 200 * KiB, {
      chunkSize: 100 * KiB,
      metadata: png('restarted.png'),
    })
    await before.close()

    const after = await anotherInstance()
    try {
      const readBacks = readBacksOf(after)
      const resumed = await uploadWithTus(after.tusEndpoint, bytes, {
        uploadUrl: `${after.tusEndpoint}/${stopped.id}`,
        chunkSize: 100 * KiB,
      })

      await expectStoredOnce(server.knex, resumed.id, bytes)
      expect(readBacks.count()).toEqual({ sha256: 1, readHead: 1 })
    } finally {
      await after.close()
    }
  })

  it('reads the bytes back to end with the exact sha256 when chunks alternate between two instances', async () => {
    const proxy = await startRoundRobinProxy()
    const instances = await Promise.all([
      anotherInstance({ PUBLIC_URL: proxy.url }),
      anotherInstance({ PUBLIC_URL: proxy.url }),
    ])
    try {
      proxy.setTargets(instances.map((instance) => instance.url))
      const readBacks = instances.map(readBacksOf)
      const bytes = pngBytes(500 * KiB + 1)

      const { id, url } = await uploadWithTus(`${proxy.url}/files`, bytes, {
        chunkSize: 100 * KiB,
        metadata: png('alternating.png'),
      })

      const patches = proxy.served.filter(
        (request) => request.method === 'PATCH' && request.path === new URL(url).pathname,
      )
      expect(new Set(patches.map((request) => request.instance)).size).toBe(2)
      await expectStoredOnce(server.knex, id, bytes)
      const counts = readBacks.map((readBack) => readBack.count())
      expect(counts.map((count) => count.sha256).toSorted()).toEqual([0, 1])
    } finally {
      await Promise.all(instances.map((instance) => instance.close()))
      await proxy.close()
    }
  })

  it('reads the bytes back when another instance served a request on the upload between two chunks', async () => {
    const elsewhere = await anotherInstance()
    try {
      const readBacks = readBacksOf(server)
      const bytes = pngBytes(300 * KiB)
      const created = await createUpload(server.tusEndpoint, bytes.length, png('visited.png'))
      const url = created.headers.get('location') ?? ''
      expect((await patchUpload(url, 0, bytes.subarray(0, 100 * KiB))).status).toBe(204)
      expect((await patchUpload(url, 100 * KiB, bytes.subarray(100 * KiB, 200 * KiB))).status).toBe(
        204,
      )

      const visit = await fetch(`${elsewhere.tusEndpoint}/${idOf(url)}`, {
        method: 'HEAD',
        headers: TUS,
      })
      expect(visit.headers.get('upload-offset')).toBe(String(200 * KiB))
      const last = await patchUpload(url, 200 * KiB, bytes.subarray(200 * KiB))

      expect(last.status).toBe(204)
      await expectStoredOnce(server.knex, idOf(url), bytes)
      expect(readBacks.count()).toEqual({ sha256: 1, readHead: 1 })
    } finally {
      await elsewhere.close()
    }
  })

  function storageKeyOf(id: string): string {
    return server.container.uploads.storageKeyOf(id)
  }
})

describe('hashing uploads as they stream in, on S3, where a failed PATCH can lose the .part tail', () => {
  const s3 = TEST_STORES.find((store) => store.name === 's3') as TestStore
  let server: TestServer
  let elsewhere: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, s3)
    elsewhere = await startTestServer({}, s3, { sharing: server })
  })

  afterAll(async () => {
    await elsewhere?.close()
    await server?.close()
  })

  /**
   * S3Store moves the `.part` tail into the part it builds from the next PATCH and deletes the
   * object before it reads the body: when that PATCH fails, the tail is gone and the offset falls
   * back. The upload can then be refilled with other bytes up to exactly where this instance's
   * digest ends; only hearing of the other instance's requests tells it. The test deletes the
   * tail itself: the failing PATCH that would (a body that breaks off or runs past the length
   * while the tail is being read) hangs @tus/s3-store 2.0.7 for good, holding the upload's lock.
   */
  it('sniffs and hashes the stored bytes when another instance refilled the upload after it lost its tail', async () => {
    const bytes = pngBytes(200 * KiB)
    const created = await createUpload(server.tusEndpoint, bytes.length, png('refilled.png'))
    const url = created.headers.get('location') ?? ''
    const urlElsewhere = `${elsewhere.tusEndpoint}/${idOf(url)}`
    expect((await patchUpload(url, 0, bytes.subarray(0, 100 * KiB))).status).toBe(204)
    await s3TestClient(inject('s3')).send(
      new DeleteObjectCommand({
        Bucket: server.settings.AWS_STORAGE_BUCKET_NAME,
        Key: `${server.container.uploads.storageKeyOf(idOf(url))}.part`,
      }),
    )
    const head = await fetch(urlElsewhere, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('0')
    // Another allowed image type: the other instance's own check of the first bytes lets it in.
    const refill = Buffer.concat([Buffer.from('GIF89a'), randomBytes(100 * KiB - 6)])
    expect((await patchUpload(urlElsewhere, 0, refill)).status).toBe(204)

    const last = await patchUpload(url, 100 * KiB, bytes.subarray(100 * KiB))

    expect(last.status).toBe(204)
    const { file } = await recordsFor(server.knex, idOf(url))
    expect(file.status).toBe('STORED')
    expect(file.detected_type).toBe('image/gif')
    expect(file.sha256).toBe(sha256(Buffer.concat([refill, bytes.subarray(100 * KiB)])))
  })
})

/** Upload locks held by the instances on this server's database. */
async function uploadLocksHeld(server: TestServer): Promise<number> {
  const { rows } = await server.knex.raw(
    `SELECT count(*) AS count FROM pg_locks JOIN pg_stat_activity USING (pid)
      WHERE locktype = 'advisory' AND granted AND application_name = 'tusbox-locker'
        AND datname = current_database()`,
  )
  return Number(rows[0].count)
}
