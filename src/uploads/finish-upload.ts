import type { TransactionRunner } from '../db/transaction.ts'
import type { JobQueue } from '../jobs/boss.ts'
import { AppError, type ErrorKind } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import type { OutboxRepository } from '../outbox/outbox.repository.ts'
import type { BatchRepository } from './batch.repository.ts'
import { completeBatchIfReady } from './batch-completion.ts'
import {
  contradictsDeclaredType,
  detectContentType,
  isAllowedType,
  SNIFF_BYTES,
} from './content-type.ts'
import { type SizeLimits, sizeRefusal } from './size-limits.ts'
import type { StreamedDigest, StreamedDigests, UploadFile, UploadStorage } from './types.ts'
import type { UploadRepository } from './upload.repository.ts'

export interface UploadPolicy extends SizeLimits {
  readonly allowedTypes: readonly string[]
  readonly storedTtlMs: number | null
}

export interface FinishUploadDeps {
  readonly uploads: UploadRepository
  readonly batches: BatchRepository
  readonly outbox: OutboxRepository
  readonly jobs: JobQueue
  readonly storage: UploadStorage
  /** Digests made as the bytes arrived; without one, the stored bytes are read back. */
  readonly digests: StreamedDigests
  readonly transactions: TransactionRunner
  readonly policy: UploadPolicy
  /** Base of the stable API URL put into events. */
  readonly publicUrl: string
  readonly logger: Logger
}

/**
 * Turns an upload whose bytes are complete into a STORED file with one `file.stored` event and
 * one delivery job, or into a FAILED file with no event. Idempotent: callers may race (the final
 * PATCH, a HEAD from a resuming client, the repair job) and still produce one row, one event,
 * one job. Resolves with the row as it ends up.
 */
export type FinishUpload = (id: string) => Promise<UploadFile>

interface Rejection {
  readonly code: string
  readonly message: string
  readonly detectedType: string | null
}

const REJECTION_KINDS: Readonly<Record<string, ErrorKind>> = {
  file_too_large: 'too_large',
  unsupported_file_type: 'unsupported_type',
  content_type_mismatch: 'unsupported_type',
  empty_file: 'invalid',
  file_too_small: 'invalid',
}

export function createFinishUpload(deps: FinishUploadDeps): FinishUpload {
  // One finish per upload per process at a time; across processes the row lock decides.
  const running = new Map<string, Promise<UploadFile>>()
  return (id) => {
    const existing = running.get(id)
    if (existing) return existing
    const finishing = finish(deps, id)
      .then((file) => {
        // STORED or FAILED: the digest has served, whoever finished the upload.
        deps.digests.forget(file.storageKey)
        return file
      })
      .finally(() => running.delete(id))
    running.set(id, finishing)
    return finishing
  }
}

/** The error a client sees for a FAILED upload: the reason it was rejected. */
export function failureError(file: UploadFile): AppError {
  const kind = REJECTION_KINDS[file.errorCode ?? ''] ?? 'invalid'
  return new AppError(
    kind,
    file.errorCode ?? 'upload_failed',
    file.errorMessage ?? 'The upload failed.',
  )
}

async function finish(deps: FinishUploadDeps, id: string): Promise<UploadFile> {
  const file = await deps.uploads.findById(id)
  if (!file) throw new AppError('not_found', 'upload_not_found', `No upload with id ${id}.`)
  // A partial upload is never a file: its bytes are finished as part of its final upload.
  if (file.status !== 'UPLOADING' || file.concat === 'partial') return file

  const progress = await deps.storage.progress(file.storageKey)
  if (!progress || progress.size === undefined || progress.offset < progress.size) {
    throw new AppError(
      'conflict',
      'upload_incomplete',
      `Upload ${id} has not received all its bytes.`,
    )
  }
  // Hashed as the bytes streamed in when this process received them all, in order; otherwise
  // (a restart, chunks served by another instance, a broken-off write) read back from the store.
  const streamed = await deps.digests.digestOf(file.storageKey, progress.size)
  let examined: Examined
  try {
    examined = await examine(deps, file, progress.size, streamed)
  } catch (error) {
    // Reading the bytes failed: a concurrent finisher may have failed the upload, or a delete
    // or purge ended it, and removed its bytes under us. Only that is an answer; anything else
    // (the transactions below included) is an error to report, never swallowed.
    const current = await deps.uploads.findById(id)
    if (current && current.status !== 'UPLOADING' && current.status !== 'STORED') return current
    throw error
  }
  if ('rejection' in examined) return markFailed(deps, file, progress.size, examined.rejection)
  return markStored(
    deps,
    file,
    { size: progress.size, ...examined },
    streamed ? 'streamed' : 'read back',
  )
}

