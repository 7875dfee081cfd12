import type { Knex } from 'knex'
import { v7 as uuidv7 } from 'uuid'
import { executor } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import { defaultIdempotencyKey, type EventType, type NewEvent } from './events.ts'

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
}
