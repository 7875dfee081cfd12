import type { Knex } from 'knex'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { WebhookReceiver } from '../helpers/webhook-receiver.ts'

const SECRET = 'test-webhook-secret-0123456789'

describe.each(TEST_STORES)(
  'outbox delivery to webhooks and pg-boss topics on the $name store',
  (store) => {
    let server: TestServer
    const steady = new WebhookReceiver(SECRET)
    const flaky = new WebhookReceiver(SECRET)
    let flakyUrl: string
    let steadyUrl: string

    beforeAll(async () => {
      steadyUrl = await steady.start()
      flakyUrl = await flaky.start()
      server = await startTestServer(
        {
          WEBHOOK_URLS: `${steadyUrl},${flakyUrl}`,
          WEBHOOK_SECRET: SECRET,
          WEBHOOK_TIMEOUT: '1s',
          WEBHOOK_MAX_ATTEMPTS: '3',
        },
        store,
      )
    })

    afterAll(async () => {
      await server?.close()
      await steady.stop()
      await flaky.stop()
    })

    afterEach(() => {
      steady.mode = 'accept'
      flaky.mode = 'accept'
    })

    async function storedEventId(): Promise<string> {
      const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(2_000), {
        metadata: { filename: 'e.png' },
      })
      const event = await server
        .knex('outbox_events')
        .where({ aggregate_id: id, event_type: 'file.stored' })
        .first()
      return event.id as string
    }

    const deliver = (eventId: string) => server.container.handlers['outbox.deliver']({ eventId })
    /** The topic's, the flaky endpoint's and the steady endpoint's delivery, in that order. */
    async function deliveriesByDestination(eventId: string) {
      const rows = await server.knex('outbox_deliveries').where({ event_id: eventId })
      const of = (destination: string) => rows.find((row) => row.destination === destination)
      return [of('pg-boss-topic'), of(`webhook:${flakyUrl}`), of(`webhook:${steadyUrl}`)]
    }
    const event = (eventId: string) => server.knex('outbox_events').where({ id: eventId }).first()
    /** Makes every pending retry due now, instead of waiting out the backoff. */
    const makeRetriesDue = (knex: Knex, eventId: string) =>
      knex('outbox_deliveries')
        .where({ event_id: eventId, status: 'pending' })
        .update({ next_attempt_at: new Date(Date.now() - 1000) })

    it('POSTs the envelope to every webhook with a valid signature and publishes it to the topic', async () => {
      await server.container.boss.createQueue('consumer-of-stored-files')
      await server.container.boss.subscribe('file.stored', 'consumer-of-stored-files')
      const eventId = await storedEventId()

      await deliver(eventId)

      for (const receiver of [steady, flaky]) {
        const [webhook] = receiver.received.filter((received) => received.eventId === eventId)
        expect(webhook?.signatureValid).toBe(true)
        expect(webhook?.eventType).toBe('file.stored')
        expect(webhook?.body).toMatchObject({
          id: eventId,
          type: 'file.stored',
          aggregate: { type: 'UploadFile' },
          idempotencyKey: expect.stringMatching(/^UploadFile:/),
          data: { filename: 'e.png', contentType: 'image/png', size: 2_000 },
        })
      }
      const [consumed] = await server.container.boss.fetch<{ id: string }>(
        'consumer-of-stored-files',
      )
      expect(consumed?.data.id).toBe(eventId)
      expect(await event(eventId)).toMatchObject({
        status: 'delivered',
        attempts: 1,
        last_error: null,
      })
      expect((await event(eventId)).delivered_at).toBeInstanceOf(Date)
    })

    it('retries a failing or silent endpoint alone, with backoff, until it accepts the event once', async () => {
      const eventId = await storedEventId()
      flaky.mode = 'fail'
      const before = Date.now()
      await deliver(eventId)
      const after = Date.now()
      const [topic, firstFailure, steadyDelivery] = await deliveriesByDestination(eventId)
      expect(topic).toMatchObject({ status: 'delivered' })
      expect(firstFailure).toMatchObject({
        status: 'pending',
        attempts: 1,
        last_error: 'answered HTTP 500',
      })
      // The first retry waits between half and all of 10 s (jitter), counted from the attempt:
      // bounds that hold whatever the jitter drew.
      const retryAt = firstFailure.next_attempt_at.getTime()
      expect(retryAt).toBeGreaterThanOrEqual(before + 5_000)
      expect(retryAt).toBeLessThanOrEqual(after + 10_000)
      expect(steadyDelivery).toMatchObject({ status: 'delivered', attempts: 1 })
      // The job the finish step queued still waits (no worker runs in this test): the retry joins
      // it instead of queueing a second job for the same event.
      const queued = await server
        .knex('pgboss.job')
        .where({ name: 'outbox.deliver', singleton_key: eventId, state: 'created' })
      expect(queued).toHaveLength(1)

      await deliver(eventId)
      expect(flaky.countFor(eventId)).toBe(1)

      flaky.mode = 'hang'
      await makeRetriesDue(server.knex, eventId)
      await deliver(eventId)
      expect((await deliveriesByDestination(eventId))[1]).toMatchObject({
        attempts: 2,
        last_error: 'no answer within 1000 ms',
      })

      flaky.mode = 'accept'
      await makeRetriesDue(server.knex, eventId)
      await deliver(eventId)

      expect(steady.countFor(eventId)).toBe(1)
      expect(flaky.countFor(eventId)).toBe(3)
      expect(flaky.accepted.has(eventId)).toBe(true)
      expect(await event(eventId)).toMatchObject({ status: 'delivered', attempts: 3 })
    })

    it('marks an event dead after WEBHOOK_MAX_ATTEMPTS, and a redrive delivers it', async () => {
      const eventId = await storedEventId()
      flaky.mode = 'fail'
      for (let attempt = 1; attempt <= 3; attempt++) {
        await makeRetriesDue(server.knex, eventId)
        await deliver(eventId)
      }
      expect(await event(eventId)).toMatchObject({ status: 'dead', attempts: 3 })
      expect((await event(eventId)).last_error).toBe(`webhook:${flakyUrl}: answered HTTP 500`)
      expect((await server.container.operations.overview()).events.dead).toBeGreaterThanOrEqual(1)

      flaky.mode = 'accept'
      expect(await server.container.operations.redrive({ eventId })).toEqual([eventId])
      await deliver(eventId)

      expect(await event(eventId)).toMatchObject({ status: 'delivered' })
      expect(steady.countFor(eventId)).toBe(1)
      expect(flaky.accepted.has(eventId)).toBe(true)
    })

    it('refuses to redrive an event that is not dead', async () => {
      const eventId = await storedEventId()
      await expect(server.container.operations.redrive({ eventId })).rejects.toMatchObject({
        code: 'event_not_dead',
      })
    })

    it('re-queues pending events older than a minute whose job was lost', async () => {
      const eventId = await storedEventId()
      await server
        .knex('pgboss.job')
        .where({ name: 'outbox.deliver', singleton_key: eventId })
        .delete()
      await server
        .knex('outbox_events')
        .where({ id: eventId })
        .update({ created_at: new Date(Date.now() - 120_000) })

      const queued = await server.container.handlers['outbox.sweep']({})

      expect(queued).toBeGreaterThanOrEqual(1)
      const jobs = await server
        .knex('pgboss.job')
        .where({ name: 'outbox.deliver', singleton_key: eventId })
      expect(jobs).toHaveLength(1)
      expect(await server.container.handlers['outbox.sweep']({})).toBe(0)
    })

    it('reports pending, delivered and dead events and the queues at /api/admin/outbox', async () => {
      const response = await fetch(`${server.url}/api/admin/outbox`)
      const body = (await response.json()) as {
        events: Record<string, unknown>
        queues: { name: string }[]
      }
      expect(body.events).toEqual({
        pending: expect.any(Number),
        delivered: expect.any(Number),
        dead: expect.any(Number),
        oldestPendingAgeSeconds: expect.anything(),
      })
      expect(body.queues.map((queue) => queue.name)).toEqual([
        'outbox.deliver',
        'outbox.sweep',
        'uploads.purge',
        'uploads.repair',
      ])
    })
  },
)
