import { createServer } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { elfBytes, pngBytes } from '../helpers/fixtures.ts'
import { type Scrape, scrape } from '../helpers/metrics.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { isDetailedError, uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, TUS } from '../helpers/tus-requests.ts'
import { TusboxProcess } from '../helpers/tusbox-process.ts'
import { waitUntil } from '../helpers/wait.ts'
import { WebhookReceiver } from '../helpers/webhook-receiver.ts'

const WEBHOOK_SECRET = 'test-webhook-secret-0123456789'

const TUSBOX_METRICS = [
  'tusbox_uploads_created_total',
  'tusbox_uploads_stored_total',
  'tusbox_uploads_failed_total',
  'tusbox_upload_bytes_received_total',
  'tusbox_uploads_in_progress',
  'tusbox_finish_duration_seconds',
  'tusbox_outbox_pending_events',
  'tusbox_outbox_oldest_pending_age_seconds',
  'tusbox_outbox_deliveries_total',
  'tusbox_job_failures_total',
  'tusbox_purged_total',
]

/** How much each of these series grew between two scrapes. */
function growth(before: Scrape, after: Scrape) {
  return (name: string, labels: Record<string, string> = {}) =>
    after.value(name, labels) - before.value(name, labels)
}

async function refusal(upload: Promise<unknown>): Promise<string> {
  const error = await upload.then(
    () => undefined,
    (reason: unknown) => reason,
  )
  if (!isDetailedError(error)) throw new Error(`expected a refused upload, got ${String(error)}`)
  const body = JSON.parse(error.originalResponse?.getBody() ?? '{}') as { error?: { code: string } }
  return body.error?.code ?? 'no code'
}

describe('GET /metrics', () => {
  let server: TestServer
  const receiver = new WebhookReceiver(WEBHOOK_SECRET)

  beforeAll(async () => {
    server = await startTestServer({
      WEBHOOK_URLS: await receiver.start(),
      WEBHOOK_SECRET,
      WEBHOOK_TIMEOUT: '1s',
      WEBHOOK_MAX_ATTEMPTS: '2',
    })
  })

  afterAll(async () => {
    await server?.close()
    await receiver.stop()
  })

  const metrics = () => scrape(server.url)
  const storedEventId = async () => {
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(1_000), {
      metadata: { filename: 'e.png' },
    })
    const event = await server
      .knex('outbox_events')
      .where({ aggregate_id: id, event_type: 'file.stored' })
      .first()
    return event.id as string
  }

  it('serves every tusbox metric and the Node process metrics as Prometheus text', async () => {
    const response = await fetch(`${server.url}/metrics`)

    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    const missing = TUSBOX_METRICS.filter((name) => !text.includes(`# TYPE ${name} `))
    expect(missing).toEqual([])
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m)
    expect(text).toContain('tusbox_outbox_deliveries_total{destination="webhook",outcome="dead"} 0')
  })

  it('counts a stored upload, two refused ones with their reasons, their bytes and their finish steps', async () => {
    const before = await metrics()

    await uploadWithTus(server.tusEndpoint, pngBytes(5_000), {
      metadata: { filename: 'ok.png' },
      chunkSize: 2_000,
    })
    const unsupported = await refusal(
      uploadWithTus(server.tusEndpoint, elfBytes(3_000), { metadata: { filename: 'tool' } }),
    )
    const mismatch = await refusal(
      uploadWithTus(server.tusEndpoint, pngBytes(4_000), {
        metadata: { filename: 'fake.pdf', filetype: 'application/pdf' },
      }),
    )

    expect([unsupported, mismatch]).toEqual(['unsupported_file_type', 'content_type_mismatch'])
    const grew = growth(before, await metrics())
    expect(grew('tusbox_uploads_created_total', { protocol: 'tus' })).toBe(3)
    expect(grew('tusbox_uploads_stored_total')).toBe(1)
    expect(grew('tusbox_uploads_failed_total', { reason: 'unsupported_file_type' })).toBe(1)
    expect(grew('tusbox_uploads_failed_total', { reason: 'content_type_mismatch' })).toBe(1)
    expect(grew('tusbox_upload_bytes_received_total')).toBe(5_000 + 3_000 + 4_000)
    expect(grew('tusbox_finish_duration_seconds_count')).toBe(3)
    expect(grew('tusbox_finish_duration_seconds_sum')).toBeGreaterThan(0)
    expect(grew('tusbox_finish_duration_seconds_bucket', { le: '+Inf' })).toBe(3)
  })

  it('counts a finish once when several callers race to do it', async () => {
    const { id, url } = await uploadWithTus(server.tusEndpoint, pngBytes(2_000), {
      metadata: { filename: 'twice.png' },
    })
    // As after a crash between the last byte and the finish commit: complete bytes, UPLOADING.
    await server.knex('upload_files').where({ id }).update({ status: 'UPLOADING' })
    const before = await metrics()

    // A resuming client's HEAD, the repair job and another caller, all at once.
    await Promise.all([
      server.container.finishUpload(id),
      server.container.finishUpload(id),
      fetch(url, { method: 'HEAD', headers: TUS }),
    ])
    await server.container.finishUpload(id)

    const grew = growth(before, await metrics())
    expect(grew('tusbox_uploads_stored_total')).toBe(1)
    expect(grew('tusbox_finish_duration_seconds_count')).toBe(1)
  })

  it('shows an unfinished upload as in progress until it is terminated', async () => {
    const before = await metrics()
    const created = await createUpload(server.tusEndpoint, 10_000, { filename: 'later.png' })
    expect(created.status).toBe(201)

    const during = await metrics()
    await fetch(created.headers.get('location') as string, { method: 'DELETE', headers: TUS })
    const after = await metrics()

    expect(during.value('tusbox_uploads_in_progress')).toBe(
      before.value('tusbox_uploads_in_progress') + 1,
    )
    expect(after.value('tusbox_uploads_in_progress')).toBe(
      before.value('tusbox_uploads_in_progress'),
    )
  })

  it('shows the pending events and the age of the oldest one', async () => {
    const before = await metrics()
    const eventId = await storedEventId()
    await server
      .knex('outbox_events')
      .where({ id: eventId })
      .update({ created_at: new Date(Date.now() - 3_600_000) })

    const after = await metrics()

    expect(after.value('tusbox_outbox_pending_events')).toBe(
      before.value('tusbox_outbox_pending_events') + 1,
    )
    expect(after.value('tusbox_outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(3_600)
    expect(after.value('tusbox_outbox_oldest_pending_age_seconds')).toBeLessThan(3_700)
  })

  it('counts delivery attempts by destination: delivered, failed with a retry left, dead', async () => {
    const deliver = (eventId: string) => server.container.handlers['outbox.deliver']({ eventId })
    const delivered = await storedEventId()
    const failing = await storedEventId()
    const before = await metrics()

    await deliver(delivered)
    receiver.mode = 'fail'
    await deliver(failing)
    await server
      .knex('outbox_deliveries')
      .where({ event_id: failing, status: 'pending' })
      .update({ next_attempt_at: new Date(Date.now() - 1_000) })
    await deliver(failing)
    receiver.mode = 'accept'

    const grew = growth(before, await metrics())
    const attempts = (destination: string, outcome: string) =>
      grew('tusbox_outbox_deliveries_total', { destination, outcome })
    expect(attempts('topic', 'delivered')).toBe(2)
    expect(attempts('webhook', 'delivered')).toBe(1)
    expect(attempts('webhook', 'failed')).toBe(1)
    expect(attempts('webhook', 'dead')).toBe(1)
  })

  it('counts what a purge run removed, by kind', async () => {
    const created = await createUpload(server.tusEndpoint, 10_000, { filename: 'idle.png' })
    const url = created.headers.get('location') as string
    await server
      .knex('upload_files')
      .where({ id: url.slice(url.lastIndexOf('/') + 1) })
      .update({ expires_at: new Date(Date.now() - 1_000) })
    const before = await metrics()

    const report = await server.container.handlers['uploads.purge']({})

    const grew = growth(before, await metrics())
    expect(report.expired).toBe(1)
    expect(grew('tusbox_purged_total', { kind: 'expired' })).toBe(1)
    expect(grew('tusbox_purged_total', { kind: 'deleted' })).toBe(0)
  })
})

