import { randomInt } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CutResponseAwareHttpStack } from '../../src/client/http-stack.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { countRows, expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { flakyBudgets, seededRandom, TcpProxy } from '../helpers/tcp-proxy.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadRestartingOnLostConnection, uploadWithTus } from '../helpers/tus-client.ts'

/** FLAKY_NETWORK_SEED=<seed from the test name> replays a failing run's faults. */
const SEED = Number(process.env.FLAKY_NETWORK_SEED ?? randomInt(2 ** 32))
const UPLOADS = 50
const PARALLEL_UPLOADS = 5
/** Files sent as 4 partial uploads each (tus concatenation), one after the other. */
const PARALLEL_FILES = 12
const CHUNK_SIZE = 64 * 1024
const MAX_UPLOAD_SIZE = 700 * 1024
/**
 * What these tests check is that every byte survives the faults, never how fast: on S3 with an
 * external PostgreSQL they take up to 10 s on a quiet machine, and CI ran one past the suite's
 * 30 s under the whole suite's load. This limit only stops a run that hangs.
 */
const FAULT_TEST_TIMEOUT_MS = 120_000
/** Short delays: the faults are the proxy's, not a server that needs time to come back. */
const RETRY_DELAYS = [0, 10, 50, 100, ...Array<number>(26).fill(100)]

function isClaimedWhileJoining(body: string): boolean {
  return body.includes('"partial_upload_claimed"')
}

interface Planned {
  readonly index: number
  readonly bytes: Buffer
  readonly random: () => number
}

describe.each(TEST_STORES)(
  `uploads through a network that cuts connections, on the $name store (seed ${SEED})`,
  (store) => {
    let server: TestServer
    const proxies: TcpProxy[] = []

    beforeAll(async () => {
      // No PUBLIC_URL: Location then names the proxy the client came through (its Host).
      server = await startTestServer({ PUBLIC_URL: '' }, store)
    })

    afterAll(async () => {
      await Promise.all(proxies.map((proxy) => proxy.close()))
      await server?.close()
    })

    /** Each upload draws its size and its cuts from its own stream, so a seed replays it alone. */
    function plan(index: number): Planned {
      const random = seededRandom(SEED + index * 0x9e3779b9)
      const size = 1024 + Math.floor(random() * (MAX_UPLOAD_SIZE - 1024))
      return { index, bytes: pngBytes(size), random }
    }

    async function uploadThroughFlakyProxy(
      { index, bytes, random }: Planned,
      options: { parallelUploads?: number } = {},
    ) {
      // tus-js-client splits a file into partial uploads of at least size / parallelUploads.
      const partSize = Math.floor(bytes.length / (options.parallelUploads ?? 1))
      const proxy: TcpProxy = await TcpProxy.start({
        targetPort: Number(new URL(server.url).port),
        budget: flakyBudgets(() => proxy, random, Math.min(CHUNK_SIZE, partSize)),
      })
      proxies.push(proxy)
      const failures: string[] = []
      const send = options.parallelUploads ? uploadRestartingOnLostConnection : uploadWithTus
      const { id } = await send(`${proxy.url}/files`, bytes, {
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
        httpStack: new CutResponseAwareHttpStack(),
        metadata: { filename: `flaky-${index}.png`, filetype: 'image/png' },
        ...options,
        // Retries hide error answers; the server must never give one, only lose connections.
        // One exception: a final sent again while the first one is still being joined is told
        // its partials are taken (409, which tus-js-client retries until the first is stored).
        onAfterResponse: (request, response) => {
          if (response.getStatus() < 400 || isClaimedWhileJoining(response.getBody())) return
          failures.push(`${request.getMethod()} ${response.getStatus()} ${response.getBody()}`)
        },
      })
      return { id, bytes, cuts: proxy.cuts, failures }
    }

    it(
      `stores all ${UPLOADS} uploads once each, with their exact sha256`,
      async () => {
        const queue = Array.from({ length: UPLOADS }, (_, index) => plan(index))
        const done: Array<Awaited<ReturnType<typeof uploadThroughFlakyProxy>>> = []
        await Promise.all(
          Array.from({ length: PARALLEL_UPLOADS }, async () => {
            for (let next = queue.shift(); next; next = queue.shift()) {
              done.push(await uploadThroughFlakyProxy(next))
            }
          }),
        )

        expect(done).toHaveLength(UPLOADS)
        expect(done.flatMap(({ failures }) => failures)).toEqual([])
        for (const { id, bytes } of done) await expectStoredOnce(server.knex, id, bytes)
        expect(new Set(done.map(({ id }) => id)).size).toBe(UPLOADS)
        const stored = await server.knex('upload_files').where({ status: 'STORED' }).count('*')
        expect(Number(stored[0]?.count)).toBe(UPLOADS)
        expect(await countRows(server.knex, 'outbox_events')).toBe(UPLOADS)
        // The faults really happened, to every upload (flakyBudgets).
        expect(done.filter(({ cuts }) => cuts === 0)).toEqual([])
      },
      FAULT_TEST_TIMEOUT_MS,
    )

    it(
      `stores ${PARALLEL_FILES} uploads sent with parallelUploads: 4 once each, with their exact sha256`,
      async () => {
        const queue = Array.from({ length: PARALLEL_FILES }, (_, index) => plan(UPLOADS + index))
        const done: Array<Awaited<ReturnType<typeof uploadThroughFlakyProxy>>> = []
        for (let next = queue.shift(); next; next = queue.shift()) {
          done.push(await uploadThroughFlakyProxy(next, { parallelUploads: 4 }))
        }

        expect(done.flatMap(({ failures }) => failures)).toEqual([])
        for (const { id, bytes } of done) await expectStoredOnce(server.knex, id, bytes)
        const finals = await server.knex('upload_files').where({ concat: 'final' })
        expect(finals.map((final: { id: string }) => final.id).sort()).toEqual(
          done.map(({ id }) => id).sort(),
        )
        // The faults really happened, to every file (flakyBudgets).
        expect(done.filter(({ cuts }) => cuts === 0)).toEqual([])
      },
      FAULT_TEST_TIMEOUT_MS,
    )
  },
)
