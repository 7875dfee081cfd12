import type { Transaction } from '../db/transaction.ts'
import type { JobQueue } from '../jobs/boss.ts'
import type { FileDeletedData } from '../outbox/events.ts'
import type { OutboxRepository } from '../outbox/outbox.repository.ts'
import type { UploadFile } from './types.ts'

export interface FileDeletedDeps {
  readonly outbox: OutboxRepository
  readonly jobs: JobQueue
}

/**
 * Records `file.deleted` for a file that was announced as stored, with its delivery job, in the
 * caller's transaction: consumers that acted on `file.stored` learn that the bytes are gone.
 */
export async function recordFileDeleted(
  deps: FileDeletedDeps,
  file: UploadFile,
  reason: FileDeletedData['reason'],
  tx: Transaction,
): Promise<void> {
  const eventId = await deps.outbox.recordOnce(
    {
      aggregateType: 'UploadFile',
      aggregateId: file.id,
      type: 'file.deleted',
      data: { fileId: file.id, batchId: file.batchId, storageKey: file.storageKey, reason },
    },
    tx,
  )
  if (eventId) await deps.jobs.enqueue('outbox.deliver', { eventId }, { tx, singletonKey: eventId })
}
