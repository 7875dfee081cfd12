import type { Readable } from 'node:stream'
import type { TransactionRunner } from '../db/transaction.ts'
import { AppError, TooManyError } from '../lib/errors.ts'
import type { Logger } from '../lib/logger.ts'
import { MAX_FILES_PER_BATCH } from './batch.service.ts'
import { type BatchCompletionDeps, completeBatchIfReady } from './batch-completion.ts'
import {
  type ConcatenationDeps,
  completePartials,
  existingFinal,
  joinFinal,
} from './concatenation.ts'
import { isAllowedType } from './content-type.ts'
import { type FileDeletedDeps, recordFileDeleted } from './file-deleted.ts'
import { type FinishUpload, failureError, type UploadPolicy } from './finish-upload.ts'
import { sizeRefusal } from './size-limits.ts'
import { storageKeyFor, uploadIdFromStorageKey } from './storage-key.ts'
import {
  type ByteRange,
  type DownloadHeaders,
  isVisibleTo,
  type UploadFile,
  type UploadStorage,
  type Viewer,
} from './types.ts'
import type { LimitReached, NewUpload, UploadRepository } from './upload.repository.ts'
import { readUploadFields } from './upload-metadata.ts'

export interface UploadServiceDeps extends BatchCompletionDeps, FileDeletedDeps {
  readonly uploads: UploadRepository
  readonly transactions: TransactionRunner
  readonly storage: UploadStorage
  readonly finishUpload: FinishUpload
  readonly policy: UploadPolicy & { readonly expirationMs: number }
  readonly ownerLimits: { readonly maxUnfinishedUploads: number; readonly maxBytesInFlight: number }
  readonly storageKeyPrefix: string
  readonly logger: Logger
  readonly now?: () => number
}

export interface NewUploadRequest {
  readonly storageKey: string
  /** Undefined when the client defers the length. */
  readonly size: number | undefined
  readonly metadata: Readonly<Record<string, string | null>> | undefined
  readonly owner: string | null
  /** tus concatenation: a partial upload is joined into a final one later, never finished alone. */
  readonly concat?: 'partial'
}

/** tus concatenation: a final upload, made of complete partial uploads (their ids, in order). */
export interface NewFinalRequest {
  readonly storageKey: string
  readonly partialIds: readonly string[]
  readonly metadata: Readonly<Record<string, string | null>> | undefined
  readonly owner: string | null
}

/** The three things a tus client can do to an existing upload. */
export type UploadAction = 'resume-check' | 'append' | 'terminate'

export type StoredFile = UploadFile & { readonly size: number }

export interface FileContent {
  readonly stream: Readable
  readonly range: ByteRange | undefined
}

/** A client over its limits waits for its own uploads to finish; a minute is a fair first guess. */
const LIMIT_RETRY_AFTER_SECONDS = 60

/** Expiry moves forward at most once a minute per upload: no database write per chunk. */
const EXPIRY_EXTENSION_STEP_MS = 60_000

export class UploadService {
  readonly #deps: UploadServiceDeps
  readonly #now: () => number

  constructor(deps: UploadServiceDeps) {
    this.#deps = deps
    this.#now = deps.now ?? Date.now
  }

