import type { Knex } from 'knex'
import type { UploadBatch } from './types.ts'

interface BatchRow {
  id: string
  owner: string | null
  created_at: Date
}

export class BatchRepository {
  readonly #db: Knex

  constructor(db: Knex) {
    this.#db = db
  }

  async insert(batch: { id: string; owner: string | null }): Promise<UploadBatch> {
    const [row] = await this.#db<BatchRow>('upload_batches').insert(batch).returning('*')
    if (!row) throw new Error('inserting an upload_batches row returned nothing')
    return toBatch(row)
  }

  async findById(id: string): Promise<UploadBatch | undefined> {
    const row = await this.#db<BatchRow>('upload_batches').where({ id }).first()
    return row && toBatch(row)
  }
}

function toBatch(row: BatchRow): UploadBatch {
  return { id: row.id, owner: row.owner, createdAt: row.created_at }
}
