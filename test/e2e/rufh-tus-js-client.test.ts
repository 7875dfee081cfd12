import { type ChildProcess, spawn } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type * as tus from 'tus-js-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CutResponseAwareHttpStack } from '../../src/client/http-stack.ts'
import { MiB, pngBytes } from '../helpers/fixtures.ts'
import { scrape } from '../helpers/metrics.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { flakyBudgets, seededRandom, TcpProxy } from '../helpers/tcp-proxy.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'

const UPLOAD_CHILD = fileURLToPath(new URL('../helpers/upload-child.ts', import.meta.url))

/** tus-js-client 4's RUFH modes: `ietf-draft-03` sends interop 5, `ietf-draft-05` interop 6. */
const PROTOCOLS = ['ietf-draft-03', 'ietf-draft-05'] as const

/** FLAKY_NETWORK_SEED=<seed from the test name> replays a failing run's faults. */
const SEED = Number(process.env.FLAKY_NETWORK_SEED ?? randomInt(2 ** 32))
const RETRY_DELAYS = [0, 10, 50, 100, ...Array<number>(26).fill(100)]
const CHUNK_SIZE = 64 * 1024

const cases = TEST_STORES.flatMap((store) => PROTOCOLS.map((protocol) => ({ store, protocol })))

describe.each(cases)(
  `tus-js-client with protocol $protocol on the $store.name store (seed ${SEED})`,
  ({ store, protocol }) => {
    let server: TestServer
    let directory: string
    const proxies: TcpProxy[] = []
    const children: ChildProcess[] = []

    beforeAll(async () => {
      // No PUBLIC_URL: Location then names the proxy the client came through (its Host).
      server = await startTestServer({ PUBLIC_URL: '' }, store)
      directory = await mkdtemp(path.join(tmpdir(), 'tusbox-test-rufh-'))
    })

    afterAll(async () => {
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(proxies.map((proxy) => proxy.close()))
      await server?.close()
      if (directory) await rm(directory, { recursive: true, force: true })
    })

    it('stores a whole upload with its exact sha256 and one event, counted as rufh', async () => {
      const before = await scrape(server.url)
      const bytes = pngBytes(3 * MiB + 11)
      const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
        protocol,
        chunkSize: MiB,
        metadata: { filename: 'plain.png', filetype: 'image/png' },
      })

      await expectStoredOnce(server.knex, id, bytes)
      const file = await server.knex('upload_files').where({ id }).first()
      expect(file.filename).toBe('plain.png')
      const after = await scrape(server.url)
      const created = (metrics: typeof before) =>
        metrics.value('tusbox_uploads_created_total', { protocol: 'rufh' })
      expect(created(after) - created(before)).toBe(1)
    })

    it('resumes, in a new client, an upload whose client process was killed', async () => {
      const bytes = pngBytes(6 * MiB + 5)
      const file = path.join(directory, `killed-${protocol}.png`)
      await writeFile(file, bytes)
      const child = spawn(
        process.execPath,
        [UPLOAD_CHILD, server.tusEndpoint, file, protocol, String(MiB)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      )
      children.push(child)
      let url: string | undefined
      for await (const line of createInterface({ input: child.stdout as NodeJS.ReadableStream })) {
        const event = JSON.parse(line) as { url?: string; acknowledged?: number }
        url ??= event.url
        if ((event.acknowledged ?? 0) >= 2 * MiB) break
      }
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGKILL')
      await exited
      expect(url).toBeDefined()

      const offsets: number[] = []
      const resumed = await uploadWithTus(server.tusEndpoint, bytes, {
        protocol,
        uploadUrl: url,
        chunkSize: MiB,
        onProgress: (sent) => offsets.push(sent),
      })

      expect(resumed.url).toBe(url)
      expect(Math.min(...offsets)).toBeGreaterThanOrEqual(2 * MiB)
      await expectStoredOnce(server.knex, resumed.id, bytes)
    })

    it('stores every upload made through a network that cuts connections', async () => {
      const uploads = 8
      const done = await Promise.all(
        Array.from({ length: uploads }, async (_, index) => {
          const random = seededRandom(SEED + index * 0x9e3779b9)
          const bytes = pngBytes(1024 + Math.floor(random() * 600 * 1024))
          const proxy: TcpProxy = await TcpProxy.start({
            targetPort: Number(new URL(server.url).port),
            budget: flakyBudgets(() => proxy, random, Math.min(CHUNK_SIZE, bytes.length)),
          })
          proxies.push(proxy)
          const failures: string[] = []
          const { id } = await uploadWithTus(`${proxy.url}/files`, bytes, {
            protocol,
            chunkSize: CHUNK_SIZE,
            retryDelays: RETRY_DELAYS,
            httpStack: new CutResponseAwareHttpStack(),
            metadata: { filename: `flaky-${index}.png`, filetype: 'image/png' },
            onAfterResponse: (request: tus.HttpRequest, response: tus.HttpResponse) => {
              const status = response.getStatus()
              // A 409 answers a resent chunk whose first try the server kept: expected here.
              if (status >= 400 && status !== 409) {
                failures.push(`${request.getMethod()} ${status} ${response.getBody()}`)
              }
            },
          })
          return { id, bytes, failures, cuts: proxy.cuts }
        }),
      )

      expect(done.flatMap(({ failures }) => failures)).toEqual([])
      for (const { id, bytes } of done) await expectStoredOnce(server.knex, id, bytes)
      // The faults really happened, to every upload (flakyBudgets).
      expect(done.filter(({ cuts }) => cuts === 0)).toEqual([])
    })
  },
)
