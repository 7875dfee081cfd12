import type { Knex } from 'knex'
import { v7 as uuidv7 } from 'uuid'
import { executor } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import {
  defaultIdempotencyKey,
  type EventEnvelope,
  type EventPayloads,
  type EventType,
  type NewEvent,
} from './events.ts'

export type DeliveryStatus = 'pending' | 'delivered' | 'dead'

export interface OutboxEvent {
  readonly envelope: EventEnvelope
  readonly status: DeliveryStatus
  readonly attempts: number
  readonly lastError: string | null
  readonly deliveredAt: Date | null
}

export interface Delivery {
  readonly destination: string
  readonly status: DeliveryStatus
  readonly attempts: number
  readonly lastError: string | null
  readonly nextAttemptAt: Date
}

export interface OutboxStats {
  readonly pending: number
  readonly delivered: number
  readonly dead: number
  /** Seconds since the oldest pending event was recorded; null when none is pending. */
  readonly oldestPendingAgeSeconds: number | null
}

interface EventRow {
  id: string
  aggregate_type: string
  aggregate_id: string
  event_type: EventType
  payload: EventPayloads[EventType]
  idempotency_key: string
  status: DeliveryStatus
  attempts: number
  last_error: string | null
  created_at: Date
  delivered_at: Date | null
}

interface DeliveryRow {
  event_id: string
  destination: string
  status: DeliveryStatus
  attempts: number
  last_error: string | null
  next_attempt_at: Date
}

/** Matched by name so that only this constraint, never another, means "already recorded". */
const IDEMPOTENCY_CONSTRAINT = 'outbox_events_event_type_idempotency_key_unique'

export class OutboxRepository {
  readonly #db: Knex

  constructor(db: Knex) {
    this.#db = db
  }

  /**
   * Records the event unless one with the same type and idempotency key exists.
   * Returns the new event's id, or undefined when it was already recorded.
   */
  async recordOnce<T extends EventType>(
    event: NewEvent<T>,
    tx: Transaction,
  ): Promise<string | undefined> {
    const id = uuidv7()
    const result = await executor(this.#db, tx).raw<{ rows: { id: string }[] }>(
      `INSERT INTO outbox_events (id, aggregate_type, aggregate_id, event_type, payload, idempotency_key)
       VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT ON CONSTRAINT ${IDEMPOTENCY_CONSTRAINT} DO NOTHING
       RETURNING id`,
      [
        id,
        event.aggregateType,
        event.aggregateId,
        event.type,
        JSON.stringify(event.data),
        event.idempotencyKey ?? defaultIdempotencyKey(event.aggregateType, event.aggregateId),
      ],
    )
    return result.rows[0]?.id
  }

  async find(id: string): Promise<OutboxEvent | undefined> {
    const row = await this.#db<EventRow>('outbox_events').where({ id }).first()
    return row && toOutboxEvent(row)
  }

  /** Adds a pending delivery for each destination the event does not have yet. */
  async ensureDeliveries(eventId: string, destinations: readonly string[]): Promise<void> {
    if (destinations.length === 0) return
    await this.#db('outbox_deliveries')
      .insert(destinations.map((destination) => ({ event_id: eventId, destination })))
      .onConflict(['event_id', 'destination'])
      .ignore()
  }

  async deliveries(eventId: string): Promise<Delivery[]> {
    const rows = await this.#db<DeliveryRow>('outbox_deliveries')
      .where({ event_id: eventId })
      .orderBy('destination')
    return rows.map((row) => ({
      destination: row.destination,
      status: row.status,
      attempts: row.attempts,
      lastError: row.last_error,
      nextAttemptAt: row.next_attempt_at,
    }))
  }

  async markDelivered(eventId: string, destination: string): Promise<void> {
    await this.#db('outbox_deliveries')
      .where({ event_id: eventId, destination, status: 'pending' })
      .update({
        status: 'delivered',
        attempts: this.#db.raw('attempts + 1'),
        delivered_at: this.#db.fn.now(),
        updated_at: this.#db.fn.now(),
      })
  }

  /** A failed attempt: retried at `retryAt`, or dead when there is no retry left. */
  async markFailed(
    eventId: string,
    destination: string,
    failure: { error: string; retryAt: Date | undefined },
  ): Promise<void> {
    await this.#db('outbox_deliveries')
      .where({ event_id: eventId, destination, status: 'pending' })
      .update({
        status: failure.retryAt ? 'pending' : 'dead',
        attempts: this.#db.raw('attempts + 1'),
        last_error: failure.error,
        ...(failure.retryAt ? { next_attempt_at: failure.retryAt } : {}),
        updated_at: this.#db.fn.now(),
      })
  }

