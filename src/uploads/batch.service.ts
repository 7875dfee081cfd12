import { v7 as uuidv7 } from 'uuid'
import type { TransactionRunner } from '../db/transaction.ts'
import { AppError, TooManyError } from '../lib/errors.ts'
import { type BatchCompletionDeps, completeBatchIfReady } from './batch-completion.ts'
import { isVisibleTo, type UploadBatch, type UploadFile, type Viewer } from './types.ts'
import type { UploadRepository } from './upload.repository.ts'

export interface BatchView {
  readonly batch: UploadBatch
  readonly files: readonly UploadFile[]
  /** True once the batch has files and every one of them is STORED. */
  readonly allStored: boolean
}

/** A batch holds at most this many files; the API lists them in one response. */
export const MAX_FILES_PER_BATCH = 1000

export interface BatchServiceDeps extends BatchCompletionDeps {
  readonly uploads: UploadRepository
  readonly transactions: TransactionRunner
  /** Per owner (anonymous batches have none to count); beyond it 429. */
  readonly maxOpenBatchesPerOwner: number
}

/** An owner at its batch limit closes batches it has; a minute is a fair first guess. */
const BATCH_LIMIT_RETRY_AFTER_SECONDS = 60

export class BatchService {
  readonly #deps: BatchServiceDeps

  constructor(deps: BatchServiceDeps) {
    this.#deps = deps
  }

  async create(owner: string | null, expectedFiles: number | null): Promise<UploadBatch> {
    if (
      expectedFiles !== null &&
      (!Number.isInteger(expectedFiles) || expectedFiles < 1 || expectedFiles > MAX_FILES_PER_BATCH)
    ) {
      throw new AppError(
        'invalid',
        'invalid_expected_files',
        `expectedFiles must be a whole number from 1 to ${MAX_FILES_PER_BATCH}.`,
      )
    }
    if (owner === null) return this.#deps.batches.insert({ id: uuidv7(), owner, expectedFiles })
    const { maxOpenBatchesPerOwner: max } = this.#deps
    const batch = await this.#deps.batches.insertWithinLimit(
      { id: uuidv7(), owner, expectedFiles },
      max,
    )
    if (batch === 'too_many_batches') {
      throw new TooManyError(
        'too_many_open_batches',
        `You have ${max} open batches, the most allowed; complete some (POST /api/batches/{id}/complete) first.`,
        BATCH_LIMIT_RETRY_AFTER_SECONDS,
      )
    }
    return batch
  }

  async get(id: string, viewer: Viewer): Promise<BatchView> {
    const batch = await this.#existing(id, viewer)
    const files = await this.#deps.uploads.list({ batchId: id, limit: MAX_FILES_PER_BATCH })
    const allStored = files.length > 0 && files.every((file) => file.status === 'STORED')
    return { batch, files, allStored }
  }

  /** No more files are coming: batch.completed follows once every file is STORED. Idempotent. */
  async requestCompletion(id: string, viewer: Viewer): Promise<BatchView> {
    await this.#existing(id, viewer)
    await this.#deps.transactions.inTransaction(async (tx) => {
      await this.#deps.batches.requestCompletion(id, tx)
      await completeBatchIfReady(this.#deps, id, tx)
    })
    return this.get(id, viewer)
  }

  /** Another owner's batch answers exactly like a missing one. */
  async #existing(id: string, viewer: Viewer): Promise<UploadBatch> {
    const found = await this.#deps.batches.findById(id)
    const batch = found && isVisibleTo(found, viewer) ? found : undefined
    if (!batch) throw new AppError('not_found', 'batch_not_found', `No batch with id ${id}.`)
    return batch
  }
}