  storageKeyOf(id: string): string {
    return storageKeyFor(id, this.#deps.storageKeyPrefix)
  }

  /** A size a client declares before sending the bytes (at creation, or later for a deferred length). */
  checkDeclaredSize(size: number): void {
    const refusal = sizeRefusal(size, this.#deps.policy, 'declared')
    if (refusal) throw refusal
  }

  /** Checks what can be checked before any byte arrives, then records the upload as UPLOADING. */
  async register(request: NewUploadRequest): Promise<UploadFile> {
    return this.#insert(await this.#newUpload(request))
  }

  /**
   * tus concatenation: joins complete partial uploads into a final upload, which is finished
   * like any other (one finish, one event). Its bytes were counted against the owner's limits as
   * partials, so the final is not counted again.
   */
  async concatenate(request: NewFinalRequest): Promise<UploadFile> {
    const deps = this.#concatenationDeps()
    const existing = await existingFinal(deps, request.partialIds, request.owner)
    if (existing) return existing
    const { partials, size } = await completePartials(deps, request.partialIds, request.owner)
    const row = await this.#newUpload({ ...request, size })
    return joinFinal(deps, row, partials, request.metadata)
  }

  /**
   * The size of a partial upload already joined into a final: its bytes are gone, but a client
   * resuming the parallel upload must learn that this part is complete (and then ask for the same
   * final again), not start it over. Undefined for any other upload.
   */
  async joinedPartialSize(storageKey: string, viewer: Viewer): Promise<number | undefined> {
    const id = uploadIdFromStorageKey(storageKey)
    const file = id === undefined ? undefined : await this.#deps.uploads.findById(id)
    if (!file || !isVisibleTo(file, viewer) || file.concat !== 'partial') return undefined
    return file.status === 'DELETED' && file.finalId ? (file.size ?? undefined) : undefined
  }

  #concatenationDeps(): ConcatenationDeps {
    const { uploads, transactions, storage, finishUpload, policy, logger } = this.#deps
    const now = this.#now
    return { uploads, transactions, storage, finishUpload, maxSize: policy.maxSize, logger, now }
  }

  async #newUpload(request: NewUploadRequest): Promise<NewUpload> {
    const fields = await this.#checkNewUpload(request)
    return {
      id: idOf(request.storageKey),
      owner: request.owner,
      ...fields,
      declaredSize: request.size ?? null,
      storageKey: request.storageKey,
      metadata: { ...request.metadata },
      expiresAt: new Date(this.#now() + this.#deps.policy.expirationMs),
      ...(request.concat ? { concat: request.concat } : {}),
    }
  }

  /**
   * Everything register() would refuse, the owner's limits included, without recording
   * anything, and how many bytes the new upload can take: an edge asks before it buffers a
   * creation's body, so that a client that would be refused cannot make the server hold its
   * bytes first, nor more of them than the upload could take (security review M1).
   */
  async creationAllowance(request: Omit<NewUploadRequest, 'storageKey'>): Promise<number> {
    const { maxSize } = this.#deps.policy
    if (request.size !== undefined && request.size > maxSize) {
      throw new AppError(
        'too_large',
        'size_exceeded',
        `The file is ${request.size} bytes; the limit is ${maxSize} bytes.`,
      )
    }
    await this.#checkNewUpload(request)
    const { owner } = request
    if (owner === null) return request.size ?? maxSize
    const reached = await this.#deps.uploads.checkLimits(owner, request.size ?? null, {
      ...this.#deps.ownerLimits,
      unknownSizeCounts: maxSize,
    })
    if (reached) throw this.#limitError(reached)
    return request.size ?? maxSize
  }

  /**
   * Admits an append to an upload the viewer may see, and says how many bytes it can still take.
   */
  async appendAllowance(storageKey: string, viewer: Viewer): Promise<number> {
    const file = await this.admit(storageKey, 'append', viewer)
    const progress = await this.#deps.storage.progress(file.storageKey)
    const size = progress?.size ?? file.declaredSize ?? this.#deps.policy.maxSize
    return Math.max(0, size - (progress?.offset ?? 0))
  }

  /**
   * A partial upload's metadata is kept, but never read as a file's name, type or batch
   * (tus-js-client's `metadataForPartialUploads`), and a partial may be empty: only its final
   * is a file, and the final is checked.
   */
  async #checkNewUpload(
    request: Omit<NewUploadRequest, 'storageKey'>,
  ): Promise<ReturnType<typeof readUploadFields>> {
    if (request.concat === 'partial') return { filename: null, declaredType: null, batchId: null }
    const fields = readUploadFields(request.metadata)
    const { allowedTypes } = this.#deps.policy
    if (fields.declaredType && !isAllowedType(fields.declaredType, allowedTypes)) {
      throw new AppError(
        'unsupported_type',
        'unsupported_file_type',
        `Files of type ${fields.declaredType} are not accepted. Allowed: ${allowedTypes.join(', ')}.`,
      )
    }
    if (request.size !== undefined) this.checkDeclaredSize(request.size)
    if (fields.batchId) await this.#checkBatchAccepts(fields.batchId, request.owner)
    return fields
  }

  /** Anonymous uploads (AUTH_MODE=none) have no owner to count, so no per-owner limit. */
  async #insert(upload: NewUpload): Promise<UploadFile> {
    const { owner } = upload
    if (owner === null) return this.#deps.uploads.insert(upload)
    const outcome = await this.#deps.uploads.insertWithinLimits(
      { ...upload, owner },
      { ...this.#deps.ownerLimits, unknownSizeCounts: this.#deps.policy.maxSize },
    )
    if (typeof outcome === 'string') throw this.#limitError(outcome)
    return outcome
  }

  #limitError(reached: LimitReached): TooManyError {
    const { maxUnfinishedUploads, maxBytesInFlight } = this.#deps.ownerLimits
    if (reached === 'too_many_uploads') {
      return new TooManyError(
        'too_many_unfinished_uploads',
        `You have ${maxUnfinishedUploads} unfinished uploads, the most allowed; finish or delete some first.`,
        LIMIT_RETRY_AFTER_SECONDS,
      )
    }
    return new TooManyError(
      'too_many_bytes_in_flight',
      `Your unfinished uploads would exceed ${maxBytesInFlight} bytes; finish or delete some first.`,
      LIMIT_RETRY_AFTER_SECONDS,
    )
  }

  async #checkBatchAccepts(batchId: string, owner: string | null): Promise<void> {
    const found = await this.#deps.batches.findById(batchId)
    const batch = found && isVisibleTo(found, owner) ? found : undefined
    if (!batch) throw new AppError('invalid', 'unknown_batch', `No batch with id ${batchId}.`)
    if (batch.completeRequestedAt || batch.completedAt) {
      throw new AppError(
        'conflict',
        'batch_closed',
        `Batch ${batchId} is complete or was declared complete, and takes no more files; create a new batch.`,
      )
    }
    if ((await this.#deps.uploads.countInBatch(batchId)) >= MAX_FILES_PER_BATCH) {
      throw new AppError(
        'conflict',
        'batch_full',
        `A batch holds at most ${MAX_FILES_PER_BATCH} files.`,
      )
    }
  }

  /**
   * Decides whether a tus request may touch an upload, before the store sees it. A resume check
   * (HEAD) on an upload whose bytes are complete but whose row never left UPLOADING finishes it
   * first: @tus/server runs onUploadFinish once, after releasing the lock, and never retries it.
   */
  async admit(storageKey: string, action: UploadAction, viewer: Viewer): Promise<UploadFile> {
    const file = await this.#existing(idOf(storageKey), viewer)
    // tus 1.0.0 concatenation: "The Server MUST respond with the 403 Forbidden status to PATCH
    // requests against a final upload URL".
    if (file.concat === 'final' && action === 'append') {
      throw new AppError(
        'forbidden',
        'final_upload_not_patchable',
        `Upload ${file.id} is a final upload, joined from partial uploads; it takes no PATCH.`,
      )
    }
    switch (file.status) {
      case 'DELETED':
      case 'EXPIRED':
        throw new AppError(
          'gone',
          'upload_gone',
          `Upload ${file.id} was ${file.status.toLowerCase()}.`,
        )
      case 'FAILED':
        throw goneBecauseFailed(file)
      case 'STORED':
        if (action === 'append') {
          throw new AppError(
            'conflict',
            'upload_already_stored',
            `Upload ${file.id} is complete and stored.`,
          )
        }
        return file
      case 'UPLOADING':
        return this.#admitUnfinished(file, action)
    }
  }

  async #admitUnfinished(file: UploadFile, action: UploadAction): Promise<UploadFile> {
    // Complete bytes are finished even past the expiry: nothing is left to wait for.
    if (action === 'resume-check') {
      const finished = await this.#finishIfComplete(file)
      if (finished.status === 'FAILED') throw goneBecauseFailed(finished)
      if (finished.status === 'STORED') return finished
    }
    if (file.expiresAt && file.expiresAt.getTime() <= this.#now()) {
      throw new AppError('gone', 'upload_expired', `Upload ${file.id} expired after sitting idle.`)
    }
    if (action === 'append') return this.#extendExpiry(file)
    return file
  }

  async #finishIfComplete(file: UploadFile): Promise<UploadFile> {
    const progress = await this.#deps.storage.progress(file.storageKey)
    if (!progress || progress.size === undefined || progress.offset < progress.size) return file
    return this.#deps.finishUpload(file.id)
  }

  async #extendExpiry(file: UploadFile): Promise<UploadFile> {
    const { expirationMs } = this.#deps.policy
    const expiresAt = new Date(this.#now() + expirationMs)
    const step = Math.min(EXPIRY_EXTENSION_STEP_MS, expirationMs / 10)
    if (file.expiresAt && expiresAt.getTime() - file.expiresAt.getTime() < step) return file
    await this.#deps.uploads.extendExpiry(file.id, expiresAt)
    return { ...file, expiresAt }
  }

  /** Called after tus removed the bytes of a terminated upload; an upload already gone stays so. */
  async markTerminated(storageKey: string): Promise<void> {
    await this.#markDeleted(idOf(storageKey))
  }

  async get(id: string, viewer: Viewer): Promise<UploadFile> {
    return this.#existingFile(id, viewer)
  }

  async list(
    query: { batchId?: string; limit: number; after?: string },
    viewer: Viewer,
  ): Promise<UploadFile[]> {
    return this.#deps.uploads.list({ ...query, owner: viewer ?? undefined })
  }

  /**
   * Marks the row DELETED, then removes the bytes; deleting twice answers 410 the second time.
   * The decision is taken under the row lock (a finish storing the file at the same moment goes
   * first or finds it DELETED), and the bytes go only once the row says so: a file.stored is
   * always followed by its file.deleted, and a file never announced is never announced.
   */
  async delete(id: string, viewer: Viewer): Promise<UploadFile> {
    await this.#existingFile(id, viewer)
    const outcome = await this.#markDeleted(id)
    if (outcome === 'already_gone') {
      const file = await this.#existingFile(id, viewer)
      throw new AppError(
        'gone',
        'file_gone',
        `File ${id} was already ${file.status.toLowerCase()}.`,
      )
    }
    await this.#deps.storage.remove(outcome.storageKey)
    return outcome
  }

  /**
   * A file announced as stored is announced as deleted; and the batch it leaves may now have
   * every remaining file stored. Decided on the locked row, not on an earlier read of it.
   */
  #markDeleted(id: string): Promise<UploadFile | 'already_gone'> {
    return this.#deps.transactions.inTransaction(async (tx) => {
      const file = await this.#deps.uploads.lockById(id, tx)
      if (!file) throw notFound(id)
      if (file.status === 'DELETED' || file.status === 'EXPIRED') return 'already_gone'
      const deleted = await this.#deps.uploads.markDeleted(file.id, tx)
      if (file.status === 'STORED') await recordFileDeleted(this.#deps, file, 'deleted', tx)
      if (file.batchId) await completeBatchIfReady(this.#deps, file.batchId, tx)
      return deleted
    })
  }

  /** A file whose bytes can be downloaded; anything else answers 409. */
  async getStored(id: string, viewer: Viewer): Promise<StoredFile> {
    const file = await this.#existingFile(id, viewer)
    if (file.status === 'DELETED' || file.status === 'EXPIRED') {
      throw new AppError('gone', 'file_gone', `File ${id} was ${file.status.toLowerCase()}.`)
    }
    if (file.status !== 'STORED' || file.size === null) {
      throw new AppError('conflict', 'file_not_stored', `File ${id} is ${file.status}, not STORED.`)
    }
    return { ...file, size: file.size }
  }

  downloadUrl(file: StoredFile, headers: DownloadHeaders): Promise<string | undefined> {
    return this.#deps.storage.downloadUrl(file.storageKey, headers)
  }

  async openContent(file: StoredFile, requestRange?: RangeRequest): Promise<FileContent> {
    const range = requestRange && resolveRange(requestRange, file.size)
    const stream = await this.#deps.storage.openRead(file.storageKey, range)
    return { stream, range }
  }

  /**
   * A file of the API. A partial upload (tus concatenation) is a piece of a file, never a file:
   * like the list, the API does not show it (tus requests still reach it).
   */
  async #existingFile(id: string, viewer: Viewer): Promise<UploadFile> {
    const upload = await this.#existing(id, viewer)
    if (upload.concat === 'partial') throw notFound(id)
    return upload
  }

  /** Another owner's upload answers exactly like a missing one: its existence is not revealed. */
  async #existing(id: string, viewer: Viewer): Promise<UploadFile> {
    const found = await this.#deps.uploads.findById(id)
    const file = found && isVisibleTo(found, viewer) ? found : undefined
    if (!file) throw notFound(id)
    return file
  }
}

