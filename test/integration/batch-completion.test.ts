import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elfBytes, pngBytes } from '../helpers/fixtures.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { errorOf } from '../helpers/tus-requests.ts'

interface BatchBody {
  readonly id: string
  readonly expectedFiles: number | null
  readonly completeRequestedAt: string | null
  readonly completedAt: string | null
  readonly allStored: boolean
}

describe.each(TEST_STORES)('batch.completed on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init)

  async function createBatch(body?: object): Promise<BatchBody> {
    const response = await api('/api/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    })
    expect(response.status).toBe(201)
    return (await response.json()) as BatchBody
  }

  async function requestCompletion(batchId: string): Promise<BatchBody> {
    const response = await api(`/api/batches/${batchId}/complete`, { method: 'POST' })
    expect(response.status).toBe(200)
    return (await response.json()) as BatchBody
  }

  function uploadInto(batchId: string, name: string, bytes = pngBytes(20_000)) {
    return uploadWithTus(server.tusEndpoint, bytes, { metadata: { filename: name, batchId } })
  }

  async function completionEvents(batchId: string) {
    const events = await server
      .knex('outbox_events')
      .where({ event_type: 'batch.completed', aggregate_id: batchId })
    const jobs = await server
      .knex('pgboss.job')
      .where({ name: 'outbox.deliver' })
      .whereIn(
        'singleton_key',
        events.map((event: { id: string }) => event.id),
      )
    return { events, jobs }
  }

  const repair = () => server.container.handlers['uploads.repair']({})

  it('records batch.completed once, with its job, when the last file of a declared batch is stored', async () => {
    const batch = await createBatch()
    const first = await uploadInto(batch.id, 'a.png')
    const second = await uploadInto(batch.id, 'b.png')
    expect((await completionEvents(batch.id)).events).toHaveLength(0)

    const view = await requestCompletion(batch.id)
    await requestCompletion(batch.id)

    expect(view.completedAt).not.toBeNull()
    const { events, jobs } = await completionEvents(batch.id)
    expect(events).toHaveLength(1)
    expect(jobs).toHaveLength(1)
    expect(events[0].payload).toEqual({
      batchId: batch.id,
      fileIds: [first.id, second.id],
      url: `${server.url}/api/batches/${batch.id}`,
    })
  })

  it('keeps the first completion when asked again: the same completedAt, one event under UploadBatch:<id>', async () => {
    const batch = await createBatch()
    await uploadInto(batch.id, 'once.png')
    const first = await requestCompletion(batch.id)
    expect(first.completedAt).not.toBeNull()

    const again = await requestCompletion(batch.id)

    expect(again.completedAt).toBe(first.completedAt)
    const { events } = await completionEvents(batch.id)
    expect(events.map((event: { idempotency_key: string }) => event.idempotency_key)).toEqual([
      `UploadBatch:${batch.id}`,
    ])
  })

  it('waits for files still uploading when completion is requested first', async () => {
    const batch = await createBatch()
    await uploadInto(batch.id, 'a.png')
    const bytes = pngBytes(300_000)
    const pending = await uploadUntil(server.tusEndpoint, bytes, 1, {
      chunkSize: 100_000,
      metadata: { filename: 'b.png', batchId: batch.id },
    })

    const requested = await requestCompletion(batch.id)
    expect(requested.completeRequestedAt).not.toBeNull()
    expect(requested.completedAt).toBeNull()
    expect((await completionEvents(batch.id)).events).toHaveLength(0)

    await uploadWithTus(server.tusEndpoint, bytes, { uploadUrl: pending.url, chunkSize: 100_000 })

    expect((await completionEvents(batch.id)).events).toHaveLength(1)
  })

  it('completes a batch created with an expected file count when that many files are stored', async () => {
    const batch = await createBatch({ expectedFiles: 2 })
    expect(batch.expectedFiles).toBe(2)

    await uploadInto(batch.id, 'a.png')
    expect((await completionEvents(batch.id)).events).toHaveLength(0)
    await uploadInto(batch.id, 'b.png')

    expect((await completionEvents(batch.id)).events).toHaveLength(1)
    const view = (await (await api(`/api/batches/${batch.id}`)).json()) as BatchBody
    expect(view.completedAt).not.toBeNull()
  })

  it('emits one event when the last files of a batch finish at the same time', async () => {
    const batch = await createBatch({ expectedFiles: 6 })

    await Promise.all(
      Array.from({ length: 6 }, (_, i) => uploadInto(batch.id, `${i}.png`, pngBytes(10_000 + i))),
    )

    const { events, jobs } = await completionEvents(batch.id)
    expect(events).toHaveLength(1)
    expect(jobs).toHaveLength(1)
    expect(events[0].payload.fileIds).toHaveLength(6)
  })

  it('never completes a batch while one of its files is FAILED, and completes it once that file is deleted', async () => {
    const batch = await createBatch()
    await uploadInto(batch.id, 'good.png')
    const failed = await uploadInto(batch.id, 'bad.png', elfBytes(10_000)).then(
      () => expect.fail('a disallowed file was accepted'),
      (error) => (error.originalRequest.getURL() as string).split('/').at(-1) as string,
    )
    await requestCompletion(batch.id)
    expect((await completionEvents(batch.id)).events).toHaveLength(0)

    expect((await api(`/api/files/${failed}`, { method: 'DELETE' })).status).toBe(200)

    expect((await completionEvents(batch.id)).events).toHaveLength(1)
  })

  it('completes a declared batch through repair once its unfinished straggler expires', async () => {
    const batch = await createBatch()
    await uploadInto(batch.id, 'a.png')
    const straggler = await uploadUntil(server.tusEndpoint, pngBytes(300_000), 1, {
      chunkSize: 100_000,
      metadata: { filename: 'b.png', batchId: batch.id },
    })
    await requestCompletion(batch.id)
    await server
      .knex('upload_files')
      .where({ id: straggler.id })
      .update({ expires_at: new Date(Date.now() - 1000) })
    expect((await server.container.handlers['uploads.purge']({})).expired).toBe(1)
    expect((await completionEvents(batch.id)).events).toHaveLength(0)

    const first = await repair()
    const second = await repair()

    expect(first.batchesCompleted).toBe(1)
    expect(second.batchesCompleted).toBe(0)
    expect((await completionEvents(batch.id)).events).toHaveLength(1)
  })

  it('refuses new uploads into a batch declared complete with 409 batch_closed', async () => {
    const batch = await createBatch()
    await requestCompletion(batch.id)

    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: {
        'Tus-Resumable': '1.0.0',
        'Upload-Length': '100',
        'Upload-Metadata': `filename ${btoa('late.png')},batchId ${btoa(batch.id)}`,
      },
    })

    expect(response.status).toBe(409)
    expect((await errorOf(response)).code).toBe('batch_closed')
  })

  it('answers 400 for an expected file count that is not a whole number from 1 to 1000', async () => {
    for (const expectedFiles of [0, 1.5, 1001, '2']) {
      const response = await api('/api/batches', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ expectedFiles }),
      })
      expect(response.status).toBe(400)
      expect((await errorOf(response)).code).toBe('invalid_expected_files')
    }
  })
})
