import { Readable } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elfBytes, MiB, pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce, recordsFor } from '../helpers/records.ts'
import { interop8, pathOf, rufhRequest } from '../helpers/rufh-client.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload } from '../helpers/tus-requests.ts'

const HOUR = 3_600_000

describe.each(TEST_STORES)('purge and repair on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_TTL: '7d', PURGE_BATCH_SIZE: '4' }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  const purge = () => server.container.handlers['uploads.purge']({})
  const repair = () => server.container.handlers['uploads.repair']({})
  const leftovers = async (id: string) =>
    (await server.storedFiles()).filter((name) => name.includes(id))
  /** Time passes in the database, not in the test: the row says when it expires. */
  const expire = (id: string) =>
    server
      .knex('upload_files')
      .where({ id })
      .update({ expires_at: new Date(Date.now() - 1000) })

  it('expires an idle unfinished upload: bytes, parts and multipart upload gone, row EXPIRED', async () => {
    const { id } = await uploadUntil(server.tusEndpoint, pngBytes(3 * MiB), MiB, {
      chunkSize: MiB,
      metadata: { filename: 'idle.png' },
    })
    expect(await leftovers(id)).not.toEqual([])
    await expire(id)

    const report = await purge()

    expect(report.expired).toBe(1)
    expect((await recordsFor(server.knex, id)).file.status).toBe('EXPIRED')
    expect(await leftovers(id)).toEqual([])
  })

  it('deletes a STORED file past FILE_UPLOAD_TTL and records file.deleted with its job, once', async () => {
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(10_000), {
      metadata: { filename: 'old.png' },
    })
    const { file } = await recordsFor(server.knex, id)
    expect(file.expires_at.getTime()).toBeGreaterThan(Date.now() + 6 * 24 * HOUR)
    await expire(id)

    expect((await purge()).deleted).toBe(1)
    expect((await purge()).deleted).toBe(0)

    const { file: deleted, events } = await recordsFor(server.knex, id)
    expect(deleted.status).toBe('DELETED')
    expect(events.map((event: { event_type: string }) => event.event_type).sort()).toEqual([
      'file.deleted',
      'file.stored',
    ])
    const removal = events.find(
      (event: { event_type: string }) => event.event_type === 'file.deleted',
    )
    expect(removal.payload).toEqual({
      fileId: id,
      batchId: null,
      storageKey: file.storage_key,
      reason: 'ttl_expired',
    })
    const jobs = await server
      .knex('pgboss.job')
      .where({ name: 'outbox.deliver', singleton_key: removal.id })
    expect(jobs).toHaveLength(1)
    expect(await leftovers(id)).toEqual([])
  })

  it('removes FAILED rows older than FAILED_UPLOAD_RETENTION and keeps younger ones', async () => {
    const failures = await Promise.all(
      [1, 2].map(() =>
        uploadWithTus(server.tusEndpoint, elfBytes(5_000), {
          metadata: { filename: 'x.png' },
        }).catch(
          (error: { originalRequest: { getURL(): string } }) =>
            error.originalRequest.getURL().split('/').at(-1) as string,
        ),
      ),
    )
    const [old, young] = failures as [string, string]
    await server
      .knex('upload_files')
      .where({ id: old })
      .update({ updated_at: new Date(Date.now() - 8 * 24 * HOUR) })

    expect((await purge()).failedRemoved).toBe(1)

    expect(await server.knex('upload_files').where({ id: old }).first()).toBeUndefined()
    expect((await recordsFor(server.knex, young)).file.status).toBe('FAILED')
  })

  it('works through a backlog in bounded batches, with two purges at once and no double delete', async () => {
    const ids: string[] = []
    for (let index = 0; index < 10; index++) {
      const created = await createUpload(server.tusEndpoint, 1000, { filename: `${index}.png` })
      ids.push((created.headers.get('location') ?? '').split('/').at(-1) ?? '')
    }
    await server
      .knex('upload_files')
      .whereIn('id', ids)
      .update({ expires_at: new Date(Date.now() - 1000) })

    const reports = await Promise.all([purge(), purge()])

    expect(reports[0].expired + reports[1].expired).toBe(10)
    const statuses = await server.knex('upload_files').whereIn('id', ids).pluck('status')
    expect(new Set(statuses)).toEqual(new Set(['EXPIRED']))
    for (const id of ids) expect(await leftovers(id)).toEqual([])
  })

  it('repairs an upload whose bytes are complete but whose finish step never ran', async () => {
    const bytes = pngBytes(40_000)
    const created = await createUpload(server.tusEndpoint, bytes.length, { filename: 'orphan.png' })
    const id = (created.headers.get('location') ?? '').split('/').at(-1) ?? ''
    await server.container.datastore.tusStore.write(
      Readable.from([bytes]),
      server.container.uploads.storageKeyOf(id),
      0,
    )
    await server
      .knex('upload_files')
      .where({ id })
      .update({ updated_at: new Date(Date.now() - 5 * 60_000) })

    const first = await repair()
    const second = await repair()

    expect(first.finished).toBe(1)
    expect(second).toEqual({ checked: 0, finished: 0, batchesCompleted: 0 })
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('expires an idle RUFH upload, and repairs one whose bytes all came without Upload-Complete: ?1', async () => {
    const createRufh = async (bytes: Buffer, length: number) => {
      const created = await rufhRequest(
        server.url,
        'POST',
        '/files',
        interop8([
          ['Upload-Complete', '?0'],
          ['Upload-Length', String(length)],
          ['Content-Type', 'image/png'],
        ]),
        bytes,
      )
      expect(created.final?.status).toBe(201)
      return pathOf(created.final?.headers.get('location')).slice('/files/'.length)
    }
    const idle = await createRufh(pngBytes(MiB).subarray(0, 1000), MiB)
    const complete = pngBytes(30_000)
    const unfinished = await createRufh(complete, complete.length)
    await expire(idle)
    await server
      .knex('upload_files')
      .where({ id: unfinished })
      .update({ updated_at: new Date(Date.now() - 5 * 60_000) })

    const purged = await purge()
    const repaired = await repair()

    expect(purged.expired).toBe(1)
    expect((await recordsFor(server.knex, idle)).file.status).toBe('EXPIRED')
    expect(await leftovers(idle)).toEqual([])
    expect(repaired.finished).toBe(1)
    await expectStoredOnce(server.knex, unfinished, complete)
  })

  it('leaves an idle incomplete upload alone when repairing, and looks at it once', async () => {
    const created = await createUpload(server.tusEndpoint, 1000, { filename: 'half.png' })
    const id = (created.headers.get('location') ?? '').split('/').at(-1) ?? ''
    await server
      .knex('upload_files')
      .where({ id })
      .update({ updated_at: new Date(Date.now() - 5 * 60_000) })

    expect((await repair()).finished).toBe(0)
    expect((await recordsFor(server.knex, id)).file.status).toBe('UPLOADING')
    expect((await repair()).checked).toBe(0)
  })
})
