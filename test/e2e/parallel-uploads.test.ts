import { HeadObjectCommand } from '@aws-sdk/client-s3'
import * as tus from 'tus-js-client'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { elfBytes, MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { countRows, expectStoredOnce, recordsFor } from '../helpers/records.ts'
import { s3TestClient, TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { encodeMetadata, errorOf, patchUpload, TUS } from '../helpers/tus-requests.ts'

/**
 * tus concatenation, which tus-js-client's `parallelUploads` and Uppy use: partial uploads sent
 * at once, joined by a final upload. The same suite runs on every store.
 */

const pngMetadata = (filename: string) => ({ filename, filetype: 'image/png' })

/** Raw tus requests for partial and final uploads, as tus-js-client sends them. */
function concatClient(
  server: () => TestServer,
  headers: () => Record<string, string> = () => ({}),
) {
  const endpoint = () => server().tusEndpoint
  return {
    /** A partial upload holding `bytes` (the first `sent` of them). */
    async partial(bytes: Uint8Array, sent = bytes.length, extra: Record<string, string> = {}) {
      const response = await fetch(endpoint(), {
        method: 'POST',
        headers: {
          ...TUS,
          ...headers(),
          'Upload-Concat': 'partial',
          'Upload-Length': String(bytes.length),
          ...extra,
        },
      })
      expect(response.status).toBe(201)
      const url = response.headers.get('location') ?? ''
      if (sent > 0) {
        const patch = await patchUpload(url, 0, bytes.subarray(0, sent), headers())
        expect(patch.status).toBe(204)
      }
      return url
    },
    final(urls: readonly string[], metadata: Record<string, string> = {}) {
      return fetch(endpoint(), {
        method: 'POST',
        headers: {
          ...TUS,
          ...headers(),
          'Upload-Concat': `final;${urls.join(' ')}`,
          ...(Object.keys(metadata).length > 0
            ? { 'Upload-Metadata': encodeMetadata(metadata) }
            : {}),
        },
      })
    },
  }
}

const idOf = (url: string) => url.slice(url.lastIndexOf('/') + 1)

describe.each(TEST_STORES)('parallel uploads (tus concatenation) on the $name store', (store) => {
  let server: TestServer
  const client = concatClient(() => server)

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_MAX_SIZE: String(64 * MiB) }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  /** The final object's multipart ETag ends in its part count: proof of a copy inside S3. */
  async function s3PartCount(id: string): Promise<number> {
    const { file } = await recordsFor(server.knex, id)
    const head = await s3TestClient(inject('s3')).send(
      new HeadObjectCommand({
        Bucket: server.settings.AWS_STORAGE_BUCKET_NAME,
        Key: file.storage_key,
      }),
    )
    return Number(head.ETag?.match(/-(\d+)"$/)?.[1] ?? 1)
  }

  it('advertises concatenation in Tus-Extension', async () => {
    const response = await fetch(server.tusEndpoint, { method: 'OPTIONS' })
    expect(response.headers.get('tus-extension')?.split(',')).toContain('concatenation')
  })

  it.each([2, 4, 8])(
    'stores a file smaller than one S3 part sent as %i partial uploads, with its exact sha256 and one event',
    async (parallelUploads) => {
      const bytes = pngBytes(MiB + 333)
      const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
        parallelUploads,
        metadata: pngMetadata('small.png'),
      })
      await expectStoredOnce(server.knex, id, bytes)
      const { file } = await recordsFor(server.knex, id)
      expect(file).toMatchObject({
        filename: 'small.png',
        detected_type: 'image/png',
        concat: 'final',
      })
    },
  )

  it.each([2, 4, 8])(
    'stores a 44 MiB file sent as %i partial uploads above 5 MiB each, joined inside the store',
    async (parallelUploads) => {
      const bytes = pngBytes(44 * MiB + 5)
      const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
        parallelUploads,
        metadata: pngMetadata('large.png'),
      })
      await expectStoredOnce(server.knex, id, bytes)
      if (store.name === 's3') expect(await s3PartCount(id)).toBe(parallelUploads)
      const content = await fetch(`${server.url}/files/${id}`)
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(bytes))
    },
  )

  it('refuses uploadLengthDeferred with parallelUploads in tus-js-client itself, before any request', async () => {
    const rowsBefore = await countRows(server.knex, 'upload_files')
    const error = await uploadWithTus(server.tusEndpoint, pngBytes(1000), {
      parallelUploads: 2,
      uploadLengthDeferred: true,
    }).catch((reason: unknown) => reason)
    expect(String(error)).toContain(
      'cannot use the uploadLengthDeferred option when parallelUploads is enabled',
    )
    expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore)
  })

  it('joins a partial upload whose length was deferred until its last PATCH', async () => {
    const bytes = pngBytes(300_000)
    const first = await client.partial(bytes.subarray(0, 100_000))
    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Concat': 'partial', 'Upload-Defer-Length': '1' },
    })
    const deferred = created.headers.get('location') ?? ''
    const rest = bytes.subarray(100_000)
    expect((await patchUpload(deferred, 0, rest.subarray(0, 50_000))).status).toBe(204)
    const last = await patchUpload(deferred, 50_000, rest.subarray(50_000), {
      'Upload-Length': String(rest.length),
    })
    expect(last.status).toBe(204)

    const final = await client.final([first, deferred], pngMetadata('deferred.png'))

    expect(final.status).toBe(201)
    await expectStoredOnce(server.knex, idOf(final.headers.get('location') ?? ''), bytes)
  })

  it('answers HEAD on a partial with Upload-Concat: partial and on the final with its partial URLs and full offset', async () => {
    const bytes = pngBytes(200_000)
    const partials = [
      await client.partial(bytes.subarray(0, 120_000)),
      await client.partial(bytes.subarray(120_000)),
    ]
    const partialHead = await fetch(partials[0] ?? '', { method: 'HEAD', headers: TUS })
    expect(partialHead.headers.get('upload-concat')).toBe('partial')
    expect(partialHead.headers.get('upload-offset')).toBe('120000')

    const final = await client.final(partials, pngMetadata('head.png'))
    const finalUrl = final.headers.get('location') ?? ''
    const head = await fetch(finalUrl, { method: 'HEAD', headers: TUS })

    expect(head.status).toBe(200)
    expect(head.headers.get('upload-concat')).toBe(`final;${partials.join(' ')}`)
    expect(head.headers.get('upload-offset')).toBe(String(bytes.length))
    expect(head.headers.get('upload-length')).toBe(String(bytes.length))
  })

  it('takes a partial upload with its bytes in the creation POST (creation-with-upload)', async () => {
    const bytes = pngBytes(90_000)
    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: {
        ...TUS,
        'Upload-Concat': 'partial',
        'Upload-Length': String(bytes.length),
        'Content-Type': 'application/offset+octet-stream',
      },
      body: bytes,
    })
    expect(created.status).toBe(201)
    expect(created.headers.get('upload-offset')).toBe(String(bytes.length))
    const partialId = idOf(created.headers.get('location') ?? '')
    expect((await recordsFor(server.knex, partialId)).file.status).toBe('UPLOADING')

    const final = await client.final(
      [created.headers.get('location') ?? ''],
      pngMetadata('cwu.png'),
    )

    expect(final.status).toBe(201)
    await expectStoredOnce(server.knex, idOf(final.headers.get('location') ?? ''), bytes)
  })

  it('checks Upload-Checksum on a partial PATCH: 460 on a mismatch, and the offset stays', async () => {
    const url = await client.partial(pngBytes(1000), 0)
    const wrong = Buffer.from(sha256(Buffer.from('other bytes')), 'hex').toString('base64')
    const patch = await patchUpload(url, 0, pngBytes(1000), {
      'Upload-Checksum': `sha256 ${wrong}`,
    })
    expect(patch.status).toBe(460)
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('0')
  })

  it('answers 410 to a final naming a partial that was terminated (DELETE)', async () => {
    const url = await client.partial(pngBytes(1000))
    expect((await fetch(url, { method: 'DELETE', headers: TUS })).status).toBe(204)
    const final = await client.final([url])
    expect(final.status).toBe(410)
    expect((await errorOf(final)).code).toBe('partial_upload_gone')
  })

  it("puts the final, not its partials, into the batch named in the final's metadata", async () => {
    const batch = (await (
      await fetch(`${server.url}/api/batches`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ expectedFiles: 1 }),
      })
    ).json()) as { id: string }
    const bytes = pngBytes(400_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      parallelUploads: 3,
      metadata: { ...pngMetadata('batched.png'), batchId: batch.id },
    })
    await expectStoredOnce(server.knex, id, bytes)
    const view = (await (await fetch(`${server.url}/api/batches/${batch.id}`)).json()) as {
      allStored: boolean
      completedAt: string | null
      files: { id: string }[]
    }
    expect(view.files.map((file) => file.id)).toEqual([id])
    expect(view.allStored).toBe(true)
    expect(view.completedAt).not.toBeNull()
  })

  it('shows only the final in /api/files (a partial answers 404), and leaves only its bytes in the store', async () => {
    const bytes = pngBytes(150_000)
    const partials = [
      await client.partial(bytes.subarray(0, 50_000)),
      await client.partial(bytes.subarray(50_000)),
    ]
    const listed = async () =>
      (
        (await (await fetch(`${server.url}/api/files?limit=100`)).json()) as {
          files: { id: string }[]
        }
      ).files.map((file) => file.id)
    expect(await listed()).not.toContain(idOf(partials[0] ?? ''))
    for (const path of ['', '/content']) {
      const partialFile = await fetch(`${server.url}/api/files/${idOf(partials[0] ?? '')}${path}`)
      expect(partialFile.status).toBe(404)
      expect((await errorOf(partialFile)).code).toBe('file_not_found')
    }

    const final = await client.final(partials, pngMetadata('listed.png'))
    const id = idOf(final.headers.get('location') ?? '')

    expect(await listed()).toContain(id)
    expect(await listed()).not.toEqual(expect.arrayContaining(partials.map(idOf)))
    const inStore = await server.storedFiles()
    expect(inStore.filter((name) => partials.some((url) => name.includes(idOf(url))))).toEqual([])
    expect(inStore.some((name) => name.includes(id))).toBe(true)
    const rows = await server.knex('upload_files').whereIn('id', partials.map(idOf))
    expect(rows.map((row: { status: string }) => row.status)).toEqual(['DELETED', 'DELETED'])
  })

  it('answers 403 to a PATCH on a final upload', async () => {
    const bytes = pngBytes(100_000)
    const final = await client.final([await client.partial(bytes)], pngMetadata('patch.png'))
    const patch = await patchUpload(
      final.headers.get('location') ?? '',
      bytes.length,
      new Uint8Array(1),
    )
    expect(patch.status).toBe(403)
    expect((await errorOf(patch)).code).toBe('final_upload_not_patchable')
  })

  it('fails a final whose joined bytes are a refused type: 415, no event, nothing left in the store', async () => {
    const bytes = elfBytes(300_000)
    const partials = [
      await client.partial(bytes.subarray(0, 100_000)),
      await client.partial(bytes.subarray(100_000)),
    ]

    const final = await client.final(partials, { filename: 'tool.bin' })

    expect(final.status).toBe(415)
    expect((await errorOf(final)).code).toBe('unsupported_file_type')
    const [failed] = await server
      .knex('upload_files')
      .where({ concat: 'final' })
      .orderBy('id', 'desc')
      .limit(1)
    expect(failed).toMatchObject({ status: 'FAILED', error_code: 'unsupported_file_type' })
    expect((await recordsFor(server.knex, failed.id)).events).toEqual([])
    const ids = [failed.id, ...partials.map(idOf)]
    expect(
      (await server.storedFiles()).filter((name) => ids.some((id) => name.includes(id))),
    ).toEqual([])
  })

  it('lets exactly one of two finals racing for the same partial have it', async () => {
    // Each final starts with a PNG signature, whichever wins.
    const [a, shared, b] = [
      await client.partial(pngBytes(50_000)),
      await client.partial(pngBytes(100_000)),
      await client.partial(pngBytes(50_000)),
    ]
    const answers = await Promise.all([
      client.final([a ?? '', shared ?? ''], pngMetadata('one.png')),
      client.final([shared ?? '', b ?? ''], pngMetadata('two.png')),
    ])
    const statuses = answers.map((answer) => answer.status).sort()
    expect(statuses[0]).toBe(201)
    expect([409, 410]).toContain(statuses[1])
    const loser = answers.find((answer) => answer.status !== 201) as Response
    expect(['partial_upload_claimed', 'partial_upload_gone']).toContain((await errorOf(loser)).code)
  })

  it('answers a repeated final with the same upload, and a joined partial as complete: one file, one event', async () => {
    const bytes = pngBytes(200_000)
    const partials = [
      await client.partial(bytes.subarray(0, 80_000)),
      await client.partial(bytes.subarray(80_000)),
    ]
    const answers = await Promise.all([
      client.final(partials, pngMetadata('again.png')),
      client.final(partials, pngMetadata('again.png')),
    ])
    const first = answers.find((answer) => answer.status === 201) as Response
    const url = first.headers.get('location') ?? ''

    // What a tus-js-client that lost the 201 does: HEAD each partial, then POST the final again.
    const head = await fetch(partials[1] ?? '', { method: 'HEAD', headers: TUS })
    expect(head.status).toBe(200)
    expect(head.headers.get('upload-offset')).toBe(String(bytes.length - 80_000))
    const again = await client.final(partials, pngMetadata('again.png'))

    expect(again.status).toBe(201)
    expect(again.headers.get('location')).toBe(url)
    for (const answer of answers) {
      if (answer.status === 201) expect(answer.headers.get('location')).toBe(url)
      else expect((await errorOf(answer)).code).toBe('partial_upload_claimed')
    }
    await expectStoredOnce(server.knex, idOf(url), bytes)
    expect(
      await server
        .knex('upload_files')
        .where({ concat: 'final' })
        .whereRaw('partial_ids = ?', [partials.map(idOf)]),
    ).toHaveLength(1)
  })

  it('expires and purges a partial upload no final ever claims, like any unfinished upload', async () => {
    const url = await client.partial(pngBytes(100_000), 40_000)
    const id = idOf(url)
    expect((await server.storedFiles()).some((name) => name.includes(id))).toBe(true)
    await server
      .knex('upload_files')
      .where({ id })
      .update({ expires_at: new Date(Date.now() - 1000) })

    const report = await server.container.handlers['uploads.purge']({})

    expect(report).toMatchObject({ expired: 1 })
    expect((await recordsFor(server.knex, id)).file.status).toBe('EXPIRED')
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
  })

  it('serves GET /files/<id> like /api/files/<id>/content: whole, a Range, 409 while unfinished, 404 for a partial', async () => {
    const bytes = pngBytes(70_000)
    const { id, url } = await uploadWithTus(server.tusEndpoint, bytes, {
      parallelUploads: 2,
      metadata: pngMetadata('served.png'),
    })

    const whole = await fetch(url)
    expect(whole.status).toBe(200)
    expect(Buffer.from(await whole.arrayBuffer())).toEqual(bytes)
    const api = await fetch(`${server.url}/api/files/${id}/content`)
    await api.arrayBuffer()
    for (const name of [
      'content-type',
      'content-disposition',
      'etag',
      'x-content-type-options',
      'content-length',
    ]) {
      expect(whole.headers.get(name)).toBe(api.headers.get(name))
    }
    // Bare @tus/server crashed after serving downloads on its upload URL (design.md); ours repeat.
    for (let round = 0; round < 10; round++) {
      expect(sha256(Buffer.from(await (await fetch(url)).arrayBuffer()))).toBe(sha256(bytes))
    }
    const range = await fetch(url, { headers: { Range: 'bytes=100-199' } })
    expect(range.status).toBe(206)
    expect(range.headers.get('content-range')).toBe(`bytes 100-199/${bytes.length}`)
    expect(Buffer.from(await range.arrayBuffer())).toEqual(bytes.subarray(100, 200))

    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': String(bytes.length) },
    })
    const refused = await fetch(created.headers.get('location') ?? '')
    expect(refused.status).toBe(409)
    expect((await errorOf(refused)).code).toBe('file_not_stored')
    const partial = await fetch(await client.partial(bytes, 1000))
    expect(partial.status).toBe(404)
    expect((await errorOf(partial)).code).toBe('file_not_found')
  })

  it("does what tus-js-client's own end-to-end specs do: upload, GET upload.url, compare the bytes, DELETE", async () => {
    const bytes = pngBytes(123_456)
    const upload = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: pngMetadata('spec.png'),
    })

    const downloaded = await fetch(upload.url)
    expect(Buffer.from(await downloaded.arrayBuffer())).toEqual(bytes)
    await tus.Upload.terminate(upload.url, {})

    const gone = await fetch(upload.url)
    expect(gone.status).toBe(410)
    expect((await errorOf(gone)).code).toBe('file_gone')
    expect((await server.storedFiles()).filter((name) => name.includes(upload.id))).toEqual([])
  })
})

