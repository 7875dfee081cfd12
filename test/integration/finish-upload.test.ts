import { Readable } from 'node:stream'
import type { Knex } from 'knex'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { transactionRunner } from '../../src/db/knex.ts'
import type { Transaction } from '../../src/db/transaction.ts'
import { bossJobQueue } from '../../src/jobs/boss.ts'
import { createLogger } from '../../src/lib/logger.ts'
import type { FileStoredData } from '../../src/outbox/events.ts'
import { OutboxRepository } from '../../src/outbox/outbox.repository.ts'
import { StreamedDigestRegistry } from '../../src/tus/streamed-digests.ts'
import { BatchRepository } from '../../src/uploads/batch.repository.ts'
import { SNIFF_BYTES } from '../../src/uploads/content-type.ts'
import { createFinishUpload, type FinishUpload } from '../../src/uploads/finish-upload.ts'
import type { UploadFile } from '../../src/uploads/types.ts'
import { UploadRepository } from '../../src/uploads/upload.repository.ts'
import { elfBytes, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { expectStoredOnce, recordsFor } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

function storedData(id: string): FileStoredData {
  return {
    fileId: id,
    batchId: null,
    filename: 'f.png',
    contentType: 'image/png',
    size: 1,
    sha256: '0'.repeat(64),
    storageKey: id,
    url: `http://127.0.0.1/api/files/${id}/content`,
  }
}

describe.each(TEST_STORES)('the finish step on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  /**
   * An upload whose bytes all reached the store while its row stayed UPLOADING: what a server
   * that died between the last byte and the finish transaction leaves behind.
   */
  async function uploadWithoutFinishing(bytes: Buffer): Promise<{ id: string; url: string }> {
    const created = await createUpload(server.tusEndpoint, bytes.length, {
      filename: 'f.png',
      filetype: 'image/png',
    })
    const url = created.headers.get('location') ?? ''
    const id = url.split('/').at(-1) ?? ''
    const key = server.container.uploads.storageKeyOf(id)
    await server.container.datastore.tusStore.write(Readable.from([bytes]), key, 0)
    return { id, url }
  }

  /**
   * A second finisher with its own in-process state, as another server instance would have: it
   * received none of the bytes, so it has no digest of them and reads them back.
   */
  function finisherOfAnotherInstance(): FinishUpload {
    const { knex, container, config } = server
    return createFinishUpload({
      uploads: new UploadRepository(knex),
      batches: new BatchRepository(knex),
      outbox: new OutboxRepository(knex),
      jobs: bossJobQueue(container.boss),
      storage: container.datastore.storage,
      digests: new StreamedDigestRegistry({ headBytes: SNIFF_BYTES }),
      transactions: transactionRunner(knex),
      policy: { ...config.uploads },
      publicUrl: config.http.publicUrl,
      logger: createLogger('silent'),
    })
  }

  /** A real database failure: a trigger makes every insert into `table` raise. */
  async function whileInsertsFail(table: string, check: () => Promise<void>): Promise<void> {
    await server.knex.raw(`
      CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;
      CREATE TRIGGER refuse_insert BEFORE INSERT ON ${table}
        FOR EACH ROW EXECUTE FUNCTION refuse_insert();
    `)
    try {
      await check()
    } finally {
      await server.knex.raw(`DROP TRIGGER refuse_insert ON ${table}; DROP FUNCTION refuse_insert()`)
    }
  }

  /** Waits until `count` sessions wait for a lock (the test holds the row's). */
  async function lockWaiters(count: number): Promise<void> {
    await waitUntil(`${count} session(s) wait for the row lock`, async () => {
      const { rows } = await server.knex.raw(
        "SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
      )
      return rows[0].waiting >= count
    })
  }

  /** Holds the upload's row lock while `work` runs; `work` lets it go by committing `trx`. */
  async function holdingRowLock<T>(
    id: string,
    work: (trx: Knex.Transaction) => Promise<T>,
  ): Promise<T> {
    const trx = await server.knex.transaction()
    try {
      await trx('upload_files').where({ id }).forUpdate().first()
      return await work(trx)
    } finally {
      if (!trx.isCompleted()) await trx.rollback()
    }
  }

  /**
   * Runs a finisher of another instance while the test holds the upload's row lock, lets
   * `underLock` change the row as a concurrent request would, then lets the finisher on.
   */
  function finishWhileRowLocked(
    id: string,
    underLock: (trx: Knex.Transaction) => Promise<void>,
  ): Promise<UploadFile> {
    return holdingRowLock(id, async (trx) => {
      const finishing = finisherOfAnotherInstance()(id)
      finishing.catch(() => undefined)
      await lockWaiters(1)
      await underLock(trx)
      await trx.commit()
      return finishing
    })
  }

  const deleteFile = (id: string) => fetch(`${server.url}/api/files/${id}`, { method: 'DELETE' })

  async function eventTypes(id: string): Promise<string[]> {
    const rows = await server.knex('outbox_events').where({ aggregate_id: id }).orderBy('id')
    return rows.map((row: { event_type: string }) => row.event_type)
  }

  it('announces file.stored then file.deleted when a DELETE queues behind a finish', async () => {
    const { id } = await uploadWithoutFinishing(pngBytes(20_000))

    const [finished, deleted] = await holdingRowLock(id, async (trx) => {
      const finishing = finisherOfAnotherInstance()(id)
      await lockWaiters(1)
      const deleting = deleteFile(id)
      await lockWaiters(2)
      await trx.commit()
      return Promise.all([finishing, deleting])
    })

    expect(finished.status).toBe('STORED')
    expect(deleted.status).toBe(200)
    expect(await eventTypes(id)).toEqual(['file.stored', 'file.deleted'])
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('announces nothing when a finish queues behind a DELETE', async () => {
    const { id } = await uploadWithoutFinishing(pngBytes(20_000))

    const [deleted, finished] = await holdingRowLock(id, async (trx) => {
      const deleting = deleteFile(id)
      await lockWaiters(1)
      const finishing = finisherOfAnotherInstance()(id)
      await lockWaiters(2)
      await trx.commit()
      return Promise.all([deleting, finishing])
    })

    expect(deleted.status).toBe(200)
    expect(finished.status).toBe('DELETED')
    expect(await eventTypes(id)).toEqual([])
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('leaves a row deleted while it waited for the lock DELETED, with no event', async () => {
    const { id } = await uploadWithoutFinishing(pngBytes(20_000))

    const result = await finishWhileRowLocked(id, async (trx) => {
      await trx('upload_files')
        .where({ id })
        .update({ status: 'DELETED', deleted_at: trx.fn.now() })
    })

    expect(result.status).toBe('DELETED')
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.status).toBe('DELETED')
    expect(events).toEqual([])
    expect(jobs).toEqual([])
  })

  it('answers STORED without storing again when another instance stored the upload while it waited', async () => {
    const bytes = pngBytes(20_000)
    const { id } = await uploadWithoutFinishing(bytes)
    const storedAt = new Date('2026-01-02T03:04:05Z')

    const result = await finishWhileRowLocked(id, async (trx) => {
      await trx('upload_files')
        .where({ id })
        .update({
          status: 'STORED',
          size: bytes.length,
          sha256: sha256(bytes),
          detected_type: 'image/png',
          stored_at: storedAt,
        })
      const event = await new OutboxRepository(server.knex).recordOnce(
        { aggregateType: 'UploadFile', aggregateId: id, type: 'file.stored', data: storedData(id) },
        trx as unknown as Transaction,
      )
      expect(event).toBeDefined()
    })

    expect(result.status).toBe('STORED')
    const { file, events } = await recordsFor(server.knex, id)
    expect(file.stored_at).toEqual(storedAt)
    expect(events).toHaveLength(1)
  })

  it('records an event once per type and key: recording it again adds nothing and does not throw', async () => {
    const outbox = new OutboxRepository(server.knex)
    const id = uuidv7()
    const event = {
      aggregateType: 'UploadFile',
      aggregateId: id,
      type: 'file.stored' as const,
      data: storedData(id),
    }
    const runner = transactionRunner(server.knex)
    const first = await runner.inTransaction((tx) => outbox.recordOnce(event, tx))
    const again = await runner.inTransaction((tx) => outbox.recordOnce(event, tx))

    expect(first).toBeDefined()
    expect(again).toBeUndefined()
    const rows = await server.knex('outbox_events').where({ aggregate_id: id })
    expect(rows.map((row) => row.idempotency_key)).toEqual([`UploadFile:${id}`])
  })

  it('is idempotent: a second call leaves one STORED row, one event and one job', async () => {
    const bytes = pngBytes(50_000)
    const { id } = await uploadWithoutFinishing(bytes)

    const first = await server.container.finishUpload(id)
    const second = await server.container.finishUpload(id)

    expect(first.status).toBe('STORED')
    expect(second).toEqual(first)
    const { file, events, jobs } = await recordsFor(server.knex, id)
    expect(file.sha256).toBe(sha256(bytes))
    expect(events).toHaveLength(1)
    expect(jobs).toHaveLength(1)
  })

  it('produces one event and one job when two instances finish the same upload at once', async () => {
    const bytes = pngBytes(80_000)
    const { id } = await uploadWithoutFinishing(bytes)

    const results = await Promise.all([
      server.container.finishUpload(id),
      finisherOfAnotherInstance()(id),
      finisherOfAnotherInstance()(id),
    ])

    expect(results.map((file) => file.status)).toEqual(['STORED', 'STORED', 'STORED'])
    const { events, jobs } = await recordsFor(server.knex, id)
    expect(events).toHaveLength(1)
    expect(jobs).toHaveLength(1)
  })

  it('leaves the row UPLOADING and enqueues no job when the event insert fails', async () => {
    const bytes = pngBytes(20_000)
    const { id } = await uploadWithoutFinishing(bytes)
    await whileInsertsFail('outbox_events', async () => {
      await expect(finisherOfAnotherInstance()(id)).rejects.toThrow(/refused by test/)
      const { file, events, jobs } = await recordsFor(server.knex, id)
      expect(file.status).toBe('UPLOADING')
      expect(file.sha256).toBeNull()
      expect(events).toHaveLength(0)
      expect(jobs).toHaveLength(0)
    })

    expect((await server.container.finishUpload(id)).status).toBe('STORED')
    const after = await recordsFor(server.knex, id)
    expect(after.events).toHaveLength(1)
    expect(after.jobs).toHaveLength(1)
  })

  it('leaves the row UPLOADING and records no event when the job cannot be enqueued', async () => {
    const bytes = pngBytes(20_000)
    const { id } = await uploadWithoutFinishing(bytes)
    await whileInsertsFail('pgboss.job', async () => {
      await expect(finisherOfAnotherInstance()(id)).rejects.toThrow(/refused by test/)
      const { file, events } = await recordsFor(server.knex, id)
      expect(file.status).toBe('UPLOADING')
      expect(events).toHaveLength(0)
    })
  })

  it('is run by a HEAD from a resuming client when the bytes are complete but the row is not', async () => {
    const bytes = pngBytes(30_000)
    const { id, url } = await uploadWithoutFinishing(bytes)

    const head = await fetch(url, { method: 'HEAD', headers: TUS })

    expect(head.status).toBe(200)
    expect(head.headers.get('upload-offset')).toBe(String(bytes.length))
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('answers that HEAD with 410 and the reason when the finished bytes are not allowed', async () => {
    const { id, url } = await uploadWithoutFinishing(elfBytes(30_000))

    const head = await fetch(url, { method: 'HEAD', headers: TUS })

    expect(head.status).toBe(410)
    const { file, events } = await recordsFor(server.knex, id)
    expect(file.status).toBe('FAILED')
    expect(file.error_code).toBe('unsupported_file_type')
    expect(events).toHaveLength(0)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('refuses to finish an upload whose bytes are not all there', async () => {
    const created = await createUpload(server.tusEndpoint, 1000, { filename: 'f.png' })
    const id = (created.headers.get('location') ?? '').split('/').at(-1) ?? ''

    await expect(server.container.finishUpload(id)).rejects.toMatchObject({
      code: 'upload_incomplete',
    })
    expect((await recordsFor(server.knex, id)).file.status).toBe('UPLOADING')
  })
})
