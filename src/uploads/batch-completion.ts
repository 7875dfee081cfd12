import type { Transaction } from '../db/transaction.ts'
import type { JobQueue } from '../jobs/boss.ts'
import type { OutboxRepository } from '../outbox/outbox.repository.ts'
import type { BatchRepository } from './batch.repository.ts'
import type { UploadStatus } from './types.ts'

export interface BatchCompletionDeps {
  readonly batches: BatchRepository
  readonly outbox: OutboxRepository
  readonly jobs: JobQueue
  readonly publicUrl: string
}

/** Deleted and expired files left the batch; every other file counts. */
const LEFT_THE_BATCH: ReadonlySet<UploadStatus> = new Set(['DELETED', 'EXPIRED'])

/**
 * Records `batch.completed` once, inside the caller's transaction, when a batch that was declared
 * complete (by POST /complete, or by an expected file count) has every file STORED. Called after
 * each file of a batch is stored and when completion is requested; the batch row lock makes
 * concurrent callers decide one after the other.
 */
export async function completeBatchIfReady(
  deps: BatchCompletionDeps,
  batchId: string,
  tx: Transaction,
): Promise<boolean> {
  const batch = await deps.batches.lockById(batchId, tx)
  if (!batch || batch.completedAt) return false
  const declared = batch.completeRequestedAt !== null || batch.expectedFiles !== null
  if (!declared) return false
  const files = (await deps.batches.fileStatuses(batchId, tx)).filter(
    (file) => !LEFT_THE_BATCH.has(file.status),
  )
  const allStored = files.length > 0 && files.every((file) => file.status === 'STORED')
  const enough = batch.expectedFiles === null || files.length >= batch.expectedFiles
  if (!allStored || !enough) return false
  await deps.batches.markCompleted(batchId, tx)
  const eventId = await deps.outbox.recordOnce(
    {
      aggregateType: 'UploadBatch',
      aggregateId: batchId,
      type: 'batch.completed',
      data: {
        batchId,
        fileIds: files.map((file) => file.id),
        url: `${deps.publicUrl}/api/batches/${batchId}`,
      },
    },
    tx,
  )
  if (eventId) await deps.jobs.enqueue('outbox.deliver', { eventId }, { tx, singletonKey: eventId })
  return true
}
