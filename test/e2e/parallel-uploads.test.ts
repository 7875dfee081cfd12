import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'

const pngMetadata = (filename: string) => ({ filename, filetype: 'image/png' })

describe.each(TEST_STORES)('parallel uploads (tus concatenation) on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ FILE_UPLOAD_MAX_SIZE: String(64 * MiB) }, store)
  })

  afterAll(async () => {
    await server?.close()
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
      const content = await fetch(`${server.url}/files/${id}`)
      expect(content.status).toBe(200)
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(sha256(bytes))
    },
  )
})
