import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, errorOf, patchUpload, TUS } from '../helpers/tus-requests.ts'

const HOUR = 3_600_000

describe.each(TEST_STORES)('expiration of idle unfinished uploads on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ UPLOAD_EXPIRATION: '1h' }, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  async function newUpload(length: number) {
    const response = await createUpload(server.tusEndpoint, length, { filename: 'e.png' })
    const url = response.headers.get('location') ?? ''
    return { response, url, id: url.split('/').at(-1) ?? '' }
  }

  const expiresAt = async (id: string) =>
    ((await server.knex('upload_files').where({ id }).first()) as { expires_at: Date }).expires_at

  /** Sets the expiry `expiresInMs` from now, instead of waiting for time to pass. */
  const backdate = (id: string, expiresInMs: number) =>
    server
      .knex('upload_files')
      .where({ id })
      .update({ expires_at: new Date(Date.now() + expiresInMs) })

  it('announces Upload-Expires one idle period after creation', async () => {
    const before = Date.now()
    const { response, id } = await newUpload(100)
    const header = Date.parse(response.headers.get('upload-expires') ?? '')
    expect(header).toBeGreaterThanOrEqual(Math.floor((before + HOUR) / 1000) * 1000)
    expect(header).toBeLessThanOrEqual(Date.now() + HOUR)
    expect((await expiresAt(id)).getTime()).toBeGreaterThanOrEqual(before + HOUR)
  })

  it('pushes the expiry forward when bytes arrive after a long pause', async () => {
    const { url, id } = await newUpload(100)
    await backdate(id, 5 * 60_000)

    const patch = await patchUpload(url, 0, pngBytes(100).subarray(0, 50))

    expect(patch.status).toBe(204)
    expect((await expiresAt(id)).getTime()).toBeGreaterThan(Date.now() + HOUR - 60_000)
    expect(Date.parse(patch.headers.get('upload-expires') ?? '')).toBeGreaterThan(
      Date.now() + HOUR - 60_000,
    )
  })

  it('does not write to the database for every chunk of a busy upload', async () => {
    const { url, id } = await newUpload(100)
    const bytes = pngBytes(100)
    const first = await expiresAt(id)
    await patchUpload(url, 0, bytes.subarray(0, 30))
    await patchUpload(url, 30, bytes.subarray(30, 60))
    expect(await expiresAt(id)).toEqual(first)
  })

  it('answers 410 upload_expired to PATCH and HEAD once an upload sat idle too long', async () => {
    const { url, id } = await newUpload(100)
    await backdate(id, -1_000)

    const patch = await patchUpload(url, 0, pngBytes(100))
    expect(patch.status).toBe(410)
    expect((await errorOf(patch)).code).toBe('upload_expired')
    const head = await fetch(url, { method: 'HEAD', headers: TUS })
    expect(head.status).toBe(410)
  })
})
