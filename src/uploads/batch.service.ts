import { v7 as uuidv7 } from 'uuid'
import { AppError } from '../lib/errors.ts'
import type { BatchRepository } from './batch.repository.ts'
import type { UploadBatch, UploadFile } from './types.ts'
import type { UploadRepository } from './upload.repository.ts'

export interface BatchView {
  readonly batch: UploadBatch
  readonly files: readonly UploadFile[]
  /** True once the batch has files and every one of them is STORED. */
  readonly allStored: boolean
}

/** A batch holds at most this many files; the API lists them in one response. */
export const MAX_FILES_PER_BATCH = 1000

export class BatchService {
  readonly #batches: BatchRepository
  readonly #uploads: UploadRepository

  constructor(batches: BatchRepository, uploads: UploadRepository) {
    this.#batches = batches
    this.#uploads = uploads
  }

  async create(owner: string | null): Promise<UploadBatch> {
    return this.#batches.insert({ id: uuidv7(), owner })
  }

  async get(id: string): Promise<BatchView> {
    const batch = await this.#batches.findById(id)
    if (!batch) throw new AppError('not_found', 'batch_not_found', `No batch with id ${id}.`)
    const files = await this.#uploads.list({ batchId: id, limit: MAX_FILES_PER_BATCH })
    const allStored = files.length > 0 && files.every((file) => file.status === 'STORED')
    return { batch, files, allStored }
  }
}
