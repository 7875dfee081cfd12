import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EmbeddedPostgres, startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts'
import { createKnex } from '../../src/db/knex.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { type FinishedUpload, uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { startTusboxServer, type TusboxServer } from '../helpers/tusbox-process.ts'
import { waitUntil } from '../helpers/wait.ts'
import { WebhookReceiver } from '../helpers/webhook-receiver.ts'

const SECRET = 'test-webhook-secret-0123456789'
/** Enough patience for PostgreSQL to stop and start again, however slow the machine. */
const RETRY_DELAYS = [0, 100, 250, 500, ...Array<number>(40).fill(500)]

interface ErrorAnswer {
  readonly status: number
  readonly retryAfter: string | null
  readonly contentType: string | null
  readonly body: string
}

async function answerOf(response: Response): Promise<ErrorAnswer> {
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    contentType: response.headers.get('content-type'),
    body: await response.text(),
  }
}

const UNAVAILABLE = {
  status: 503,
  retryAfter: expect.stringMatching(/^\d+$/),
  contentType: expect.stringMatching(/^application\/json/),
  body: expect.stringContaining('"code":"database_unavailable"'),
}

/**
 * A PostgreSQL of this file's own, stopped and started under traffic: the one the other test
 * files share must never go away.
 */
describe('PostgreSQL stops for a while under traffic', () => {
  const logger = createLogger('warn')
  const receiver = new WebhookReceiver(SECRET)
  let root: string
  let postgres: EmbeddedPostgres | undefined
  let databaseUrl: string
  let postgresPort: number
  let knex: Knex
  let server: TusboxServer | undefined

  async function startPostgres(port: number): Promise<EmbeddedPostgres> {
    return startEmbeddedPostgres({
      dir: path.join(root, 'postgres'),
      port,
      database: 'tusbox',
      logger,
    })
  }

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'tusbox-test-outage-'))
    // Postgres may run as another user (see embedded-postgres.ts): it must reach its directory.
    await chmod(root, 0o755)
    postgres = await startPostgres(0)
    const { user, password, host, port } = postgres.connection
    // Started again on the same port, so every client's address stays right.
    postgresPort = Number(port)
    databaseUrl = `postgres://${user}:${encodeURIComponent(String(password))}@${host}:${postgresPort}/tusbox`
    knex = createKnex(databaseUrl, createLogger('silent'))
  })

  afterAll(async () => {
    await server?.process.kill()
    await receiver.stop()
    await knex?.destroy()
    await postgres?.stop()
    if (root) await rm(root, { recursive: true, force: true })
  })

  it('answers 503 database_unavailable with Retry-After meanwhile, never stores half a file, and recovers without a restart', async () => {
    const webhookUrl = await receiver.start()
    server = await startTusboxServer(
      {
        DATABASE_URL: databaseUrl,
        FILE_STORE_DIR: path.join(root, 'files'),
        WEBHOOK_URLS: webhookUrl,
        WEBHOOK_SECRET: SECRET,
      },
      'start',
    )
    const { url, tusEndpoint } = server

    // Traffic: two clients uploading one file after another until the outage is over.
    const errorAnswers: string[] = []
    const finished: Array<FinishedUpload & { bytes: Buffer }> = []
    let outageOver = false
    const client = async (lane: number) => {
      for (let index = 0; !outageOver || index < 2; index++) {
        const bytes = pngBytes(150_000 + lane * 1000 + index)
        const upload = await uploadWithTus(tusEndpoint, bytes, {
          chunkSize: 32 * 1024,
          retryDelays: RETRY_DELAYS,
          metadata: { filename: `traffic-${lane}-${index}.png`, filetype: 'image/png' },
          onAfterResponse: (request, response) => {
            const status = response.getStatus()
            if (status < 400) return
            errorAnswers.push(
              `${request.getMethod()} ${status} retry-after=${response.getHeader('Retry-After')} ${response.getBody()}`,
            )
          },
        })
        finished.push({ ...upload, bytes })
      }
    }
    const traffic = Promise.all([client(0), client(1)])
    await waitUntil('traffic flows', async () => finished.length >= 2)

    // An upload whose finish transaction is running when PostgreSQL goes: held on its row lock.
    const interrupted = pngBytes(200_000)
    const created = await createUpload(tusEndpoint, interrupted.length, {
      filename: 'interrupted.png',
      filetype: 'image/png',
    })
    const interruptedUrl = String(created.headers.get('location'))
    const interruptedId = interruptedUrl.slice(interruptedUrl.lastIndexOf('/') + 1)
    const locks = await knex.transaction()
    await locks('upload_files').where({ id: interruptedId }).forUpdate()
    const lastPatch = patchUpload(interruptedUrl, 0, interrupted).then(answerOf)
    await waitUntil('the finish transaction waits for its row', async () => {
      const waiting = await knex('pg_stat_activity')
        .where({ wait_event_type: 'Lock' })
        .whereILike('query', '%upload_files%')
      return waiting.length === 1
    })

    await (postgres as EmbeddedPostgres).stop()
    postgres = undefined
    await locks.rollback().catch(() => undefined)

    expect(await lastPatch).toEqual(UNAVAILABLE)
    expect(await answerOf(await createUpload(tusEndpoint, 1000, { filename: 'x.png' }))).toEqual(
      UNAVAILABLE,
    )
    const head = await fetch(interruptedUrl, { method: 'HEAD', headers: TUS })
    expect(head.status).toBe(503)
    expect(head.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(await answerOf(await fetch(`${url}/api/files/${interruptedId}`))).toEqual(UNAVAILABLE)
    expect((await fetch(`${url}/readyz`)).status).toBe(503)
    expect((await fetch(`${url}/healthz`)).status).toBe(200)

    postgres = await startPostgres(postgresPort)
    await waitUntil('/readyz answers 200 again', async () => {
      return (await fetch(`${url}/readyz`)).status === 200
    })
    outageOver = true
    await traffic

    // The client of the interrupted upload comes back: its HEAD finishes it, nothing is resent.
    const methods: string[] = []
    await uploadWithTus(tusEndpoint, interrupted, {
      uploadUrl: interruptedUrl,
      onBeforeRequest: (request) => void methods.push(request.getMethod()),
    })
    expect(methods).toEqual(['HEAD'])
    const fresh = pngBytes(300_000)
    const { id: freshId } = await uploadWithTus(tusEndpoint, fresh, {
      chunkSize: 64 * 1024,
      metadata: { filename: 'after.png', filetype: 'image/png' },
    })

    const uploads = [
      ...finished,
      { id: interruptedId, bytes: interrupted },
      { id: freshId, bytes: fresh },
    ]
    for (const { id, bytes } of uploads) await expectStoredOnce(knex, id, bytes)
    // Nothing else was stored, and nothing stored lacks its event: no half-finished finish.
    const stored = await knex('upload_files').where({ status: 'STORED' }).pluck('id')
    expect(stored.sort()).toEqual(uploads.map(({ id }) => id).sort())
    // No request failed for an unexpected reason, as far as the server could tell: checked first,
    // since a failure here shows the error that a client saw as a 500.
    expect(server.process.logged('tus request failed')).toEqual([])
    expect(server.process.logged('request failed')).toEqual([])
    // Every error a client saw was this clean 503, which it retried.
    expect(errorAnswers.filter((answer) => !/^\w+ 503 retry-after=\d+ /.test(answer))).toEqual([])
    expect(errorAnswers.length).toBeGreaterThan(0)

    // pg-boss reconnected by itself: the workers deliver every event.
    const events = await knex('outbox_events').pluck('id')
    await receiver.waitFor(() => events.every((id) => receiver.accepted.has(id)))
    expect(server.process.running).toBe(true)
    // It logged the outage as JSON lines on stderr, as always, and printed nothing else.
    for (const line of server.process.log.trim().split('\n'))
      expect(() => JSON.parse(line)).not.toThrow()
    expect(server.process.stdout).toBe('')
    server.process.child.kill('SIGTERM')
    expect((await server.process.exited).code).toBe(0)
  })
})
