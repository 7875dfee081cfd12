import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { buildContainer, openDatabase } from '../../src/container.ts'
import { createKnex } from '../../src/db/knex.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'
import { MiB, pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { stalledUpload } from '../helpers/stalled-upload.ts'
import type { TcpProxy } from '../helpers/tcp-proxy.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, patchUpload } from '../helpers/tus-requests.ts'
import { startTusboxServer, type TusboxServer } from '../helpers/tusbox-process.ts'
import { waitUntil } from '../helpers/wait.ts'

describe('tusbox serve killed with SIGKILL, then restarted on the same database and directory', () => {
  let database: TestDatabase
  let knex: Knex
  let directory: string
  const servers: TusboxServer[] = []
  const proxies: TcpProxy[] = []
  let rowLocks: Knex.Transaction | undefined

  beforeAll(async () => {
    database = await createTestDatabase()
    knex = createKnex(database.url)
    directory = await mkdtemp(path.join(tmpdir(), 'tusbox-test-crash-'))
  })

  afterEach(async () => {
    await rowLocks?.rollback()
    rowLocks = undefined
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
    await Promise.all(servers.splice(0).map((server) => server.process.kill()))
  })

  afterAll(async () => {
    await knex?.destroy()
    await database?.drop()
    if (directory) await rm(directory, { recursive: true, force: true })
  })

  async function serve(): Promise<TusboxServer> {
    const server = await startTusboxServer({
      DATABASE_URL: database.url,
      FILE_STORE_DIR: directory,
    })
    servers.push(server)
    return server
  }

  async function crash(server: TusboxServer): Promise<void> {
    server.process.child.kill('SIGKILL')
    const { signal } = await server.process.exited
    expect(signal).toBe('SIGKILL')
  }

  /** Nothing half done: every upload is STORED, and the store holds exactly their files. */
  async function expectNothingLeftOver(): Promise<void> {
    const rows: Array<{ status: string; storage_key: string }> = await knex('upload_files').select(
      'status',
      'storage_key',
    )
    expect(rows.filter((row) => row.status !== 'STORED')).toEqual([])
    const entries = await readdir(directory, { recursive: true, withFileTypes: true })
    const files = entries
      .filter((entry) => entry.isFile())
      .map((entry) => path.relative(directory, path.join(entry.parentPath, entry.name)))
    // Each upload is its bytes and FileStore's `.json` upload info beside them.
    const expected = rows.flatMap((row) => [row.storage_key, `${row.storage_key}.json`])
    expect(files.sort()).toEqual(expected.sort())
  }

  it('resumes an upload killed mid-PATCH from the bytes the dead server had written', async () => {
    const server = await serve()
    const bytes = pngBytes(6 * MiB)
    const upload = await stalledUpload({
      port: server.port,
      bytes,
      stallAfter: 2 * MiB,
      knex,
      directory,
    })
    proxies.push(upload.proxy)

    await crash(server)
    await expect(upload.client).rejects.toThrow()
    const saved = (await stat(upload.file)).size
    expect(saved).toBeGreaterThanOrEqual(upload.minimumSaved)
    expect(saved).toBeLessThan(bytes.length)

    const restarted = await serve()
    const patchOffsets: number[] = []
    await uploadWithTus(restarted.tusEndpoint, bytes, {
      uploadUrl: `${restarted.tusEndpoint}/${upload.id}`,
      onBeforeRequest: (request) => {
        if (request.getMethod() === 'PATCH')
          patchOffsets.push(Number(request.getHeader('Upload-Offset')))
      },
    })

    expect(patchOffsets[0]).toBe(saved)
    await expectStoredOnce(knex, upload.id, bytes)
    await expectNothingLeftOver()
  })

  it('finishes uploads killed between their last byte and the finish transaction: one on the client’s HEAD, one by the repair job', async () => {
    const server = await serve()
    const uploads = await Promise.all(
      ['returning-client.png', 'vanished-client.png'].map(async (filename, index) => {
        const bytes = pngBytes(MiB + index)
        const created = await createUpload(server.tusEndpoint, bytes.length, {
          filename,
          filetype: 'image/png',
        })
        const url = String(created.headers.get('location'))
        return { bytes, id: url.slice(url.lastIndexOf('/') + 1), url }
      }),
    )
    const ids = uploads.map(({ id }) => id)
    // The finish transaction starts by locking the row: held here, it waits with every byte in.
    const locks = await knex.transaction()
    rowLocks = locks
    await locks('upload_files').whereIn('id', ids).forUpdate()
    const patches = uploads.map(({ url, bytes }) =>
      patchUpload(url, 0, bytes).then(
        (response) => response.status,
        () => 'cut' as const,
      ),
    )
    await waitUntil('both finish transactions wait for their row', async () => {
      const waiting = await knex('pg_stat_activity')
        .where({ datname: knex.raw('current_database()'), wait_event_type: 'Lock' })
        .whereILike('query', '%upload_files%')
      return waiting.length === uploads.length
    })

    await crash(server)
    expect(await Promise.all(patches)).toEqual(['cut', 'cut'])
    await locks.rollback()
    rowLocks = undefined
    // The killed server's transactions got their locks only to find their client gone.
    await waitUntil('the dead server’s sessions are gone', async () => {
      const sessions = await knex('pg_stat_activity')
        .where({ datname: knex.raw('current_database()') })
        .whereNot({ pid: knex.raw('pg_backend_pid()') })
        .whereNot({ state: 'idle' })
      return sessions.length === 0
    })
    const rows = await knex('upload_files').whereIn('id', ids)
    expect(rows.map((row) => row.status)).toEqual(['UPLOADING', 'UPLOADING'])
    expect(await knex('outbox_events').whereIn('aggregate_id', ids)).toEqual([])

    const restarted = await serve()
    const [returning, vanished] = uploads as [(typeof uploads)[0], (typeof uploads)[0]]
    const methods: string[] = []
    await uploadWithTus(restarted.tusEndpoint, returning.bytes, {
      uploadUrl: `${restarted.tusEndpoint}/${returning.id}`,
      onBeforeRequest: (request) => void methods.push(request.getMethod()),
    })
    // The HEAD found every byte there and finished the upload: nothing was sent again.
    expect(methods).toEqual(['HEAD'])
    await expectStoredOnce(knex, returning.id, returning.bytes)

    // The repair job takes uploads idle for a minute: backdated here rather than waited for.
    await knex('upload_files')
      .where({ id: vanished.id })
      .update({ updated_at: new Date(Date.now() - 5 * 60_000) })
    const report = await runRepairJob()
    expect(report).toMatchObject({ finished: 1 })
    await expectStoredOnce(knex, vanished.id, vanished.bytes)
    await expectNothingLeftOver()
  })

  /** One run of `uploads.repair`, as a worker would run it, against the restarted server's data. */
  async function runRepairJob() {
    const config = loadConfig({
      DATABASE_URL: database.url,
      AUTH_ALLOW_ANONYMOUS: 'true',
      FILE_STORE_DIR: directory,
      LOG_LEVEL: 'silent',
    })
    const logger = createLogger('silent')
    const worker = await openDatabase(config, logger)
    try {
      const container = await buildContainer(config, logger, worker)
      try {
        return await container.handlers['uploads.repair']({})
      } finally {
        await container.close()
      }
    } finally {
      await worker.close()
    }
  }
})
