import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pngBytes } from '../helpers/fixtures.ts'
import { closedPort } from '../helpers/ports.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { runTusbox } from '../helpers/tusbox-process.ts'
import { WebhookReceiver } from '../helpers/webhook-receiver.ts'

const SECRET = 'ops-commands-webhook-secret'

describe('the ops commands, run as separate processes', () => {
  const receiver = new WebhookReceiver(SECRET)
  let server: TestServer
  let env: Record<string, string>

  beforeAll(async () => {
    const webhookUrl = await receiver.start()
    server = await startTestServer({
      WEBHOOK_URLS: webhookUrl,
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_MAX_ATTEMPTS: '1',
    })
    env = {
      ...server.settings,
      LOG_LEVEL: 'silent',
    }
  })

  afterAll(async () => {
    await server?.close()
    await receiver.stop()
  })

  async function json(args: readonly string[]) {
    const result = await runTusbox(args, env)
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    return JSON.parse(result.stdout)
  }

  async function deadEvent(): Promise<string> {
    receiver.mode = 'fail'
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(2_000), {
      metadata: { filename: 'ops.png' },
    })
    const event = await server.knex('outbox_events').where({ aggregate_id: id }).first()
    await server.container.handlers['outbox.deliver']({ eventId: event.id })
    receiver.mode = 'accept'
    return event.id as string
  }

  it('reports the dead event in outbox stats, and redrive --dead queues it again', async () => {
    const eventId = await deadEvent()

    expect(await json(['outbox', 'stats'])).toMatchObject({ pending: 0, dead: 1 })
    expect(await json(['outbox', 'redrive', '--dead'])).toEqual({
      redriven: 1,
      eventIds: [eventId],
    })
    const after = await json(['outbox', 'stats'])
    expect(after).toMatchObject({ pending: 1, dead: 0 })
    expect(after.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(0)
  })

  it('lists every queue with its sizes in tusbox jobs', async () => {
    const queues = (await json(['jobs'])) as { name: string; queued: number; failed: number }[]

    expect(queues.map((queue) => queue.name)).toEqual(
      expect.arrayContaining(['outbox.deliver', 'outbox.sweep', 'uploads.purge', 'uploads.repair']),
    )
    for (const queue of queues) expect(queue.failed).toBeGreaterThanOrEqual(0)
  })

  it('prints what tusbox purge did', async () => {
    expect(await json(['purge'])).toEqual({ expired: 0, deleted: 0, failedRemoved: 0 })
  })

  it('fails with one clear line for an unknown event, and with usage help for a bad call', async () => {
    const unknown = await runTusbox(
      ['outbox', 'redrive', '01a22063-b7db-76c5-ade9-046081fece3e'],
      env,
    )
    expect(unknown.code).toBe(1)
    expect(unknown.stderr.trim()).toBe(
      'tusbox: No event with id 01a22063-b7db-76c5-ade9-046081fece3e.',
    )

    const usage = await runTusbox(['outbox', 'redrive'], env)
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('tusbox outbox redrive --dead')
  })

  it('runs ops commands on a shared database without AUTH_ALLOW_ANONYMOUS, which only serving needs', async () => {
    const unsetAllowance = { ...env, AUTH_ALLOW_ANONYMOUS: '' }

    const stats = await runTusbox(['outbox', 'stats'], unsetAllowance)
    const serve = await runTusbox(['serve'], { ...unsetAllowance, PORT: '0' })

    expect(stats.code).toBe(0)
    expect(serve.code).toBe(1)
    expect(serve.stderr).toContain('none with DATABASE_URL set lets anyone upload')
  })
})

describe('every command, with a DATABASE_URL where nothing listens', () => {
  it.each([
    ['serve'],
    ['start'],
    ['worker'],
    ['migrate'],
    ['purge'],
    ['jobs'],
    ['outbox', 'stats'],
  ])(
    'tusbox %s exits 1 with one line naming host:port, DATABASE_URL and the cause, without a stack',
    async (...args) => {
      const port = await closedPort()
      const result = await runTusbox(args, {
        DATABASE_URL: `postgres://tusbox:secret-password@127.0.0.1:${port}/tusbox`,
      })
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(
        `tusbox: cannot connect to the database at 127.0.0.1:${port} (DATABASE_URL): connection refused (ECONNREFUSED): nothing listens there. Start PostgreSQL there, or correct DATABASE_URL (unset it to use the embedded PostgreSQL).\n`,
      )
      expect(result.stdout).toBe('')
    },
  )
})

describe('tusbox check-config, which Docker Compose runs before the server and the worker', () => {
  const deployment = { DATABASE_URL: 'postgres://tusbox:tusbox@127.0.0.1:1/tusbox' }

  it('exits 1 naming the setting to add when serving would refuse anonymous uploads, connecting to nothing', async () => {
    const result = await runTusbox(['check-config'], {
      ...deployment,
      AUTH_ALLOW_ANONYMOUS: 'false',
    })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('AUTH_MODE=(unset)')
    expect(result.stderr).toContain('AUTH_ALLOW_ANONYMOUS=true')
  })

  it('exits 1 naming AUTH_JWT_SECRET when AUTH_MODE=jwt has no key', async () => {
    const result = await runTusbox(['check-config'], { ...deployment, AUTH_MODE: 'jwt' })
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('AUTH_JWT_SECRET')
  })

  it('exits 0 for settings serve accepts', async () => {
    const result = await runTusbox(['check-config'], {
      ...deployment,
      AUTH_MODE: 'jwt',
      AUTH_JWT_SECRET: 'a'.repeat(32),
    })
    expect(result).toMatchObject({ code: 0, stdout: 'tusbox: the configuration is valid\n' })
  })
})