describe('GET /metrics with AUTH_MODE=jwt', () => {
  const SECRET = 'a-shared-hs256-secret-for-the-tests'
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({
      ...jwtSettings(SECRET),
    })
  })

  afterAll(async () => {
    await server?.close()
  })

  const withToken = async (claims: Record<string, unknown>) =>
    fetch(`${server.url}/metrics`, {
      headers: { Authorization: `Bearer ${await signHs256(SECRET, claims)}` },
    })

  it('answers 401 with a Bearer challenge without a token', async () => {
    const response = await fetch(`${server.url}/metrics`)

    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="tusbox"/)
  })

  it('answers 403 to a token without the admin claim', async () => {
    const response = await withToken({ sub: 'alice' })

    expect(response.status).toBe(403)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      'admin_required',
    )
  })

  it('serves the metrics to a token with the admin claim', async () => {
    const response = await withToken({ sub: 'prometheus', tusbox_admin: true })

    expect(response.status).toBe(200)
    expect(await response.text()).toContain('# TYPE tusbox_uploads_created_total counter')
  })
})

/** A port nothing listens on right now: `tusbox worker` has no PORT=0 for its metrics. */
async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const address = probe.address()
  await new Promise<void>((resolve) => probe.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

describe('tusbox worker with WORKER_METRICS_PORT', () => {
  let server: TestServer
  let worker: TusboxProcess
  let workerUrl: string

  beforeAll(async () => {
    // The in-process server only creates uploads and events; the worker process delivers them.
    server = await startTestServer()
    const port = await freePort()
    worker = new TusboxProcess(['worker'], {
      ...server.settings,
      WORKER_METRICS_PORT: String(port),
    })
    const serving = await worker.waitForLog('tusbox worker serves its metrics')
    workerUrl = new URL(String(serving.url)).origin
    expect(workerUrl).toBe(`http://127.0.0.1:${port}`)
  })

  afterAll(async () => {
    await worker?.kill()
    await server?.close()
  })

  it('serves its health on the metrics port', async () => {
    const response = await fetch(`${workerUrl}/healthz`)

    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ok' })
  })

  it('serves the deliveries and job failures counted by the worker', async () => {
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(1_000), {
      metadata: { filename: 'w.png' },
    })
    // Not a uuid: the outbox lookup throws, so the job handler fails.
    await server.container.boss.send('outbox.deliver', { eventId: 'not-an-event-id' })

    let last: Scrape | undefined
    await waitUntil('the worker counted a delivery and a failed job', async () => {
      last = await scrape(workerUrl)
      return (
        last.value('tusbox_outbox_deliveries_total', {
          destination: 'topic',
          outcome: 'delivered',
        }) >= 1 && last.value('tusbox_job_failures_total', { queue: 'outbox.deliver' }) >= 1
      )
    })
    expect(last?.declares('process_cpu_user_seconds_total')).toBe(true)
    const failed = await worker.waitForLog('job failed')
    expect(failed).toMatchObject({ level: 'error', job: 'outbox.deliver' })
    expect(typeof failed.jobId).toBe('string')
    const event = await server.knex('outbox_events').where({ aggregate_id: id }).first()
    expect(event.status).toBe('delivered')
  })
})
