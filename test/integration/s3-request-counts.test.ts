import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest'
import { pngBytes, sha256 } from '../helpers/fixtures.ts'
import { recordsFor } from '../helpers/records.ts'
import { TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, patchUpload } from '../helpers/tus-requests.ts'

const MiB = 1024 * 1024
const PART_SIZE = 8 * MiB
const s3Store = TEST_STORES.find((store) => store.name === 's3') as TestStore

/**
 * The S3 requests one upload makes, creation to finish, counted by the benchmark's counting
 * proxy between tusbox and the S3 test server: a count, not a timing, so it is the same on every
 * run. The uploads are those the benchmark counts (docs/benchmarks.md).
 */
describe('S3 requests per upload', () => {
  let proxy: CountingProxy
  let server: TestServer

  beforeAll(async () => {
    proxy = await startCountingProxy(inject('s3').endpoint)
    server = await startTestServer(
      { AWS_S3_ENDPOINT_URL: proxy.url, S3_PART_SIZE: String(PART_SIZE) },
      s3Store,
    )
  })

  afterAll(async () => {
    await server?.close()
    proxy?.stop()
  })

  it('stores a 100 KiB upload sent in one PATCH with 4 requests and no multipart upload', async () => {
    const bytes = pngBytes(100 * 1024)

    const counts = await proxy.countDuring(() => uploadInPatches(server, bytes, bytes.length))

    expect(counts).toEqual({ PutObject: 2, GetObject: 1, HeadObject: 1 })
  })

  it('stores a 24 MiB upload sent in three 8 MiB PATCHes with one part per PATCH', async () => {
    const bytes = pngBytes(3 * PART_SIZE)

    const counts = await proxy.countDuring(() => uploadInPatches(server, bytes, PART_SIZE))

    expect(counts).toEqual({
      PutObject: 2,
      GetObject: 3,
      HeadObject: 3,
      ListParts: 2,
      CreateMultipartUpload: 1,
      UploadPart: 3,
      CompleteMultipartUpload: 1,
    })
  })
})

/** POST, then PATCHes of `chunk` bytes; checks the stored file's sha256 once it is done. */
async function uploadInPatches(server: TestServer, bytes: Buffer, chunk: number): Promise<void> {
  const created = await createUpload(server.tusEndpoint, bytes.length, { filename: 'f.png' })
  expect(created.status).toBe(201)
  const url = created.headers.get('location') ?? ''
  for (let offset = 0; offset < bytes.length; offset += chunk) {
    const answer = await patchUpload(url, offset, bytes.subarray(offset, offset + chunk))
    expect(answer.status).toBe(204)
  }
  const id = url.slice(url.lastIndexOf('/') + 1)
  const { file } = await recordsFor(server.knex, id)
  expect(file.status).toBe('STORED')
  expect(file.sha256).toBe(sha256(bytes))
}

interface CountingProxy {
  readonly url: string
  countDuring(work: () => Promise<void>): Promise<Record<string, number>>
  stop(): void
}

async function startCountingProxy(endpoint: string): Promise<CountingProxy> {
  const script = new URL('../../scripts/bench/s3-counting-proxy.ts', import.meta.url).pathname
  const child: ChildProcess = spawn(process.execPath, [script, endpoint], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const [first] = (await once(lines, 'line')) as [string]
  const { url } = JSON.parse(first) as { url: string }
  const counts = async (method: 'GET' | 'DELETE') => {
    const answer = await fetch(`${url}/__bench/counts`, { method })
    return (await answer.json()) as Record<string, number>
  }
  return {
    url,
    async countDuring(work) {
      await counts('DELETE')
      await work()
      return counts('GET')
    },
    // The proxy exits when its stdin closes.
    stop: () => child.stdin?.end(),
  }
}
