import { chmod, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createKnex } from '../../src/db/knex.ts'
import { REPEATED_SIGNAL_WINDOW_MS } from '../../src/lib/shutdown.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'
import { MiB, pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { stalledUpload } from '../helpers/stalled-upload.ts'
import type { TcpProxy } from '../helpers/tcp-proxy.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { spawnNpmStart, startTusboxServer, type TusboxServer } from '../helpers/tusbox-process.ts'

/** The PATCH stalls after this many bytes: the server has read them, the rest never comes. */
const STALL_AFTER = MiB

describe('SIGTERM while a PATCH is in flight', () => {
  let database: TestDatabase
  let knex: Knex
  let directory: string
  const servers: TusboxServer[] = []
  const proxies: TcpProxy[] = []

  beforeAll(async () => {
    database = await createTestDatabase()
    knex = createKnex(database.url)
    directory = await mkdtemp(path.join(tmpdir(), 'tusbox-test-shutdown-'))
  })

  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
    await Promise.all(servers.splice(0).map((server) => server.process.kill()))
  })

  afterAll(async () => {
    await knex?.destroy()
    await database?.drop()
    if (directory) await rm(directory, { recursive: true, force: true })
  })

  async function serve(env: Record<string, string> = {}): Promise<TusboxServer> {
    const server = await startTusboxServer({
      DATABASE_URL: database.url,
      FILE_STORE_DIR: directory,
      ...env,
    })
    servers.push(server)
    return server
  }

  async function stalled(server: TusboxServer, bytes: Buffer) {
    const upload = await stalledUpload({
      port: server.port,
      bytes,
      stallAfter: STALL_AFTER,
      knex,
      directory,
    })
    proxies.push(upload.proxy)
    return upload
  }

  it('stops accepting connections, cuts the PATCH after the grace period keeping its bytes, and exits 0; the client resumes from them', async () => {
    const server = await serve({ SHUTDOWN_GRACE_PERIOD: '1s' })
    const bytes = pngBytes(4 * MiB)
    const { id, file, client, minimumSaved } = await stalled(server, bytes)

    server.process.child.kill('SIGTERM')
    await server.process.waitForLog('no longer accepting connections')
    expect(await connectionRefused(server.port)).toBe(true)
    const { code } = await server.process.exited
    expect(code).toBe(0)
    expect(server.process.logged('grace period over: closing connections')).toHaveLength(1)
    expect(server.process.logged('stopped')).toHaveLength(1)
    await expect(client).rejects.toThrow()

    const saved = (await stat(file)).size
    expect(saved).toBeGreaterThanOrEqual(minimumSaved)
    const restarted = await serve()
    const head = await fetch(`${restarted.tusEndpoint}/${id}`, {
      method: 'HEAD',
      headers: { 'Tus-Resumable': '1.0.0' },
    })
    expect(Number(head.headers.get('upload-offset'))).toBe(saved)
    const patchOffsets: number[] = []
    await uploadWithTus(restarted.tusEndpoint, bytes, {
      uploadUrl: `${restarted.tusEndpoint}/${id}`,
      onBeforeRequest: (request) => {
        if (request.getMethod() === 'PATCH')
          patchOffsets.push(Number(request.getHeader('Upload-Offset')))
      },
    })
    expect(patchOffsets[0]).toBe(saved)
    await expectStoredOnce(knex, id, bytes)
  })

  it('lets a PATCH that ends within the grace period finish and store its upload, then exits 0', async () => {
    const server = await serve({ SHUTDOWN_GRACE_PERIOD: '30s' })
    const bytes = pngBytes(2 * MiB)
    const { proxy, id, client, responses } = await stalled(server, bytes)

    server.process.child.kill('SIGTERM')
    await server.process.waitForLog('no longer accepting connections')
    expect(await connectionRefused(server.port)).toBe(true)
    proxy.release()
    await client
    const { code } = await server.process.exited

    expect(code).toBe(0)
    expect(server.process.logged('grace period over: closing connections')).toEqual([])
    // The connection is not kept alive for another request to a server that is going away.
    expect(responses.at(-1)).toEqual({ method: 'PATCH', status: 204, connection: 'close' })
    await expectStoredOnce(knex, id, bytes)
  })

  it('exits at once with code 1 on a second SIGTERM', async () => {
    const server = await serve({ SHUTDOWN_GRACE_PERIOD: '60s' })
    await stalled(server, pngBytes(2 * MiB))

    server.process.child.kill('SIGTERM')
    await server.process.waitForLog('no longer accepting connections')
    await aRepeatedSignalWindowLater()
    const secondSignal = Date.now()
    server.process.child.kill('SIGTERM')
    const { code } = await server.process.exited

    expect(code).toBe(1)
    expect(Date.now() - secondSignal).toBeLessThan(5_000)
    expect(server.process.logged('second signal: exiting without a clean shutdown')).toHaveLength(1)
    expect(server.process.logged('stopped')).toEqual([])
  })
})

