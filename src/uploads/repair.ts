import type { TransactionRunner } from '../db/transaction.ts'
import type { Logger } from '../lib/logger.ts'
import { type BatchCompletionDeps, completeBatchIfReady } from './batch-completion.ts'
import type { FinishUpload } from './finish-upload.ts'
import type { UploadStorage } from './types.ts'
import type { UploadRepository } from './upload.repository.ts'

export interface RepairDeps extends BatchCompletionDeps {
  readonly uploads: UploadRepository
  readonly transactions: TransactionRunner
  readonly storage: UploadStorage
  readonly finishUpload: FinishUpload
  readonly batchSize: number
  readonly logger: Logger
  readonly now?: () => number
}

export interface RepairReport {
  readonly checked: number
  readonly finished: number
  readonly batchesCompleted: number
}

/** An upload this long without activity is no longer in the middle of its last PATCH. */
export const REPAIR_IDLE_MS = 60_000

/**
 * Finishes UPLOADING rows whose bytes are all in the store: the server died in or before the
 * finish step, and @tus/server never runs onUploadFinish again. The same idempotent finish code
 * runs, so a repair racing a client's HEAD still gives one event.
 */
export async function repair(deps: RepairDeps): Promise<RepairReport> {
  const { checked, finished } = await repairStalledUploads(deps)
  return { checked, finished, batchesCompleted: await completeLeftoverBatches(deps) }
}

async function repairStalledUploads(
  deps: RepairDeps,
): Promise<{ checked: number; finished: number }> {
  const idleBefore = new Date((deps.now?.() ?? Date.now()) - REPAIR_IDLE_MS)
  const candidates = await deps.uploads.repairCandidates(idleBefore, deps.batchSize)
  let finished = 0
  for (const file of candidates) {
    try {
      const progress = await deps.storage.progress(file.storageKey)
      if (progress?.size === undefined || progress.offset < progress.size) continue
      const result = await deps.finishUpload(file.id)
      finished++
      deps.logger.info('repaired an upload whose finish step never ran', {
        uploadId: file.id,
        status: result.status,
      })
    } catch (error) {
      deps.logger.warn('could not repair an upload', { uploadId: file.id, error })
    }
  }
  await deps.uploads.markRepairChecked(candidates.map((file) => file.id))
  return { checked: candidates.length, finished }
}

/**
 * Completion is decided when a file of the batch is stored or completion is requested; a batch
 * whose last unfinished or failed file is deleted or expires instead is completed here.
 */
async function completeLeftoverBatches(deps: RepairDeps): Promise<number> {
  let completed = 0
  for (const batchId of await deps.batches.readyToComplete(deps.batchSize)) {
    const done = await deps.transactions.inTransaction((tx) =>
      completeBatchIfReady(deps, batchId, tx),
    )
    if (done) completed++
  }
  return completed
}
