import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Knex } from 'knex'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKnex } from '../../src/db/knex.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'
import { pngBytes, sha256 } from '../helpers/fixtures.ts'
import { expectStoredOnce, uploadLocksHeld } from '../helpers/records.ts'
import { type RoundRobinProxy, startRoundRobinProxy } from '../helpers/round-robin-proxy.ts'
import { jsonOf, resumeOverStalledAppend } from '../helpers/rufh-client.ts'
import { type OpenedStore, TEST_STORES } from '../helpers/stores.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, encodeMetadata, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { logLine, spawnTusbox } from '../helpers/tusbox-process.ts'
import { waitUntil } from '../helpers/wait.ts'

const KiB = 1024

interface Instance {
  readonly child: ChildProcess
  readonly url: string
}

describe.each(TEST_STORES)(
  'two tusbox instances behind a round-robin proxy, on the $name store',
  (store) => {
    let database: TestDatabase
    let opened: OpenedStore
    let proxy: RoundRobinProxy
    let knex: Knex
    let instances: Instance[] = []

    beforeAll(async () => {
      proxy = await startRoundRobinProxy()
      database = await createTestDatabase()
      opened = await store.open()
      const settings = {
        DATABASE_URL: database.url,
        AUTH_ALLOW_ANONYMOUS: 'true',
        ...opened.env,
        PORT: '0',
        PUBLIC_URL: proxy.url,
      }
      instances = await Promise.all([startInstance(settings), startInstance(settings)])
      proxy.setTargets(instances.map((instance) => instance.url))
      knex = createKnex(database.url)
    })

    afterAll(async () => {
      await Promise.all(instances.map(({ child }) => stop(child, 'SIGKILL')))
      await proxy?.close()
      await knex?.destroy()
      await database?.drop()
      await opened?.close()
    })

    async function startInstance(settings: Record<string, string>): Promise<Instance> {
      const child = spawnTusbox(['serve'], settings)
      const listening = await logLine(child, 'tusbox is listening')
      return { child, url: String(listening.url) }
    }

    async function lockerSessions(): Promise<number> {
      const { rows } = await knex.raw(
        `SELECT count(*) AS count FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'tusbox-locker'`,
      )
      return Number(rows[0].count)
    }

    function instancesServing(method: string, path: string): number[] {
      return proxy.served
        .filter((request) => request.method === method && request.path === path)
        .map((request) => request.instance)
    }

    it('stores an upload whose every chunk lands on another instance, with the exact sha256 and one event', async () => {
      const bytes = pngBytes(700 * KiB)

      const { id, url } = await uploadWithTus(`${proxy.url}/files`, bytes, {
        chunkSize: 100 * KiB,
        metadata: { filename: 'round-robin.png', filetype: 'image/png' },
      })

      const patches = instancesServing('PATCH', new URL(url).pathname)
      expect(patches).toHaveLength(7)
      for (let index = 1; index < patches.length; index++) {
        expect(patches[index]).not.toBe(patches[index - 1])
      }
      await expectStoredOnce(knex, id, bytes)
      const download = await fetch(`${proxy.url}/api/files/${id}/content`)
      expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(sha256(bytes))
    })

    it('stores a parallelUploads: 4 upload whose partials and final land on both instances, behind PUBLIC_URL', async () => {
      const bytes = pngBytes(900 * KiB)

      const { id, url } = await uploadWithTus(`${proxy.url}/files`, bytes, {
        chunkSize: 100 * KiB,
        parallelUploads: 4,
        metadata: { filename: 'parallel.png', filetype: 'image/png' },
      })

      expect(url.startsWith(`${proxy.url}/files/`)).toBe(true)
      const partials = await knex('upload_files').where({ final_id: id })
      expect(partials).toHaveLength(4)
      const patchedOn = new Set(
        partials.flatMap((partial: { id: string }) =>
          instancesServing('PATCH', `/files/${partial.id}`),
        ),
      )
      expect(patchedOn.size).toBe(2)
      await expectStoredOnce(knex, id, bytes)
      const download = await fetch(url)
      expect(sha256(Buffer.from(await download.arrayBuffer()))).toBe(sha256(bytes))
    })

    it('applies exactly one of two PATCHes sent at once to the same offset on two instances, whole', async () => {
      const size = 64 * KiB
      for (let race = 0; race < 4; race++) {
        const created = await createUpload(`${proxy.url}/files`, size, {
          filename: `race-${race}.png`,
          filetype: 'image/png',
        })
        const url = created.headers.get('location') ?? ''
        const bodies = [pngBytes(size), pngBytes(size)]

        const answers = await Promise.all(bodies.map((body) => patchUpload(url, 0, body)))

        expect(new Set(instancesServing('PATCH', new URL(url).pathname)).size).toBe(2)
        const statuses = answers.map((answer) => answer.status)
        expect(statuses.toSorted()).toEqual([204, 409])
        const winner = statuses.indexOf(204)
        expect(answers[winner]?.headers.get('upload-offset')).toBe(String(size))
        const id = url.slice(url.lastIndexOf('/') + 1)
        await expectStoredOnce(knex, id, bodies[winner] as Buffer)
      }
    })

    it('lets a client resume on the other instance while its stalled PATCH still holds the upload there', async () => {
      const bytes = pngBytes(512 * KiB)
      const created = await createUpload(`${proxy.url}/files`, bytes.length, {
        filename: 'stalled.png',
        filetype: 'image/png',
      })
      const url = created.headers.get('location') ?? ''
      const path = new URL(url).pathname
      // A connection that dropped without a FIN: half the bytes sent, then nothing.
      const dropped = new AbortController()
      const stalled = fetch(url, {
        method: 'PATCH',
        headers: {
          ...TUS,
          'Upload-Offset': '0',
          'Content-Type': 'application/offset+octet-stream',
        },
        body: new ReadableStream({
          start(controller) {
            controller.enqueue(bytes.subarray(0, bytes.length / 2))
          },
        }),
        duplex: 'half',
        signal: dropped.signal,
      } as RequestInit).catch((error: unknown) => error)
      await waitUntil('the stalled PATCH holds the upload lock', async () => {
        return (await uploadLocksHeld(knex)) === 1
      })

      const resumed = await uploadWithTus(`${proxy.url}/files`, bytes, { uploadUrl: url })

      const [stalledOn] = instancesServing('PATCH', path)
      const [resumedOn] = instancesServing('HEAD', path)
      expect(resumedOn).not.toBe(stalledOn)
      dropped.abort()
      await stalled
      await expectStoredOnce(knex, resumed.id, bytes)
      expect(await uploadLocksHeld(knex)).toBe(0)
    })

    it('finishes a deferred-length upload whose length was declared on the other instance', async () => {
      const bytes = pngBytes(4 * 32 * KiB)
      const chunk = (index: number) => bytes.subarray(index * 32 * KiB, (index + 1) * 32 * KiB)
      const created = await fetch(`${proxy.url}/files`, {
        method: 'POST',
        headers: {
          ...TUS,
          'Upload-Defer-Length': '1',
          'Upload-Metadata': encodeMetadata({ filename: 'deferred.png', filetype: 'image/png' }),
        },
      })
      expect(created.status).toBe(201)
      const url = created.headers.get('location') ?? ''

      // Each instance reads the upload's info before the length is known…
      expect((await patchUpload(url, 0, chunk(0))).status).toBe(204)
      expect((await patchUpload(url, 32 * KiB, chunk(1))).status).toBe(204)
      // …then one of them learns it, and the other receives the last bytes.
      const declared = await patchUpload(url, 64 * KiB, chunk(2), {
        'Upload-Length': String(bytes.length),
      })
      expect(declared.status).toBe(204)
      const last = await patchUpload(url, 96 * KiB, chunk(3))

      expect(last.status).toBe(204)
      expect(last.headers.get('upload-offset')).toBe(String(bytes.length))
      const patches = instancesServing('PATCH', new URL(url).pathname)
      expect(patches[3]).not.toBe(patches[2])
      const id = url.slice(url.lastIndexOf('/') + 1)
      await expectStoredOnce(knex, id, bytes)
    })

    it('ends a stalled RUFH append on one instance within a second of a HEAD on the other, and completes the upload exact', async () => {
      const bytes = pngBytes(512 * KiB)

      const resumed = await resumeOverStalledAppend(proxy.url, bytes, async () => {
        return (await uploadLocksHeld(knex)) === 1
      })

      const [stalledOn] = instancesServing('PATCH', resumed.path)
      const [headOn] = instancesServing('HEAD', resumed.path)
      expect(headOn).not.toBe(stalledOn)
      expect(resumed.staleEndedAfterMs).toBeLessThan(1000)
      expect(resumed.head.final?.status).toBe(204)
      expect(resumed.completion.final?.status).toBe(200)
      const { id } = jsonOf(resumed.completion.final) as { id: string }
      await expectStoredOnce(knex, id, bytes)
      expect(await uploadLocksHeld(knex)).toBe(0)
    })

    it('stops both instances cleanly on SIGTERM, leaving no upload lock and no locker session', async () => {
      const codes = await Promise.all(instances.map(({ child }) => stop(child, 'SIGTERM')))

      expect(codes).toEqual([0, 0])
      // A backend ends a moment after its client's socket closes.
      await waitUntil('the locker sessions have ended', async () => (await lockerSessions()) === 0)
      expect(await uploadLocksHeld(knex)).toBe(0)
    })
  },
)

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = once(child, 'exit')
  child.kill(signal)
  const [code] = await exited
  return code
}
