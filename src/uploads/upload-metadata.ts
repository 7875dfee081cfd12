import { AppError } from '../lib/errors.ts'
import { normalizeMimeType } from './content-type.ts'
import { sanitizeFilename } from './filename.ts'
import { isUuid } from './storage-key.ts'

/** What tusbox reads from a tus Upload-Metadata header; other keys are kept as they are. */
export interface UploadFields {
  readonly filename: string | null
  readonly declaredType: string | null
  readonly batchId: string | null
}

type Metadata = Readonly<Record<string, string | null>>

/**
 * tus-js-client and Uppy send `filename` and `filetype`; other clients send `name` and `type`.
 * Throws an `invalid` AppError naming the field that cannot be used.
 */
export function readUploadFields(metadata: Metadata | undefined): UploadFields {
  const filename = firstPresent(metadata, 'filename', 'name')
  const type = firstPresent(metadata, 'filetype', 'type')
  const batchId = firstPresent(metadata, 'batchId')
  const fields = {
    filename: filename === null ? null : sanitizeFilename(filename),
    declaredType: type === null ? null : parseDeclaredType(type),
    batchId: batchId === null ? null : parseBatchId(batchId),
  }
  refuseNul(metadata)
  return fields
}

/**
 * Every value is kept with the upload, and PostgreSQL text and jsonb cannot hold U+0000: a NUL
 * that reached the insert would fail it with a 500. The named fields above report theirs first.
 */
function refuseNul(metadata: Metadata | undefined): void {
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (value?.includes('\u0000')) {
      throw new AppError(
        'invalid',
        'invalid_metadata',
        `Upload-Metadata ${key} must not contain NUL characters.`,
      )
    }
  }
}

function firstPresent(metadata: Metadata | undefined, ...keys: string[]): string | null {
  for (const key of keys) {
    const value = metadata?.[key]
    if (value !== undefined && value !== null && value !== '') return value
  }
  return null
}

function parseDeclaredType(raw: string): string {
  const type = normalizeMimeType(raw)
  if (!type) {
    throw new AppError(
      'invalid',
      'invalid_metadata',
      `Upload-Metadata filetype "${raw}" is not a MIME type.`,
    )
  }
  return type
}

function parseBatchId(raw: string): string {
  if (!isUuid(raw)) {
    throw new AppError(
      'invalid',
      'invalid_batch_id',
      `Upload-Metadata batchId "${raw}" is not a batch id.`,
    )
  }
  return raw.toLowerCase()
}
