import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { patchUpload, TUS } from '../helpers/tus-requests.ts'

/**
 * The concatenation cases of the public tus compliance suite (sagikazarmark/tus-compliance-tests,
 * tests/extensions/concatenation: ext-concat-001 to 012, scn-concat-001 and 002), ported request
 * for request with the same bytes, so that what it expects is checked in `npm test`. tusbox does
 * not offer concatenation-unfinished, so that folder's cases do not apply.
 */
describe.each(TEST_STORES)(
  'the tus compliance suite’s concatenation cases on the $name store',
  (store) => {
    let server: TestServer

    beforeAll(async () => {
      server = await startTestServer({}, store)
    })

    afterAll(async () => {
      await server?.close()
    })

    async function createPartial(length: number, extra: Record<string, string> = {}) {
      const response = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Concat': 'partial', ...extra },
      })
      expect(response.status).toBe(201)
      const url = response.headers.get('location')
      expect(url).toBeTruthy()
      return url ?? ''
    }

    async function completePartial(text: string, extra: Record<string, string> = {}) {
      const url = await createPartial(text.length, extra)
      expect((await patchUpload(url, 0, Buffer.from(text))).status).toBe(204)
      return url
    }

    function createFinal(urls: readonly string[]) {
      return fetch(server.tusEndpoint, {
        method: 'POST',
        headers: { ...TUS, 'Upload-Concat': `final;${urls.join(' ')}` },
      })
    }

    async function finalUrl(urls: readonly string[]) {
      const response = await createFinal(urls)
      expect(response.status).toBe(201)
      return response.headers.get('location') ?? ''
    }

    const head = (url: string) => fetch(url, { method: 'HEAD', headers: TUS })

    it('ext-concat-001: creates a partial upload (201 with Location)', async () => {
      await createPartial(10)
    })

    it('ext-concat-002/003: creates a final upload from two partials, sent without Upload-Length, and its 201 names them in Upload-Concat', async () => {
      const partials = [await completePartial('AAAAA\n'), await completePartial('BBBBB\n')]
      const response = await createFinal(partials)
      expect(response.status).toBe(201)
      expect(response.headers.get('location')).toBeTruthy()
      expect(response.headers.get('upload-concat')).toBe(`final;${partials.join(' ')}`)
    })

    it("ext-concat-004: sets a final's Upload-Offset and Upload-Length to the partials' sum", async () => {
      const url = await finalUrl([
        await completePartial('AAAAA\n'),
        await completePartial('BBBBBB\n'),
      ])
      const answer = await head(url)
      expect(answer.status).toBe(200)
      expect(answer.headers.get('upload-offset')).toBe('13')
      expect(answer.headers.get('upload-length')).toBe('13')
    })

    it('ext-concat-005: answers 403 to a PATCH on a final upload', async () => {
      const url = await finalUrl([await completePartial('AAAAA\n')])
      expect((await patchUpload(url, 0, Buffer.from('data\n'))).status).toBe(403)
    })

    it('ext-concat-006/010/011: answers HEAD on a final with its exact Upload-Concat and equal offset and length', async () => {
      const partial = await completePartial('AAAAA\n')
      const answer = await head(await finalUrl([partial]))
      expect(answer.status).toBe(200)
      expect(answer.headers.get('upload-concat')).toBe(`final;${partial}`)
      expect(answer.headers.get('upload-offset')).toBe('6')
      expect(answer.headers.get('upload-length')).toBe('6')
    })

    it('ext-concat-007: answers 400 to a final naming a partial that is not complete', async () => {
      const url = await createPartial(100)
      expect((await patchUpload(url, 0, Buffer.from('some data!\n'))).status).toBe(204)
      expect((await createFinal([url])).status).toBe(400)
    })

    it('ext-concat-008: refuses a final naming a partial URL that does not exist (400 or 404)', async () => {
      const response = await createFinal([`${server.tusEndpoint}/non-existent-partial-12345`])
      expect([400, 404]).toContain(response.status)
    })

    it('ext-concat-009: answers HEAD on a partial with Upload-Concat: partial', async () => {
      const answer = await head(await createPartial(6))
      expect(answer.status).toBe(200)
      expect(answer.headers.get('upload-concat')).toBe('partial')
    })

    it("ext-concat-012: gives a final none of its partials' metadata", async () => {
      const partial = await completePartial('AAAAA\n', {
        'Upload-Metadata': 'filename cGFydGlhbC50eHQ=',
      })
      const answer = await head(await finalUrl([partial]))
      expect(answer.status).toBe(200)
      expect(answer.headers.has('upload-metadata')).toBe(false)
    })

    it('scn-concat-001: assembles three partials into a final of 33 bytes', async () => {
      const partials = [
        await completePartial('AAAAAAAAAA\n'),
        await completePartial('BBBBBBBBBB\n'),
        await completePartial('CCCCCCCCCC\n'),
      ]
      const answer = await head(await finalUrl(partials))
      expect(answer.status).toBe(200)
      expect(answer.headers.get('upload-offset')).toBe('33')
      expect(answer.headers.get('upload-length')).toBe('33')
      expect(answer.headers.get('upload-concat')?.startsWith('final')).toBe(true)
    })

    it('scn-concat-002: joins partials completed one after the other, each HEAD showing its offset', async () => {
      const first = await completePartial('AAAAA\n')
      expect((await head(first)).headers.get('upload-offset')).toBe('6')
      const second = await completePartial('BBBBBB\n')
      expect((await head(second)).headers.get('upload-offset')).toBe('7')
      const answer = await head(await finalUrl([first, second]))
      expect(answer.status).toBe(200)
      expect(answer.headers.get('upload-offset')).toBe('13')
      expect(answer.headers.get('upload-length')).toBe('13')
    })
  },
)
