import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elfBytes, MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { openConnection, rawRequest } from '../helpers/raw-http.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { jsonOf, openRequest, parseReplies, pathOf, rufhRequest } from '../helpers/rufh-client.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'

const MAX_SIZE = 16 * MiB
const EXPIRATION_SECONDS = 3600

describe.each(TEST_STORES)('RUFH clients written byte for byte, on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer(
      { FILE_UPLOAD_MAX_SIZE: String(MAX_SIZE), UPLOAD_EXPIRATION: `${EXPIRATION_SECONDS}s` },
      store,
    )
  })

  afterAll(async () => {
    await server?.close()
  })

  const v8 = (headers: [string, string][] = []): [string, string][] => [
    ['Upload-Draft-Interop-Version', '8'],
    ...headers,
  ]

  describe('interop 8 (draft 12)', () => {
    it('announces its limits on OPTIONS', async () => {
      const { final } = await rufhRequest(server.url, 'OPTIONS', '/files', v8())

      expect(final?.status).toBe(204)
      expect(final?.headers.get('upload-limit')).toBe(
        `max-size=${MAX_SIZE}, min-size=0, max-age=${EXPIRATION_SECONDS}`,
      )
    })

    it('creates with ?0, appends, completes with the stored file and replays that answer', async () => {
      const bytes = pngBytes(3 * MiB + 17)
      const created = await rufhRequest(
        server.url,
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?0'],
          ['Content-Type', 'image/png'],
          [
            'Content-Disposition',
            `attachment; filename="x.png"; filename*=UTF-8''%C3%A9t%C3%A9.png`,
          ],
        ]),
      )

      const [resumption] = created.interims
      expect(resumption?.status).toBe(104)
      expect(resumption?.headers.get('upload-draft-interop-version')).toBe('8')
      expect(resumption?.headers.get('upload-limit')).toMatch(
        /^max-size=16777216, min-size=0, max-age=\d+$/,
      )
      const location = resumption?.headers.get('location')
      expect(created.final?.status).toBe(201)
      expect(created.final?.headers.get('location')).toBe(location)
      expect(created.final?.headers.get('upload-complete')).toBe('?0')
      const path = pathOf(location)
      const id = path.slice('/files/'.length)

      const first = await rufhRequest(
        server.url,
        'PATCH',
        path,
        v8([
          ['Upload-Offset', '0'],
          ['Upload-Complete', '?0'],
          ['Content-Type', 'application/partial-upload'],
        ]),
        bytes.subarray(0, MiB),
      )
      expect(first.final?.status).toBe(204)
      expect(first.final?.headers.get('upload-complete')).toBe('?0')

      const wrong = await rufhRequest(
        server.url,
        'PATCH',
        path,
        v8([
          ['Upload-Offset', '5'],
          ['Upload-Complete', '?0'],
          ['Content-Type', 'application/partial-upload'],
        ]),
        bytes.subarray(5, 10),
      )
      expect(wrong.final?.status).toBe(409)
      expect(wrong.final?.headers.get('content-type')).toBe('application/problem+json')
      expect(wrong.final?.headers.get('upload-offset')).toBe(String(MiB))
      expect(wrong.final?.headers.get('upload-complete')).toBe('?0')
      expect(jsonOf(wrong.final)).toMatchObject({
        type: 'https://iana.org/assignments/http-problem-types#mismatching-upload-offset',
        'expected-offset': MiB,
        'provided-offset': 5,
      })

      const head = await rufhRequest(server.url, 'HEAD', path, v8())
      expect(head.final?.status).toBe(204)
      expect(head.final?.headers.get('upload-offset')).toBe(String(MiB))
      expect(head.final?.headers.get('upload-complete')).toBe('?0')
      expect(head.final?.headers.get('cache-control')).toBe('no-store')
      expect(head.final?.headers.get('upload-limit')).toMatch(
        /^max-size=16777216, min-size=0, max-age=\d+$/,
      )

      const completing = v8([
        ['Upload-Offset', String(MiB)],
        ['Upload-Complete', '?1'],
        ['Content-Type', 'application/partial-upload'],
      ])
      const last = await rufhRequest(server.url, 'PATCH', path, completing, bytes.subarray(MiB))
      expect(last.final?.status).toBe(200)
      expect(last.final?.headers.get('upload-complete')).toBe('?1')
      const stored = jsonOf(last.final)
      expect(stored).toMatchObject({
        id,
        status: 'STORED',
        filename: 'été.png',
        sha256: sha256(bytes),
        size: bytes.length,
      })
      const api = await fetch(`${server.url}/api/files/${id}`)
      expect(await api.json()).toEqual(stored)
      await expectStoredOnce(server.knex, id, bytes)

      const replayed = await rufhRequest(server.url, 'PATCH', path, completing, bytes.subarray(MiB))
      expect(replayed.final?.status).toBe(200)
      expect(replayed.final?.headers.get('upload-complete')).toBe('?1')
      expect(jsonOf(replayed.final)).toEqual(stored)
      await expectStoredOnce(server.knex, id, bytes)
    })

    it('sends no 104 to an HTTP/1.0 client (RFC 9110 §15.2), only the final answer', async () => {
      const bytes = pngBytes(20_000)
      const connection = await openConnection(server.url)
      const head = rawRequest(
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?1'],
          ['Content-Length', String(bytes.length)],
        ]),
        '',
        { version: '1.0' },
      )
      connection.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), bytes]))

      const received = await connection.closed
      expect(received).not.toContain(' 104 ')
      const { interims, final } = parseReplies(received)
      expect(interims).toEqual([])
      expect(final?.status).toBe(200)
      await expectStoredOnce(server.knex, (jsonOf(final) as { id: string }).id, bytes)
    })

    it('completes a chunked creation whose length nobody stated, where the body ended', async () => {
      const bytes = pngBytes(6 * MiB + 321)
      const request = await openRequest(
        server.url,
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?1'],
          ['Content-Type', 'image/png'],
          ['Transfer-Encoding', 'chunked'],
        ]),
      )
      for (let at = 0; at < bytes.length; at += MiB) {
        const chunk = bytes.subarray(at, at + MiB)
        await request.send(
          Buffer.concat([
            Buffer.from(`${chunk.length.toString(16)}\r\n`),
            chunk,
            Buffer.from('\r\n'),
          ]),
        )
      }
      await request.send(Buffer.from('0\r\n\r\n'))
      const { final } = await request.finished()

      expect(final?.status).toBe(200)
      const { id, size } = jsonOf(final) as { id: string; size: number }
      expect(size).toBe(bytes.length)
      await expectStoredOnce(server.knex, id, bytes)
      const download = await fetch(`${server.url}/api/files/${id}/content`)
      expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(sha256(bytes))
    })

    it('puts the upload in the batch named by the batchId query parameter', async () => {
      const batch = (await (
        await fetch(`${server.url}/api/batches`, { method: 'POST' })
      ).json()) as { id: string }
      const bytes = pngBytes(5_000)

      const created = await rufhRequest(
        server.url,
        'POST',
        `/files?batchId=${batch.id}`,
        v8([['Upload-Complete', '?1']]),
        bytes,
      )

      expect(created.final?.status).toBe(200)
      expect(jsonOf(created.final)).toMatchObject({ batchId: batch.id, sha256: sha256(bytes) })
      const unknown = await rufhRequest(
        server.url,
        'POST',
        '/files?batchId=not-a-batch',
        v8([['Upload-Complete', '?1']]),
        bytes,
      )
      expect(unknown.final?.status).toBe(400)
      expect(jsonOf(unknown.final)).toMatchObject({ error: { code: 'invalid_batch_id' } })
    })

    it('answers a completing creation the file refused with its JSON error and Upload-Complete: ?1', async () => {
      const refused = await rufhRequest(
        server.url,
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?1'],
          ['Content-Type', 'image/png'],
        ]),
        elfBytes(4_000),
      )

      expect(refused.final?.status).toBe(415)
      expect(refused.final?.headers.get('upload-complete')).toBe('?1')
      const { error } = jsonOf(refused.final) as { error: { code: string } }
      expect(error.code).toBe('unsupported_file_type')
      const id = pathOf(refused.interims[0]?.headers.get('location')).slice('/files/'.length)
      expect((await server.knex('upload_files').where({ id }).first()).status).toBe('FAILED')
    })

    it('answers 415 to the append that brings a refused type in its first 64 KiB, before the rest is sent, and removes its bytes', async () => {
      const created = await rufhRequest(
        server.url,
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?0'],
          ['Content-Type', 'image/png'],
        ]),
      )
      const path = pathOf(created.final?.headers.get('location'))
      const id = path.slice('/files/'.length)
      const append = (from: number, to: number) =>
        rufhRequest(
          server.url,
          'PATCH',
          path,
          v8([
            ['Upload-Offset', String(from)],
            ['Upload-Complete', '?0'],
            ['Content-Type', 'application/partial-upload'],
          ]),
          elfBytes(MiB).subarray(from, to),
        )

      expect((await append(0, 30_000)).final?.status).toBe(204)
      const refused = await append(30_000, 100_000)

      expect(refused.final?.status).toBe(415)
      expect(refused.final?.headers.get('upload-complete')).toBe('?1')
      expect((jsonOf(refused.final) as { error: { code: string } }).error.code).toBe(
        'unsupported_file_type',
      )
      expect(await server.knex('upload_files').where({ id }).first()).toMatchObject({
        status: 'FAILED',
        error_code: 'unsupported_file_type',
      })
      expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
    })

    it('sends 104s with Upload-Offset while a long body arrives', async () => {
      const bytes = pngBytes(12 * MiB)
      const request = await openRequest(
        server.url,
        'POST',
        '/files',
        v8([
          ['Upload-Complete', '?1'],
          ['Content-Length', String(bytes.length)],
        ]),
      )
      await request.send(bytes)
      const { interims, final } = await request.finished()

      expect(final?.status).toBe(200)
      const offsets = interims
        .filter((interim) => interim.headers.has('upload-offset'))
        .map((interim) => Number(interim.headers.get('upload-offset')))
      expect(offsets.length).toBeGreaterThanOrEqual(1)
      expect(offsets).toEqual([...offsets].sort((a, b) => a - b))
      expect(Math.max(...offsets)).toBeLessThanOrEqual(bytes.length)
      expect(interims.every((interim) => interim.status === 104)).toBe(true)
      await expectStoredOnce(server.knex, (jsonOf(final) as { id: string }).id, bytes)
    })
  })

  describe.each([
    { version: '3', complete: 'Upload-Incomplete', no: '?1', yes: '?0', limit: undefined },
    { version: '4', complete: 'Upload-Complete', no: '?0', yes: '?1', limit: undefined },
    { version: '5', complete: 'Upload-Complete', no: '?0', yes: '?1', limit: undefined },
    { version: '6', complete: 'Upload-Complete', no: '?0', yes: '?1', limit: 'expires' },
    { version: '7', complete: 'Upload-Complete', no: '?0', yes: '?1', limit: 'max-age' },
  ])('interop $version', ({ version, complete, no, yes, limit }) => {
    const headers = (more: [string, string][] = []): [string, string][] => [
      ['Upload-Draft-Interop-Version', version],
      ...more,
    ]
    const appendType: [string, string][] =
      Number(version) >= 6 ? [['Content-Type', 'application/partial-upload']] : []

    it('answers creation, offset retrieval and append in its own terms', async () => {
      const bytes = pngBytes(300 * 1024)
      const created = await rufhRequest(
        server.url,
        'POST',
        '/files',
        headers([[complete, no]]),
        bytes.subarray(0, 1000),
      )
      expect(created.interims[0]?.status).toBe(104)
      expect(created.interims[0]?.headers.get('upload-draft-interop-version')).toBe(version)
      expect(created.final?.status).toBe(201)
      expect(created.final?.headers.get(complete.toLowerCase())).toBe(no)
      const path = pathOf(created.final?.headers.get('location'))

      const head = await rufhRequest(server.url, 'HEAD', path, headers())
      expect(head.final?.status).toBe(204)
      expect(head.final?.headers.get('upload-offset')).toBe('1000')
      expect(head.final?.headers.get(complete.toLowerCase())).toBe(no)
      const limits = head.final?.headers.get('upload-limit')
      if (limit)
        expect(limits).toMatch(new RegExp(`^max-size=${MAX_SIZE}, min-size=0, ${limit}=\\d+$`))
      else expect(limits).toBeUndefined()

      const last = await rufhRequest(
        server.url,
        'PATCH',
        path,
        headers([['Upload-Offset', '1000'], [complete, yes], ...appendType]),
        bytes.subarray(1000),
      )
      expect(last.final?.status).toBe(200)
      expect(last.final?.headers.get(complete.toLowerCase())).toBe(yes)
      const { id } = jsonOf(last.final) as { id: string }
      await expectStoredOnce(server.knex, id, bytes)
    })
  })

  describe('interop 3 (iOS 17)', () => {
    it('keeps a body cut mid-way and finishes from the offset HEAD reports', async () => {
      const bytes = pngBytes(4 * MiB + 3)
      const sentBeforeCut = 1536 * 1024
      const request = await openRequest(server.url, 'POST', '/files', [
        ['Upload-Draft-Interop-Version', '3'],
        ['Upload-Incomplete', '?0'],
        ['Content-Type', 'image/png'],
        ['Content-Length', String(bytes.length)],
      ])
      const { interims } = await request.until((replies) => replies.interims.length > 0)
      const location = interims[0]?.headers.get('location')
      expect(interims[0]?.status).toBe(104)
      expect(interims[0]?.headers.get('upload-draft-interop-version')).toBe('3')
      await request.send(bytes.subarray(0, sentBeforeCut))
      // Half-closed: every byte sent arrives before the end, which cuts the body short.
      request.connection.socket.end()
      await request.finished()

      const path = pathOf(location)
      const head = await rufhRequest(server.url, 'HEAD', path, [
        ['Upload-Draft-Interop-Version', '3'],
      ])
      expect(head.final?.status).toBe(204)
      expect(head.final?.headers.get('upload-incomplete')).toBe('?1')
      const offset = Number(head.final?.headers.get('upload-offset'))
      // What the server had read when the end arrived; bytes still in its buffers are dropped.
      expect(offset).toBeGreaterThan(0)
      expect(offset).toBeLessThanOrEqual(sentBeforeCut)

      const rest = await rufhRequest(
        server.url,
        'PATCH',
        path,
        [
          ['Upload-Draft-Interop-Version', '3'],
          ['Upload-Offset', String(offset)],
          ['Upload-Incomplete', '?0'],
        ],
        bytes.subarray(offset),
      )
      expect(rest.final?.status).toBe(200)
      expect(rest.final?.headers.get('upload-incomplete')).toBe('?0')
      const id = path.slice('/files/'.length)
      expect(jsonOf(rest.final)).toMatchObject({ id, sha256: sha256(bytes) })
      await expectStoredOnce(server.knex, id, bytes)
    })
  })
})