describe.each(TEST_STORES)('final uploads refused on the $name store', (store: TestStore) => {
  let server: TestServer
  const client = concatClient(() => server)
  const MAX = 256 * 1024

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_MAX_SIZE: String(MAX) }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  const refusals: ReadonlyArray<{
    what: string
    status: number
    code: string
    urls: () => Promise<string[]>
  }> = [
    {
      what: 'a partial that does not exist',
      status: 404,
      code: 'partial_upload_not_found',
      urls: async () => [
        await client.partial(pngBytes(1000)),
        `${server.tusEndpoint}/0193a0b0-0000-7000-8000-000000000000`,
      ],
    },
    {
      what: 'a partial that is not complete',
      status: 400,
      code: 'partial_upload_unfinished',
      urls: async () => [await client.partial(pngBytes(1000), 500)],
    },
    {
      what: 'a normal upload named as a partial',
      status: 400,
      code: 'not_a_partial_upload',
      urls: async () => [(await uploadWithTus(server.tusEndpoint, pngBytes(1000))).url],
    },
    {
      what: 'a final upload named as a partial',
      status: 400,
      code: 'not_a_partial_upload',
      urls: async () => {
        const final = await client.final([await client.partial(pngBytes(1000))])
        return [final.headers.get('location') ?? '']
      },
    },
    {
      what: 'a partial named twice',
      status: 400,
      code: 'duplicate_partial_upload',
      urls: async () => {
        const url = await client.partial(pngBytes(1000))
        return [url, url]
      },
    },
    {
      what: 'partials whose sum is above the largest file',
      status: 413,
      code: 'file_too_large',
      urls: async () => [await client.partial(pngBytes(MAX)), await client.partial(pngBytes(1000))],
    },
    {
      what: 'a relative URL to a missing partial',
      status: 404,
      code: 'partial_upload_not_found',
      urls: async () => ['/files/0193a0b0-0000-7000-8000-000000000001'],
    },
  ]

  it.each(refusals)('answers $status $code to $what, and creates no final', async (refusal) => {
    const urls = await refusal.urls()
    const finalsBefore = await server
      .knex('upload_files')
      .where({ concat: 'final' })
      .count({ n: '*' })

    const response = await client.final(urls)

    expect(response.status).toBe(refusal.status)
    expect((await errorOf(response)).code).toBe(refusal.code)
    expect(await server.knex('upload_files').where({ concat: 'final' }).count({ n: '*' })).toEqual(
      finalsBefore,
    )
  })

  it('accepts partial URLs that are relative', async () => {
    const bytes = pngBytes(2000)
    const url = await client.partial(bytes)
    const response = await client.final([new URL(url).pathname], pngMetadata('relative.png'))
    expect(response.status).toBe(201)
    await expectStoredOnce(server.knex, idOf(response.headers.get('location') ?? ''), bytes)
  })
})