type Examined =
  | { readonly rejection: Rejection }
  | { readonly detectedType: string; readonly sha256: string }

/** The verdict on the bytes, and for a valid file its SHA-256 (streamed, or read back). */
async function examine(
  deps: FinishUploadDeps,
  file: UploadFile,
  size: number,
  streamed: StreamedDigest | undefined,
): Promise<Examined> {
  const verdict = await inspect(deps, file, size, streamed)
  if ('rejection' in verdict) return verdict
  const sha256 = streamed?.sha256 ?? (await deps.storage.sha256(file.storageKey))
  return { ...verdict, sha256 }
}

type Verdict = { readonly rejection: Rejection } | { readonly detectedType: string }

/**
 * Size first, then the type sniffed from the first bytes; only a valid file is read back to be
 * hashed.
 */
async function inspect(
  deps: FinishUploadDeps,
  file: UploadFile,
  size: number,
  streamed: StreamedDigest | undefined,
): Promise<Verdict> {
  const refusal = sizeRefusal(size, deps.policy, 'received')
  if (refusal) {
    return { rejection: { code: refusal.code, message: refusal.message, detectedType: null } }
  }
  // Nothing to sniff and nothing to harm: an empty file (FILE_UPLOAD_MIN_SIZE=0) is what it was
  // declared as, an allowed type checked at creation, or application/octet-stream.
  if (size === 0) return { detectedType: file.declaredType ?? 'application/octet-stream' }
  const head = streamed?.head ?? (await deps.storage.readHead(file.storageKey, SNIFF_BYTES))
  return typeVerdict(deps.policy, file, head)
}

/** The type sniffed from the head, and whether it is allowed and agrees with the declared one. */
async function typeVerdict(
  policy: UploadPolicy,
  file: UploadFile,
  head: Uint8Array,
): Promise<Verdict> {
  const detectedType = await detectContentType(head, file.declaredType)
  if (!isAllowedType(detectedType, policy.allowedTypes)) {
    const claimed = file.declaredType ? ` (declared as ${file.declaredType})` : ''
    const message = `The file's content is ${detectedType}${claimed}, which is not an allowed type. Allowed: ${policy.allowedTypes.join(', ')}.`
    return { rejection: { code: 'unsupported_file_type', message, detectedType } }
  }
  if (contradictsDeclaredType(file.declaredType, detectedType)) {
    const message = `The file's content is ${detectedType}, but it was declared as ${file.declaredType}.`
    return { rejection: { code: 'content_type_mismatch', message, detectedType } }
  }
  return { detectedType }
}

/**
 * Checks an upload's type as soon as its first SNIFF_BYTES have arrived, rather than after all of
 * it: a 30 MB file of a refused type is refused after 64 KiB. Resolves with the row, FAILED (its
 * bytes removed) when the type is refused, and unchanged when there is nothing to decide yet:
 * fewer bytes so far, a complete upload (the finish decides), or a head this process did not see
 * arrive (another instance, a restart: the finish reads it back and decides).
 */
export type ScreenUpload = (id: string) => Promise<UploadFile | undefined>

export function createScreenUpload(deps: FinishUploadDeps): ScreenUpload {
  return async (id) => {
    const file = await deps.uploads.findById(id)
    if (file?.status !== 'UPLOADING') return file
    // The head kept in memory first: the store is asked for the offset only to refuse (on S3,
    // reading it costs requests).
    const head = deps.digests.headOf(file.storageKey, SNIFF_BYTES)
    if (!head) return file
    const verdict = await typeVerdict(deps.policy, file, head)
    if (!('rejection' in verdict)) return file
    const progress = await deps.storage.progress(file.storageKey)
    if (!progress || progress.offset < SNIFF_BYTES || progress.offset === progress.size) return file
    deps.digests.forget(file.storageKey)
    return markFailed(deps, file, progress.offset, verdict.rejection)
  }
}

