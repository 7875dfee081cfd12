import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { csvBytes, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { recordsFor } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { errorOf, patchUpload } from '../helpers/tus-requests.ts'

describe.each(TEST_STORES)('the JSON API on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ AWS_QUERYSTRING_AUTH: 'false' }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init)

  async function createBatch(): Promise<string> {
    const response = await api('/api/batches', { method: 'POST' })
    expect(response.status).toBe(201)
    return ((await response.json()) as { id: string }).id
  }

  it('creates a batch and reports allStored once every file in it is STORED', async () => {
    const batchId = await createBatch()
    const empty = await (await api(`/api/batches/${batchId}`)).json()
    expect(empty).toMatchObject({ id: batchId, allStored: false, files: [] })

    const files = [pngBytes(10_000), csvBytes(50)]
    await uploadWithTus(server.tusEndpoint, files[0] as Buffer, {
      metadata: { filename: 'a.png', filetype: 'image/png', batchId },
    })
    await uploadWithTus(server.tusEndpoint, files[1] as Buffer, {
      metadata: { filename: 'b.csv', filetype: 'text/csv', batchId },
    })

    const view = (await (await api(`/api/batches/${batchId}`)).json()) as {
      allStored: boolean
      files: { filename: string; status: string; batchId: string; contentType: string }[]
    }
    expect(view.allStored).toBe(true)
    expect(view.files.map((file) => [file.filename, file.status, file.contentType])).toEqual([
      ['a.png', 'STORED', 'image/png'],
      ['b.csv', 'STORED', 'text/csv'],
    ])
    const listed = (await (await api(`/api/files?batchId=${batchId}`)).json()) as {
      files: unknown[]
    }
    expect(listed.files).toHaveLength(2)
  })

  it('pages through files with limit and the nextCursor it returns', async () => {
    const batchId = await createBatch()
    for (let i = 0; i < 3; i++) {
      await uploadWithTus(server.tusEndpoint, pngBytes(5_000), {
        metadata: { filename: `${i}.png`, batchId },
      })
    }
    const first = (await (await api(`/api/files?batchId=${batchId}&limit=2`)).json()) as {
      files: { filename: string }[]
      nextCursor: string
    }
    expect(first.files.map((file) => file.filename)).toEqual(['0.png', '1.png'])
    const second = (await (
      await api(`/api/files?batchId=${batchId}&limit=2&after=${first.nextCursor}`)
    ).json()) as { files: { filename: string }[]; nextCursor: string | null }
    expect(second.files.map((file) => file.filename)).toEqual(['2.png'])
    expect(second.nextCursor).toBeNull()
  })

  it('answers 400 for a limit out of range and for a batchId that is not an id', async () => {
    expect((await errorOf(await api('/api/files?limit=0'))).code).toBe('invalid_limit')
    expect((await errorOf(await api('/api/files?limit=1000'))).code).toBe('invalid_limit')
    const response = await api('/api/files?batchId=x')
    expect(response.status).toBe(400)
    expect((await errorOf(response)).code).toBe('invalid_batchId')
  })

  it('shows a file with its status, size, type, sha256 and timestamps', async () => {
    const bytes = pngBytes(12_345)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'x.png' },
    })
    const file = await (await api(`/api/files/${id}`)).json()
    expect(file).toMatchObject({
      id,
      status: 'STORED',
      filename: 'x.png',
      contentType: 'image/png',
      size: 12_345,
      sha256: sha256(bytes),
      batchId: null,
      error: null,
    })
    expect(Date.parse((file as { storedAt: string }).storedAt)).not.toBeNaN()
  })

  it('answers 404 for an unknown file, a malformed id, an unknown batch and an unknown route', async () => {
    const unknown = await api('/api/files/01a22063-b7db-76c5-ade9-046081fece3e')
    expect(unknown.status).toBe(404)
    expect((await errorOf(unknown)).code).toBe('file_not_found')
    expect((await api('/api/files/not-an-id')).status).toBe(404)
    expect(
      (await errorOf(await api('/api/batches/01a22063-b7db-76c5-ade9-046081fece3e'))).code,
    ).toBe('batch_not_found')
    const route = await api('/api/nothing-here')
    expect(route.status).toBe(404)
    expect((await errorOf(route)).code).toBe('route_not_found')
  })

  it('streams content with its type, a safe Content-Disposition and the exact bytes', async () => {
    const bytes = pngBytes(70_000)
    const filename = 'Résumé "final".png'
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, { metadata: { filename } })
    const response = await api(`/api/files/${id}/content`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('image/png')
    expect(response.headers.get('content-length')).toBe(String(bytes.length))
    expect(response.headers.get('content-disposition')).toBe(
      `attachment; filename="R_sum_ _final_.png"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.png`,
    )
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(bytes))
  })

  it('answers a Range request with 206 and exactly those bytes, and 416 beyond the end', async () => {
    const bytes = pngBytes(10_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'r.png' },
    })
    const content = `/api/files/${id}/content`

    const middle = await api(content, { headers: { Range: 'bytes=100-199' } })
    expect(middle.status).toBe(206)
    expect(middle.headers.get('content-range')).toBe('bytes 100-199/10000')
    expect(Buffer.from(await middle.arrayBuffer())).toEqual(bytes.subarray(100, 200))

    const suffix = await api(content, { headers: { Range: 'bytes=-10' } })
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(bytes.subarray(9_990))

    const openEnded = await api(content, { headers: { Range: 'bytes=9995-' } })
    expect(Buffer.from(await openEnded.arrayBuffer())).toEqual(bytes.subarray(9_995))

    const beyond = await api(content, { headers: { Range: 'bytes=10000-' } })
    expect(beyond.status).toBe(416)
    expect(beyond.headers.get('content-range')).toBe('bytes */10000')
    expect((await errorOf(beyond)).code).toBe('range_not_satisfiable')

    const multiple = await api(content, { headers: { Range: 'bytes=0-1,5-6' } })
    expect(multiple.status).toBe(200)
    expect(Number(multiple.headers.get('content-length'))).toBe(10_000)
    await multiple.arrayBuffer()
  })

  it('deletes a file: bytes gone, row DELETED, file.deleted recorded once, content and a second delete 410', async () => {
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(5_000), {
      metadata: { filename: 'd.png' },
    })
    const key = server.container.uploads.storageKeyOf(id)
    expect(await server.storedFiles()).toContain(key)

    const deleted = await api(`/api/files/${id}`, { method: 'DELETE' })
    expect(deleted.status).toBe(200)
    expect(await deleted.json()).toMatchObject({ id, status: 'DELETED' })
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
    const { events } = await recordsFor(server.knex, id)
    expect(events.map((event: { event_type: string }) => event.event_type)).toEqual([
      'file.stored',
      'file.deleted',
    ])
    expect(events[1].payload).toMatchObject({ fileId: id, reason: 'deleted' })

    const content = await api(`/api/files/${id}/content`)
    expect(content.status).toBe(410)
    expect((await errorOf(content)).code).toBe('file_gone')
    const again = await api(`/api/files/${id}`, { method: 'DELETE' })
    expect(again.status).toBe(410)
  })

  it('deletes an unfinished upload: no object, part or multipart upload is left, later PATCHes get 410', async () => {
    const bytes = pngBytes(3 * 1024 * 1024)
    const { url, id } = await uploadUntil(server.tusEndpoint, bytes, 1024 * 1024, {
      chunkSize: 1024 * 1024,
      metadata: { filename: 'half.png' },
    })
    expect((await server.storedFiles()).some((name) => name.includes(id))).toBe(true)

    const deleted = await api(`/api/files/${id}`, { method: 'DELETE' })

    expect(deleted.status).toBe(200)
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
    expect((await recordsFor(server.knex, id)).events).toEqual([])
    const resumed = await patchUpload(url, 1024 * 1024, bytes.subarray(1024 * 1024))
    expect(resumed.status).toBe(410)
    expect((await errorOf(resumed)).code).toBe('upload_gone')
  })

  it('answers /healthz while the process is up, and /readyz 200 when database and storage work', async () => {
    expect(await (await api('/healthz')).json()).toEqual({ status: 'ok' })
    const ready = await api('/readyz')
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({
      status: 'ready',
      checks: [
        { name: 'database', status: 'ok' },
        { name: 'storage', status: 'ok' },
      ],
    })
  })
})
