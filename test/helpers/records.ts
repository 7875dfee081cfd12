import type { Knex } from 'knex'
import { expect } from 'vitest'
import { sha256 } from './fixtures.ts'

/** What the database holds for one upload: its row, its events, its delivery jobs. */
export async function recordsFor(knex: Knex, fileId: string) {
  const file = await knex('upload_files').where({ id: fileId }).first()
  const events = await knex('outbox_events')
    .where({ aggregate_type: 'UploadFile', aggregate_id: fileId })
    .orderBy('id')
  const eventIds = events.map((event: { id: string }) => event.id)
  const jobs = await knex('pgboss.job')
    .where({ name: 'outbox.deliver' })
    .whereRaw("data->>'eventId' = ANY(?)", [eventIds])
  return { file, events, jobs }
}

/** The upload is STORED with exactly these bytes' sha256, one event and one delivery job. */
export async function expectStoredOnce(knex: Knex, fileId: string, bytes: Uint8Array) {
  const { file, events, jobs } = await recordsFor(knex, fileId)
  expect(file.status).toBe('STORED')
  expect(file.sha256).toBe(sha256(bytes))
  expect(events).toHaveLength(1)
  expect(jobs).toHaveLength(1)
}

export async function countRows(knex: Knex, table: string): Promise<number> {
  const [row] = await knex(table).count<{ count: string }[]>({ count: '*' })
  return Number(row?.count ?? 0)
}

export async function countDeliveryJobs(knex: Knex): Promise<number> {
  const [row] = await knex('pgboss.job')
    .where({ name: 'outbox.deliver' })
    .count<{ count: string }[]>({ count: '*' })
  return Number(row?.count ?? 0)
}

/** Upload locks the tusbox instances on this database hold: one per upload a request works on. */
export async function uploadLocksHeld(knex: Knex): Promise<number> {
  const { rows } = await knex.raw(
    `SELECT count(*) AS count FROM pg_locks JOIN pg_stat_activity USING (pid)
    WHERE locktype = 'advisory' AND granted AND application_name = 'tusbox-locker'
      AND datname = current_database()`,
  )
  return Number(rows[0].count)
}