/** The bytes one request wrote: from the offset it started at to the offset it left. */
export interface Written {
  readonly from: number
  readonly to: number
}

/**
 * The upload, FAILED, when the write that brought in its first SNIFF_BYTES showed a refused
 * type; undefined otherwise. Only that one write of an upload costs a check. A check that fails
 * is logged and leaves the write accepted: its bytes are stored, and the finish checks again.
 */
export async function refusedByFirstBytes(
  screen: ScreenUpload,
  id: string,
  written: Written,
  logger: Logger,
): Promise<UploadFile | undefined> {
  if (written.from >= SNIFF_BYTES || written.to < SNIFF_BYTES) return undefined
  try {
    const file = await screen(id)
    return file?.status === 'FAILED' ? file : undefined
  } catch (error) {
    logger.warn('could not check the type of an upload from its first bytes', {
      uploadId: id,
      error,
    })
    return undefined
  }
}

async function markStored(
  deps: FinishUploadDeps,
  file: UploadFile,
  facts: { size: number; sha256: string; detectedType: string },
  digest: 'streamed' | 'read back',
): Promise<UploadFile> {
  const { storedTtlMs } = deps.policy
  const outcome = await deps.transactions.inTransaction(async (tx) => {
    const locked = await deps.uploads.lockById(file.id, tx)
    if (locked?.status !== 'UPLOADING') return { file: locked ?? file, storedNow: false }
    const stored = await deps.uploads.markStored(
      file.id,
      { ...facts, expiresAt: storedTtlMs === null ? null : new Date(Date.now() + storedTtlMs) },
      tx,
    )
    const eventId = await deps.outbox.recordOnce(
      {
        aggregateType: 'UploadFile',
        aggregateId: file.id,
        type: 'file.stored',
        data: {
          fileId: file.id,
          batchId: file.batchId,
          filename: file.filename,
          contentType: facts.detectedType,
          size: facts.size,
          sha256: facts.sha256,
          storageKey: file.storageKey,
          url: `${deps.publicUrl}/api/files/${file.id}/content`,
        },
      },
      tx,
    )
    if (eventId)
      await deps.jobs.enqueue('outbox.deliver', { eventId }, { tx, singletonKey: eventId })
    if (file.batchId) await completeBatchIfReady(deps, file.batchId, tx)
    return { file: stored, storedNow: true }
  })
  if (outcome.storedNow) {
    deps.logger.info('upload stored', {
      uploadId: file.id,
      size: facts.size,
      contentType: facts.detectedType,
      digest,
    })
  }
  return outcome.file
}

async function markFailed(
  deps: FinishUploadDeps,
  file: UploadFile,
  size: number,
  rejection: Rejection,
): Promise<UploadFile> {
  const outcome = await deps.transactions.inTransaction(async (tx) => {
    const locked = await deps.uploads.lockById(file.id, tx)
    if (locked?.status !== 'UPLOADING') return { file: locked ?? file, failedNow: false }
    const failed = await deps.uploads.markFailed(
      file.id,
      {
        code: rejection.code,
        message: rejection.message,
        size,
        detectedType: rejection.detectedType,
      },
      tx,
    )
    return { file: failed, failedNow: true }
  })
  if (outcome.failedNow) {
    deps.logger.info('upload rejected', { uploadId: file.id, code: rejection.code })
    await removeRejectedBytes(deps, file)
  }
  return outcome.file
}

/** The row already says FAILED; bytes that cannot be removed now are left for the purge job. */
async function removeRejectedBytes(deps: FinishUploadDeps, file: UploadFile): Promise<void> {
  try {
    await deps.storage.remove(file.storageKey)
  } catch (error) {
    deps.logger.warn('could not remove the bytes of a rejected upload', {
      uploadId: file.id,
      error,
    })
  }
}