function notFound(id: string): AppError {
  return new AppError('not_found', 'file_not_found', `No file with id ${id}.`)
}

/** A parsed `bytes=` range: start/end, or a suffix length for `bytes=-N`. */
export type RangeRequest =
  | { readonly start: number; readonly end: number | undefined }
  | { readonly suffixLength: number }

function resolveRange(request: RangeRequest, size: number): ByteRange {
  const range =
    'suffixLength' in request
      ? { start: Math.max(0, size - request.suffixLength), end: size - 1 }
      : { start: request.start, end: Math.min(request.end ?? size - 1, size - 1) }
  if (range.start >= size || range.end < range.start) throw new RangeNotSatisfiableError(size)
  return range
}

export class RangeNotSatisfiableError extends AppError {
  readonly size: number
  constructor(size: number) {
    super('range_not_satisfiable', 'range_not_satisfiable', `The file has ${size} bytes.`)
    this.size = size
  }
}

function goneBecauseFailed(file: UploadFile): AppError {
  const reason = failureError(file)
  return new AppError('gone', reason.code, `Upload ${file.id} failed: ${reason.message}`)
}

function idOf(storageKey: string): string {
  const id = uploadIdFromStorageKey(storageKey)
  if (!id) throw new AppError('not_found', 'upload_not_found', 'No such upload.')
  return id
}
