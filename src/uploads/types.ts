import type { Readable } from 'node:stream'

export const UPLOAD_STATUSES = ['UPLOADING', 'STORED', 'FAILED', 'DELETED', 'EXPIRED'] as const
export type UploadStatus = (typeof UPLOAD_STATUSES)[number]

/** tus concatenation: a partial is joined into a final; a normal upload is neither. */
export type UploadConcat = 'partial' | 'final'

/** The protocol an upload was created with; both end in the same rows, store and finish. */
export type UploadProtocol = 'tus' | 'rufh'

export interface UploadFile {
  readonly id: string
  readonly owner: string | null
  readonly batchId: string | null
  readonly status: UploadStatus
  readonly filename: string | null
  readonly declaredType: string | null
  readonly detectedType: string | null
  /** Upload-Length as declared by the client; null while the length is deferred. */
  readonly declaredSize: number | null
  /** Bytes actually stored, known once the upload is finished. */
  readonly size: number | null
  readonly sha256: string | null
  readonly storageKey: string
  readonly errorCode: string | null
  readonly errorMessage: string | null
  readonly metadata: Readonly<Record<string, string | null>>
  readonly createdAt: Date
  readonly updatedAt: Date
  readonly storedAt: Date | null
  readonly deletedAt: Date | null
  readonly expiresAt: Date | null
  readonly concat: UploadConcat | null
  /** A final's partial uploads, in the order they are joined; null for any other upload. */
  readonly partialIds: readonly string[] | null
  /** A partial's final upload, once one claimed it. */
  readonly finalId: string | null
}

export interface UploadBatch {
  readonly id: string
  readonly owner: string | null
  /** Declared at creation: the batch completes once this many files are STORED. */
  readonly expectedFiles: number | null
  /** Set by POST /api/batches/:id/complete: no more files are coming. */
  readonly completeRequestedAt: Date | null
  /** When batch.completed was recorded. */
  readonly completedAt: Date | null
  readonly createdAt: Date
}

/**
 * Whose uploads a request may touch: one owner's (AUTH_MODE=jwt), or everyone's (null, in
 * AUTH_MODE=none). Anything not visible answers as if it did not exist.
 */
export type Viewer = string | null

export function isVisibleTo(record: { readonly owner: string | null }, viewer: Viewer): boolean {
  return viewer === null || record.owner === viewer
}

export interface StoredProgress {
  readonly offset: number
  /** Undefined while the client defers the length. */
  readonly size: number | undefined
}

export interface ByteRange {
  readonly start: number
  /** Inclusive, as in HTTP Range. */
  readonly end: number
}

/** How a download must present itself, whoever serves the bytes. */
export interface DownloadHeaders {
  readonly contentType: string
  readonly contentDisposition: string
}

/** What the upload domain needs from a byte store; tus/datastore/ implements it per backend. */
export interface UploadStorage {
  /** Undefined when the store has no such upload (never created, or removed). */
  progress(key: string): Promise<StoredProgress | undefined>
  readHead(key: string, bytes: number): Promise<Uint8Array>
  sha256(key: string): Promise<string>
  openRead(key: string, range?: ByteRange): Promise<Readable>
  /** A URL the client may download from directly, or undefined when tusbox streams the bytes. */
  downloadUrl(key: string, headers: DownloadHeaders): Promise<string | undefined>
  /** Removes the bytes and every companion object; succeeds when nothing is left to remove. */
  remove(key: string): Promise<void>
  /** Throws when the store cannot be reached or written. */
  checkReady(): Promise<void>
  /**
   * Creates the complete upload `key` from the bytes of `parts`, joined in order inside the
   * store; `metadata` is its tus Upload-Metadata, if it was sent one. The parts are left as they are.
   */
  concatenate(
    key: string,
    parts: readonly StoredPart[],
    metadata: Readonly<Record<string, string | null>> | undefined,
  ): Promise<void>
}

/** A complete upload about to be joined into a final one. */
export interface StoredPart {
  readonly key: string
  readonly size: number
}

/** How one append ran: where the upload now ends, and whether the body went past its limit. */
export interface AppendOutcome {
  readonly offset: number
  /** The whole body arrived: it was neither cut off, nor stopped, nor too long. */
  readonly bodyEnded: boolean
  /** The body carried more than `maxBytes`: only `maxBytes` of it were stored. */
  readonly overflowed: boolean
}

export interface AppendOptions {
  /** The most bytes this body may add (the known length, or the size limit, minus the offset). */
  readonly maxBytes: number
  /** Aborted: stop reading and keep what arrived (another request took the upload over). */
  readonly signal: AbortSignal
  /** Told the offset as bytes pass on their way to the store. */
  readonly onProgress?: (offset: number) => void
}

/**
 * How a protocol edge without a store of its own (RUFH) creates uploads and appends to them, in
 * the store tus writes to, through the same hashing and counting. tus/datastore/ implements it.
 */
export interface UploadWriter {
  create(
    key: string,
    size: number | undefined,
    metadata: Readonly<Record<string, string | null>>,
  ): Promise<void>
  /**
   * Streams `body` into the upload from `offset`. A body that stops early (a cut connection, an
   * abort) keeps what arrived: the answer is where the stored bytes end, never an error for that.
   */
  append(
    key: string,
    offset: number,
    body: Readable,
    options: AppendOptions,
  ): Promise<AppendOutcome>
  /** Records the length of an upload created without one. */
  declareLength(key: string, size: number): Promise<void>
}

/** What the process that received an upload's bytes learnt from them on the way in. */
export interface StreamedDigest {
  /** Hex SHA-256 of the upload's bytes. */
  readonly sha256: string
  /** The first bytes, as many as type sniffing reads (all of them for a smaller upload). */
  readonly head: Uint8Array
}

/**
 * Digests computed while the bytes streamed into the store, so that finishing an upload need not
 * read them back. Only a hint: a process that did not see every byte arrive in order (it
 * restarted, another instance took some chunks, a write broke off) has none, and the finish step
 * then reads the stored bytes. tus/datastore/ implements it.
 */
export interface StreamedDigests {
  /** The digest of exactly the first `size` bytes of `key`, or undefined when this process cannot vouch for them. */
  digestOf(key: string, size: number): Promise<StreamedDigest | undefined>
  /**
   * The first `bytes` bytes of `key` as they arrived, while the upload is still growing, or
   * undefined when this process did not see them all arrive from offset 0.
   */
  headOf(key: string, bytes: number): Uint8Array | undefined
  /** Drops what is kept for `key`: its upload is finished, failed or gone. */
  forget(key: string): void
}
