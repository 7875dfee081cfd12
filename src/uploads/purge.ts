import type { Transaction, TransactionRunner } from '../db/transaction.ts'
import type { JobQueue } from '../jobs/boss.ts'
import type { Logger } from '../lib/logger.ts'
import type { OutboxRepository } from '../outbox/outbox.repository.ts'
import { recordFileDeleted } from './file-deleted.ts'
import type { UploadFile, UploadStorage } from './types.ts'
import type { UploadRepository } from './upload.repository.ts'

export interface PurgeDeps {
  readonly uploads: UploadRepository
  readonly outbox: OutboxRepository
  readonly jobs: JobQueue
  readonly storage: UploadStorage
  readonly transactions: TransactionRunner
  readonly batchSize: number
  readonly failedRetentionMs: number
  readonly logger: Logger
  readonly now?: () => number
}

export interface PurgeReport {
  /** Unfinished uploads idle past UPLOAD_EXPIRATION: bytes removed, row EXPIRED. */
  readonly expired: number
  /** STORED files past FILE_UPLOAD_TTL: bytes removed, row DELETED, file.deleted recorded. */
  readonly deleted: number
  /** FAILED rows past FAILED_UPLOAD_RETENTION: removed. */
  readonly failedRemoved: number
}

/**
 * A run handles at most this many batches per kind; the next run goes on. Each batch is its own
 * short transaction, so a backlog of thousands never holds locks that requests wait on (the
 * cleanup built into @tus/file-store stalls HEAD requests at 10k uploads, tus-node-server #320).
 */
const MAX_BATCHES_PER_RUN = 20

export async function purge(deps: PurgeDeps): Promise<PurgeReport> {
  const now = new Date(deps.now?.() ?? Date.now())
  const report = {
    expired: await inBatches(deps, (tx) => expireUnfinished(deps, now, tx)),
    deleted: await inBatches(deps, (tx) => deleteOutlived(deps, now, tx)),
    failedRemoved: await inBatches(deps, (tx) => removeOldFailures(deps, now, tx)),
  }
  if (report.expired + report.deleted + report.failedRemoved > 0)
    deps.logger.info('purged uploads', { ...report })
  return report
}

interface BatchResult {
  readonly locked: number
  readonly done: number
}

async function inBatches(
  deps: PurgeDeps,
  batch: (tx: Transaction) => Promise<BatchResult>,
): Promise<number> {
  let total = 0
  for (let run = 0; run < MAX_BATCHES_PER_RUN; run++) {
    const result = await deps.transactions.inTransaction(batch)
    total += result.done
    if (result.locked < deps.batchSize) break
  }
  return total
}

async function expireUnfinished(deps: PurgeDeps, now: Date, tx: Transaction): Promise<BatchResult> {
  const rows = await deps.uploads.lockExpired('UPLOADING', now, deps.batchSize, tx)
  const removed = await removeBytes(deps, rows)
  await deps.uploads.markExpired(
    removed.map((file) => file.id),
    tx,
  )
  return { locked: rows.length, done: removed.length }
}

async function deleteOutlived(deps: PurgeDeps, now: Date, tx: Transaction): Promise<BatchResult> {
  const rows = await deps.uploads.lockExpired('STORED', now, deps.batchSize, tx)
  const removed = await removeBytes(deps, rows)
  for (const file of removed) {
    await deps.uploads.markDeleted(file.id, tx)
    await recordFileDeleted(deps, file, 'ttl_expired', tx)
  }
  return { locked: rows.length, done: removed.length }
}

async function removeOldFailures(
  deps: PurgeDeps,
  now: Date,
  tx: Transaction,
): Promise<BatchResult> {
  const cutoff = new Date(now.getTime() - deps.failedRetentionMs)
  const rows = await deps.uploads.lockFailedBefore(cutoff, deps.batchSize, tx)
  // A failed upload's bytes were removed when it failed; this catches a removal that did not.
  const removed = await removeBytes(deps, rows)
  await deps.uploads.deleteRows(
    removed.map((file) => file.id),
    tx,
  )
  return { locked: rows.length, done: removed.length }
}

/** Removes each file's bytes; a file whose removal fails keeps its row for the next run. */
async function removeBytes(deps: PurgeDeps, files: readonly UploadFile[]): Promise<UploadFile[]> {
  const removed: UploadFile[] = []
  for (const file of files) {
    try {
      await deps.storage.remove(file.storageKey)
      removed.push(file)
    } catch (error) {
      deps.logger.warn('purge could not remove the bytes of an upload', {
        uploadId: file.id,
        error,
      })
    }
  }
  return removed
}