describe.each(TEST_STORES)(
  'parallel uploads of two users in jwt mode on the $name store',
  (store) => {
    const SECRET = 'a-shared-hs256-secret-for-concatenation-tests'
    let server: TestServer
    const tokens: Record<string, string> = {}
    const as = (user: string) =>
      concatClient(
        () => server,
        () => ({ Authorization: `Bearer ${tokens[user]}` }),
      )

    beforeAll(async () => {
      server = await startTestServer(
        {
          ...jwtSettings(SECRET),
          FILE_UPLOAD_MAX_SIZE: String(MiB),
          MAX_BYTES_IN_FLIGHT_PER_OWNER: String(2 * MiB),
        },
        store,
      )
      for (const user of ['alice', 'bob', 'carol'])
        tokens[user] = await signHs256(SECRET, { sub: user })
    })

    afterAll(async () => {
      await server?.close()
    })

    it("answers another owner's partial exactly like a missing one (404), and serves their files to them only", async () => {
      const bytes = pngBytes(5000)
      const alices = await as('alice').partial(bytes)

      const byBob = await as('bob').final([alices])
      const missing = await as('bob').final([
        `${server.tusEndpoint}/0193a0b0-0000-7000-8000-000000000002`,
      ])

      expect([byBob.status, missing.status]).toEqual([404, 404])
      expect((await errorOf(byBob)).code).toBe((await errorOf(missing)).code)
      const final = await as('alice').final([alices], pngMetadata('alice.png'))
      expect(final.status).toBe(201)
      const url = final.headers.get('location') ?? ''
      expect(
        (await fetch(url, { headers: { Authorization: `Bearer ${tokens.bob}` } })).status,
      ).toBe(404)
      const own = await fetch(url, { headers: { Authorization: `Bearer ${tokens.alice}` } })
      expect(Buffer.from(await own.arrayBuffer())).toEqual(bytes)
    })

    it("counts a partial upload's bytes towards its owner's bytes in flight", async () => {
      const carol = as('carol')
      await carol.partial(pngBytes(900 * 1024), 0)
      await carol.partial(pngBytes(900 * 1024), 0)
      const third = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: {
          ...TUS,
          Authorization: `Bearer ${tokens.carol}`,
          'Upload-Concat': 'partial',
          'Upload-Length': String(300 * 1024),
        },
      })
      expect(third.status).toBe(429)
      expect((await errorOf(third)).code).toBe('too_many_bytes_in_flight')
    })
  },
)