  /**
   * Sums the deliveries up on the event row: pending while any is pending, dead when any died,
   * delivered when all arrived; attempts of the most tried destination; the latest error.
   */
  async refreshEventStatus(eventId: string): Promise<OutboxEvent | undefined> {
    await this.#db.raw(
      `UPDATE outbox_events e SET
         status = s.status, attempts = s.attempts, last_error = s.last_error,
         delivered_at = CASE WHEN s.status = 'delivered' THEN coalesce(e.delivered_at, now()) END
       FROM (
         SELECT
           CASE WHEN bool_or(status = 'pending') THEN 'pending'
                WHEN bool_or(status = 'dead') THEN 'dead'
                ELSE 'delivered' END AS status,
           max(attempts) AS attempts,
           (array_agg(destination || ': ' || last_error ORDER BY updated_at DESC)
              FILTER (WHERE last_error IS NOT NULL))[1] AS last_error
         FROM outbox_deliveries WHERE event_id = ?
       ) s
       WHERE e.id = ? AND s.status IS NOT NULL`,
      [eventId, eventId],
    )
    return this.find(eventId)
  }

  /** Pending events nobody has touched for a while: their job may have been lost. */
  async stalePendingEventIds(olderThan: Date, limit: number): Promise<string[]> {
    const rows = await this.#db('outbox_events')
      .select('id')
      .where('status', 'pending')
      .andWhere('created_at', '<', olderThan)
      .orderBy('created_at')
      .limit(limit)
    return rows.map((row: { id: string }) => row.id)
  }

  async stats(): Promise<OutboxStats> {
    const { rows } = await this.#db.raw<{
      rows: { status: DeliveryStatus; count: string; oldest: Date | null }[]
    }>(
      `SELECT status, count(*) AS count, min(created_at) AS oldest FROM outbox_events GROUP BY status`,
    )
    const count = (status: DeliveryStatus) =>
      Number(rows.find((row) => row.status === status)?.count ?? 0)
    const oldest = rows.find((row) => row.status === 'pending')?.oldest
    return {
      pending: count('pending'),
      delivered: count('delivered'),
      dead: count('dead'),
      oldestPendingAgeSeconds: oldest ? Math.round((Date.now() - oldest.getTime()) / 1000) : null,
    }
  }

  /**
   * The pending part of stats() alone, on the (status, created_at) index: cheap enough for every
   * metrics scrape, where stats() also counts the delivered history, which only grows. The age
   * is measured by the database clock, the one created_at was set by.
   */
  async pendingSummary(): Promise<{ count: number; oldestAgeSeconds: number | null }> {
    const { rows } = await this.#db.raw<{ rows: { count: string; age: number | null }[] }>(
      `SELECT count(*) AS count, extract(epoch FROM now() - min(created_at))::float8 AS age
       FROM outbox_events WHERE status = 'pending'`,
    )
    const [row] = rows
    return { count: Number(row?.count ?? 0), oldestAgeSeconds: row?.age ?? null }
  }

  /**
   * Gives dead deliveries a fresh set of attempts, for every dead event or for one event.
   * Returns the ids of the events that are pending again.
   */
  async redrive(
    target: { readonly eventId: string } | { readonly allDead: true },
  ): Promise<string[]> {
    return this.#db.transaction(async (trx) => {
      const events = trx('outbox_events')
        .where('status', 'dead')
        .modify((query) => {
          if ('eventId' in target) query.andWhere('id', target.eventId)
        })
      const ids = (await events.clone().select('id')).map((row: { id: string }) => row.id)
      if (ids.length === 0) return []
      await trx('outbox_deliveries').whereIn('event_id', ids).andWhere('status', 'dead').update({
        status: 'pending',
        attempts: 0,
        next_attempt_at: trx.fn.now(),
        updated_at: trx.fn.now(),
      })
      await trx('outbox_events').whereIn('id', ids).update({ status: 'pending' })
      return ids
    })
  }
}

function toOutboxEvent(row: EventRow): OutboxEvent {
  return {
    envelope: {
      id: row.id,
      type: row.event_type,
      occurredAt: row.created_at.toISOString(),
      aggregate: { type: row.aggregate_type, id: row.aggregate_id },
      idempotencyKey: row.idempotency_key,
      data: row.payload,
    },
    status: row.status,
    attempts: row.attempts,
    lastError: row.last_error,
    deliveredAt: row.delivered_at,
  }
}
