import { rm } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'

const [fileStore, s3Store] = TEST_STORES as [TestStore, TestStore]

describe('/readyz when the storage is unreachable', () => {
  let server: TestServer | undefined

  afterEach(async () => {
    await server?.close()
  })

  async function expectStorageNotReady(reason: RegExp) {
    const response = await fetch(`${server?.url}/readyz`)
    expect(response.status).toBe(503)
    const body = (await response.json()) as {
      checks: { name: string; status: string; error?: string }[]
      error: { code: string; message: string }
    }
    expect(body.error.code).toBe('not_ready')
    expect(body.error.message).toMatch(/storage/)
    expect(body.checks).toEqual([
      { name: 'database', status: 'ok' },
      { name: 'storage', status: 'failed', error: expect.stringMatching(reason) },
    ])
    return body
  }

  it('names the storage check when the file store directory is gone', async () => {
    const directory = '/tmp/tusbox-test-readiness-gone'
    server = await startTestServer({ FILE_STORE_DIR: directory }, fileStore)
    await rm(directory, { recursive: true, force: true })
    const body = await expectStorageNotReady(/ENOENT/)
    expect(JSON.stringify(body)).not.toContain(directory)
  })

  it('names the storage check and the bucket when the bucket does not exist', async () => {
    server = await startTestServer({ AWS_STORAGE_BUCKET_NAME: 'tusbox-no-such-bucket' }, s3Store)
    await expectStorageNotReady(/bucket "tusbox-no-such-bucket" is not reachable/)
  })
})
