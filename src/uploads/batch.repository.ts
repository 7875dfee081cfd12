import type { Knex } from 'knex'
import { lockOwner } from '../db/advisory-lock.ts'
import { asKnexTransaction, executor, transactionRunner } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import type { UploadBatch, UploadStatus } from './types.ts'

interface BatchRow {
  id: string
  owner: string | null
  expected_files: number | null
  complete_requested_at: Date | null
  completed_at: Date | null
  created_at: Date
}

const TABLE = 'upload_batches'

export class BatchRepository {
  readonly #db: Knex

  constructor(db: Knex) {
    this.#db = db
  }

  async insert(batch: {
    id: string
    owner: string | null
    expectedFiles: number | null
  }): Promise<UploadBatch> {
    const [row] = await this.#db<BatchRow>(TABLE)
      .insert({ id: batch.id, owner: batch.owner, expected_files: batch.expectedFiles })
      .returning('*')
    if (!row) throw new Error('inserting an upload_batches row returned nothing')
    return toBatch(row)
  }

  /**
   * Inserts an owner's batch unless the owner already has `maxOpen` open batches (neither
   * declared complete nor completed), counted under the owner's lock.
   */
  async insertWithinLimit(
    batch: { id: string; owner: string; expectedFiles: number | null },
    maxOpen: number,
  ): Promise<UploadBatch | 'too_many_batches'> {
    return transactionRunner(this.#db).inTransaction(async (tx) => {
      const trx = asKnexTransaction(tx)
      await lockOwner(trx, batch.owner)
      const [row] = await trx(TABLE)
        .where({ owner: batch.owner })
        .whereNull('complete_requested_at')
        .whereNull('completed_at')
        .count<{ count: string }[]>({ count: '*' })
      if (Number(row?.count ?? 0) >= maxOpen) return 'too_many_batches'
      const [inserted] = await trx<BatchRow>(TABLE)
        .insert({ id: batch.id, owner: batch.owner, expected_files: batch.expectedFiles })
        .returning('*')
      if (!inserted) throw new Error('inserting an upload_batches row returned nothing')
      return toBatch(inserted)
    })
  }

  async findById(id: string): Promise<UploadBatch | undefined> {
    const row = await this.#db<BatchRow>(TABLE).where({ id }).first()
    return row && toBatch(row)
  }

  /** Holds the batch's lock until the transaction ends, so completion is decided once. */
  async lockById(id: string, tx: Transaction): Promise<UploadBatch | undefined> {
    const row = await executor(this.#db, tx)<BatchRow>(TABLE).where({ id }).forUpdate().first()
    return row && toBatch(row)
  }

  async requestCompletion(id: string, tx: Transaction): Promise<void> {
    await executor(
      this.#db,
      tx,
    )(TABLE)
      .where({ id })
      .whereNull('complete_requested_at')
      .update({ complete_requested_at: this.#db.fn.now(), updated_at: this.#db.fn.now() })
  }

  async markCompleted(id: string, tx: Transaction): Promise<void> {
    await executor(
      this.#db,
      tx,
    )(TABLE)
      .where({ id })
      .update({ completed_at: this.#db.fn.now(), updated_at: this.#db.fn.now() })
  }

  /**
   * Declared batches not yet completed in which nothing is uploading or failed and something is
   * STORED: a file left such a batch (deleted, expired) after its last file was stored.
   */
  async readyToComplete(limit: number): Promise<string[]> {
    const rows = await this.#db<BatchRow>(`${TABLE} as batch`)
      .select('batch.id')
      .whereNull('batch.completed_at')
      .andWhere((query) =>
        query.whereNotNull('batch.complete_requested_at').orWhereNotNull('batch.expected_files'),
      )
      .whereNotExists(
        this.#db('upload_files')
          .whereRaw('batch_id = batch.id')
          .whereIn('status', ['UPLOADING', 'FAILED']),
      )
      .whereExists(
        this.#db('upload_files').whereRaw('batch_id = batch.id').where({ status: 'STORED' }),
      )
      .orderBy('batch.id')
      .limit(limit)
    return rows.map((row) => row.id)
  }

  async fileStatuses(
    batchId: string,
    tx: Transaction,
  ): Promise<{ id: string; status: UploadStatus }[]> {
    return executor(
      this.#db,
      tx,
    )('upload_files')
      .select('id', 'status')
      .where({ batch_id: batchId })
      .orderBy('id')
  }
}

function toBatch(row: BatchRow): UploadBatch {
  return {
    id: row.id,
    owner: row.owner,
    expectedFiles: row.expected_files,
    completeRequestedAt: row.complete_requested_at,
    completedAt: row.completed_at,
    createdAt: row.created_at,
  }
}