describe('Ctrl-C in a terminal running npm start', () => {
  let directory: string
  let server: TusboxServer | undefined

  beforeAll(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'tusbox-test-ctrl-c-'))
    // Run as root, PostgreSQL runs as the postgres user, which must reach its data directory.
    await chmod(directory, 0o755)
  })

  afterEach(async () => {
    if (server?.process.running) signalGroup(server, 'SIGKILL')
    await server?.process.exited
    server = undefined
    await stopLeftoverPostgres(path.join(directory, 'postgres'))
  })

  afterAll(async () => {
    if (directory) await rm(directory, { recursive: true, force: true })
  })

  /** `npm start` with its embedded PostgreSQL, and a knex on that database. */
  async function npmStart(grace: string) {
    const postgresDir = path.join(directory, 'postgres')
    server = await startTusboxServer(
      {
        SHUTDOWN_GRACE_PERIOD: grace,
        EMBEDDED_POSTGRES_DIR: postgresDir,
        FILE_STORE_DIR: path.join(directory, 'files'),
        DATABASE_URL: '',
      },
      'start',
      spawnNpmStart,
    )
    const listening = server.process.logged('tusbox is listening')[0] ?? {}
    const address = new URL(String(listening.database).split(' ')[0] ?? '')
    const password = (await readFile(path.join(postgresDir, 'tusbox-password'), 'utf8')).trim()
    address.password = password
    return { server, knex: createKnex(address.toString()), postgresDir }
  }

  /** One upload whose PATCH stalls midway; the knex closes before anything is signalled. */
  async function stalledOn(started: Awaited<ReturnType<typeof npmStart>>) {
    try {
      return await stalledUpload({
        port: started.server.port,
        bytes: pngBytes(2 * MiB),
        stallAfter: STALL_AFTER,
        knex: started.knex,
        directory: path.join(directory, 'files'),
      })
    } finally {
      await started.knex.destroy()
    }
  }

  it('shuts down once, lets the upload in flight finish within the grace period, stops PostgreSQL and exits 0', async () => {
    const started = await npmStart('30s')
    const { proxy, client, responses } = await stalledOn(started)

    signalGroup(started.server, 'SIGINT')
    await started.server.process.waitForLog('no longer accepting connections')
    proxy.release()
    await client
    await proxy.close()
    const { code } = await started.server.process.exited

    expect(code).toBe(0)
    expect(responses.at(-1)).toEqual({ method: 'PATCH', status: 204, connection: 'close' })
    expect(started.server.process.logged('shutting down')).toHaveLength(1)
    expect(
      started.server.process.logged('second signal: exiting without a clean shutdown'),
    ).toEqual([])
    expect(started.server.process.logged('stopped')).toHaveLength(1)
    expect(await postgresProcessesOf(started.postgresDir)).toEqual([])
  })

  it('exits at once on a second Ctrl-C pressed after the first', async () => {
    const started = await npmStart('60s')
    const { proxy } = await stalledOn(started)

    signalGroup(started.server, 'SIGINT')
    await started.server.process.waitForLog('no longer accepting connections')
    await aRepeatedSignalWindowLater()
    const secondSignal = Date.now()
    signalGroup(started.server, 'SIGINT')
    const { code } = await started.server.process.exited
    await proxy.close()

    expect(code).not.toBe(0)
    expect(Date.now() - secondSignal).toBeLessThan(5_000)
    expect(
      started.server.process.logged('second signal: exiting without a clean shutdown'),
    ).toHaveLength(1)
    expect(started.server.process.logged('stopped')).toEqual([])
  })
})

/** A person's second Ctrl-C comes later than the repeat of one that the group delivers twice. */
function aRepeatedSignalWindowLater(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, REPEATED_SIGNAL_WINDOW_MS + 100))
}

function signalGroup(server: TusboxServer, signal: NodeJS.Signals): void {
  const pid = server.process.child.pid
  if (pid === undefined) throw new Error('npm start has no pid')
  process.kill(-pid, signal)
}

/** The pids of postgres processes serving `dataDir`, read from /proc. */
async function postgresProcessesOf(dataDir: string): Promise<number[]> {
  const pids: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const commandLine = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    const [program, ...args] = commandLine.split('\0')
    if (program?.endsWith('postgres') && args.includes(dataDir)) pids.push(Number(entry))
  }
  return pids
}

/** After a failed test, nothing of it may keep running. */
async function stopLeftoverPostgres(dataDir: string): Promise<void> {
  for (const pid of await postgresProcessesOf(dataDir)) process.kill(pid, 'SIGKILL')
}

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'))
  })
}
