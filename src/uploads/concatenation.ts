import type { TransactionRunner } from '../db/transaction.ts'
import { AppError } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import { type FinishUpload, failureError } from './finish-upload.ts'
import {
  isVisibleTo,
  type StoredPart,
  type UploadFile,
  type UploadStorage,
  type Viewer,
} from './types.ts'
import type { NewUpload, UploadRepository } from './upload.repository.ts'

/**
 * The most partial uploads one final may join. tus-js-client sends one per `parallelUploads`
 * (a handful); each costs a row lookup and, on S3, a part copy. 256 relative URLs fill about
 * 11 KiB of Upload-Concat, within the request header limit.
 */
export const MAX_PARTIAL_UPLOADS = 256

export interface ConcatenationDeps {
  readonly uploads: UploadRepository
  readonly transactions: TransactionRunner
  readonly storage: UploadStorage
  readonly finishUpload: FinishUpload
  readonly maxSize: number
  readonly logger: Logger
  readonly now: () => number
}

/** A partial upload whose bytes are all there, ready to be joined. */
interface CompletePartial {
  readonly file: UploadFile
  readonly part: StoredPart
}

/**
 * tus concatenation, "final" creation: checks every partial (the viewer's, a partial, complete,
 * unclaimed, named once), then returns their parts and their total size. Another owner's partial
 * answers exactly like a missing one.
 */
export async function completePartials(
  deps: ConcatenationDeps,
  partialIds: readonly string[],
  viewer: Viewer,
): Promise<{ partials: CompletePartial[]; size: number }> {
  if (partialIds.length === 0) {
    throw new AppError(
      'invalid',
      'invalid_upload_concat',
      'A final upload names no partial uploads.',
    )
  }
  if (partialIds.length > MAX_PARTIAL_UPLOADS) {
    throw new AppError(
      'invalid',
      'too_many_partial_uploads',
      `A final upload joins at most ${MAX_PARTIAL_UPLOADS} partial uploads.`,
    )
  }
  const duplicate = partialIds.find((id, index) => partialIds.indexOf(id) !== index)
  if (duplicate) {
    throw new AppError(
      'invalid',
      'duplicate_partial_upload',
      `Partial upload ${duplicate} is named twice; each partial is joined once.`,
    )
  }
  const partials: CompletePartial[] = []
  for (const id of partialIds) partials.push(await completePartial(deps, id, viewer))
  const size = partials.reduce((total, { part }) => total + part.size, 0)
  if (size > deps.maxSize) {
    throw new AppError(
      'too_large',
      'file_too_large',
      `The partial uploads hold ${size} bytes together; the limit is ${deps.maxSize} bytes.`,
    )
  }
  if (size === 0) throw new AppError('invalid', 'empty_file', 'The file is empty.')
  return { partials, size }
}

/**
 * The final already made of exactly these partials, in this order, when the viewer asks again: a
 * client whose connection broke before the 201 arrived repeats its POST (tus-js-client restarts
 * the whole upload, finds its partials complete, and asks for the same final).
 */
export async function existingFinal(
  deps: ConcatenationDeps,
  partialIds: readonly string[],
  viewer: Viewer,
): Promise<UploadFile | undefined> {
  const first = partialIds[0] === undefined ? undefined : await deps.uploads.findById(partialIds[0])
  if (!first?.finalId || !isVisibleTo(first, viewer)) return undefined
  const final = await deps.uploads.findById(first.finalId)
  const same = final?.partialIds?.join(' ') === partialIds.join(' ')
  return final?.status === 'STORED' && same ? final : undefined
}

async function completePartial(
  deps: ConcatenationDeps,
  id: string,
  viewer: Viewer,
): Promise<CompletePartial> {
  const found = await deps.uploads.findById(id)
  const file = found && isVisibleTo(found, viewer) ? found : undefined
  if (!file) {
    throw new AppError('not_found', 'partial_upload_not_found', `No partial upload with id ${id}.`)
  }
  if (file.concat !== 'partial') {
    throw new AppError(
      'invalid',
      'not_a_partial_upload',
      `Upload ${id} was not created with Upload-Concat: partial, so it cannot be joined.`,
    )
  }
  const expired = file.expiresAt !== null && file.expiresAt.getTime() <= deps.now()
  if (file.status !== 'UPLOADING' || expired) {
    throw new AppError('gone', 'partial_upload_gone', `Partial upload ${id} is gone.`)
  }
  if (file.finalId !== null) throw claimedError(id)
  const progress = await deps.storage.progress(file.storageKey)
  if (!progress || progress.size === undefined || progress.offset < progress.size) {
    const received = progress?.offset ?? 0
    throw new AppError(
      'invalid',
      'partial_upload_unfinished',
      `Partial upload ${id} has ${received} of ${progress?.size ?? 'an unknown number of'} bytes; a final upload joins complete partials only.`,
    )
  }
  return { file, part: { key: file.storageKey, size: progress.size } }
}

function claimedError(id: string): AppError {
  return new AppError(
    'conflict',
    'partial_upload_claimed',
    `Partial upload ${id} belongs to another final upload.`,
  )
}

/**
 * Records the final upload and claims its partials in one transaction (a racing final finds them
 * claimed and gets 409), joins their bytes in the store, then runs the one finish every upload
 * goes through. Whatever the outcome, STORED or FAILED, the partials' bytes are removed.
 */
export async function joinFinal(
  deps: ConcatenationDeps,
  row: NewUpload,
  partials: readonly CompletePartial[],
  metadata: Readonly<Record<string, string | null>> | undefined,
): Promise<UploadFile> {
  const partialIds = partials.map(({ file }) => file.id)
  const final = await deps.transactions.inTransaction(async (tx) => {
    const inserted = await deps.uploads.insert({ ...row, concat: 'final', partialIds }, tx)
    if (!(await deps.uploads.claimPartials(inserted.id, partialIds, tx))) {
      const taken = await Promise.all(partialIds.map((id) => deps.uploads.findById(id, tx)))
      throw claimedError(taken.find((file) => file?.finalId)?.id ?? partialIds.join(', '))
    }
    return inserted
  })
  try {
    await deps.storage.concatenate(
      final.storageKey,
      partials.map(({ part }) => part),
      metadata,
    )
  } catch (error) {
    await abandon(deps, final)
    throw error
  }
  const finished = await deps.finishUpload(final.id)
  await removePartials(deps, partials)
  if (finished.status === 'FAILED') throw failureError(finished)
  return finished
}

/** A join that broke off: the final FAILED, its bytes gone, its partials free for another final. */
async function abandon(deps: ConcatenationDeps, final: UploadFile): Promise<void> {
  await deps.transactions.inTransaction((tx) =>
    deps.uploads.markFailed(
      final.id,
      {
        code: 'concatenation_failed',
        message: 'The partial uploads could not be joined; create the final upload again.',
        size: null,
        detectedType: null,
      },
      tx,
    ),
  )
  await deps.storage.remove(final.storageKey)
  await deps.uploads.releasePartials(final.id)
}

/**
 * Bytes first, then rows: a partial whose bytes stay behind is still UPLOADING and expires. The
 * rows stay, so that a client retrying a final it never heard back from is answered.
 */
async function removePartials(
  deps: ConcatenationDeps,
  partials: readonly CompletePartial[],
): Promise<void> {
  for (const { file, part } of partials) {
    try {
      await deps.storage.remove(file.storageKey)
      await deps.uploads.markJoined(file.id, part.size)
    } catch (error) {
      deps.logger.warn('could not remove a joined partial upload; it will expire', {
        uploadId: file.id,
        error,
      })
    }
  }
}
