import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildContainer, type Container, openDatabase } from '../../src/container.ts'
import { bossJobQueue } from '../../src/jobs/boss.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { logLine, spawnTusbox } from '../helpers/tusbox-process.ts'
import { waitUntil } from '../helpers/wait.ts'
import { WebhookReceiver } from '../helpers/webhook-receiver.ts'

const SECRET = 'test-webhook-secret-0123456789'
async function eventIdOf(server: { knex: TestServer['knex'] }, fileId: string): Promise<string> {
  const event = await server
    .knex('outbox_events')
    .where({ aggregate_id: fileId, event_type: 'file.stored' })
    .first()
  return event.id as string
}

describe.each(TEST_STORES)('pg-boss workers delivering events on the $name store', (store) => {
  const receiver = new WebhookReceiver(SECRET)
  let webhookUrl: string
  let server: TestServer
  let secondWorker: { container: Container; close: () => Promise<void> } | undefined
  let child: ChildProcess | undefined

  beforeAll(async () => {
    webhookUrl = await receiver.start()
    server = await startTestServer({ WEBHOOK_URLS: webhookUrl, WEBHOOK_SECRET: SECRET }, store)
  })

  afterEach(async () => {
    receiver.mode = 'accept'
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
    await secondWorker?.close()
    secondWorker = undefined
  })

  afterAll(async () => {
    await server?.close()
    await receiver.stop()
  })

  /** Another worker process's worth of pg-boss workers, on the same database. */
  async function startSecondWorker() {
    const logger = createLogger('silent')
    const database = await openDatabase(server.config, logger)
    const container = await buildContainer(server.config, logger, database)
    await container.startWorkers()
    return {
      container,
      close: async () => {
        await container.close()
        await database.close()
      },
    }
  }

  it('delivers a crashed worker’s event later, once its heartbeat is missed', async () => {
    receiver.mode = 'hang'
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(3_000), {
      metadata: { filename: 'k.png' },
    })
    const eventId = await eventIdOf(server, id)
    child = spawnTusbox(['worker'], {
      ...server.settings,
    })
    await receiver.waitFor(() => receiver.countFor(eventId) === 1)
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(receiver.accepted.has(eventId)).toBe(false)

    receiver.mode = 'accept'
    await server
      .knex('pgboss.job')
      .where({ name: 'outbox.deliver', state: 'active' })
      .update({ heartbeat_on: new Date(Date.now() - 3_600_000) })
    await server.container.boss.supervise('outbox.deliver')
    await server.container.startWorkers()

    await receiver.waitFor(() => receiver.accepted.has(eventId))
    await waitUntil('the event is marked delivered', async () => {
      const event = await server.knex('outbox_events').where({ id: eventId }).first()
      return event.status === 'delivered'
    })
  })

  it('never lets two workers deliver one event at the same time, and delivers each once', async () => {
    receiver.mode = 'slow'
    secondWorker = await startSecondWorker()
    await server.container.startWorkers()
    const eventIds: string[] = []
    for (let index = 0; index < 12; index++) {
      const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(1_000 + index), {
        metadata: { filename: `${index}.png` },
      })
      const eventId = await eventIdOf(server, id)
      eventIds.push(eventId)
      // More requests for the same delivery from both workers, as a sweep or a redrive makes.
      await Promise.all(
        [server.container, secondWorker.container].map((container) =>
          bossJobQueue(container.boss).enqueue(
            'outbox.deliver',
            { eventId },
            { singletonKey: eventId },
          ),
        ),
      )
    }

    await receiver.waitFor(() => eventIds.every((eventId) => receiver.accepted.has(eventId)))

    expect(receiver.maxInFlightPerEvent).toBe(1)
    expect(eventIds.map((eventId) => receiver.countFor(eventId))).toEqual(eventIds.map(() => 1))
  })
})

describe('tusbox start', () => {
  let database: TestDatabase
  let directory: string
  const receiver = new WebhookReceiver(SECRET)

  beforeAll(async () => {
    database = await createTestDatabase()
    directory = await mkdtemp(path.join(tmpdir(), 'tusbox-test-start-'))
  })

  afterAll(async () => {
    await receiver.stop()
    await database.drop()
    await rm(directory, { recursive: true, force: true })
  })

  it('serves uploads and delivers their events from one process, and stops cleanly on SIGTERM', async () => {
    const webhookUrl = await receiver.start()
    const child = spawnTusbox(['start'], {
      DATABASE_URL: database.url,
      AUTH_ALLOW_ANONYMOUS: 'true',
      FILE_STORE_DIR: directory,
      PORT: '0',
      WEBHOOK_URLS: webhookUrl,
      WEBHOOK_SECRET: SECRET,
    })
    const exited = once(child, 'exit')
    const stopped = logLine(child, 'stopped')
    const listening = await logLine(child, 'tusbox is listening')

    const { id } = await uploadWithTus(String(listening.tusEndpoint), pngBytes(4_000), {
      metadata: { filename: 's.png' },
    })
    await receiver.waitFor(() =>
      receiver.received.some((webhook) => webhook.body.data.fileId === id),
    )

    child.kill('SIGTERM')
    await stopped
    const [code] = await exited
    expect(code).toBe(0)
  })
})
