import { randomInt } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { countRows, expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { seededRandom, TcpProxy } from '../helpers/tcp-proxy.ts'
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
/** A connection is cut after 100 B to 256 KiB, about four chunks: most uploads lose several. */
const MAX_CONNECTION_BUDGET = 256 * 1024
/**
 * A file sent as 4 partial uploads travels over at most 4 connections until one is cut: above 4
 * budgets, every such file is cut at least once, whatever the seed draws.
 */
const PARALLEL_FILE_SIZES = { min: 4 * MAX_CONNECTION_BUDGET + 1, max: 6 * MAX_CONNECTION_BUDGET }
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
    function plan(index: number, sizes = { min: 1024, max: MAX_UPLOAD_SIZE }): Planned {
      const random = seededRandom(SEED + index * 0x9e3779b9)
      const size = sizes.min + Math.floor(random() * (sizes.max - sizes.min))
      return { index, bytes: pngBytes(size), random }
    }

    async function uploadThroughFlakyProxy(
      { index, bytes, random }: Planned,
      options: { parallelUploads?: number } = {},
    ) {
      const proxy = await TcpProxy.start({
        targetPort: Number(new URL(server.url).port),
        // One connection in five is left alone; the others are cut somewhere in their life.
        budget: () =>
          random() < 0.2 ? undefined : 100 + Math.floor(random() * MAX_CONNECTION_BUDGET),
      })
      proxies.push(proxy)
      const failures: string[] = []
      const send = options.parallelUploads ? uploadRestartingOnLostConnection : uploadWithTus
      const { id } = await send(`${proxy.url}/files`, bytes, {
        chunkSize: CHUNK_SIZE,
        retryDelays: RETRY_DELAYS,
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

    it(`stores all ${UPLOADS} uploads once each, with their exact sha256`, async () => {
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
      // The faults really happened: most uploads lost at least one connection.
      const cut = done.filter(({ cuts }) => cuts > 0).length
      expect(cut).toBeGreaterThan(UPLOADS / 2)
    })

    it(`stores ${PARALLEL_FILES} uploads sent with parallelUploads: 4 once each, with their exact sha256`, async () => {
      const queue = Array.from({ length: PARALLEL_FILES }, (_, index) =>
        plan(UPLOADS + index, PARALLEL_FILE_SIZES),
      )
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
      // The faults really happened, to every file (PARALLEL_FILE_SIZES).
      expect(done.filter(({ cuts }) => cuts === 0)).toEqual([])
    })
  },
)
