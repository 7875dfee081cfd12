import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { type DataStore, ERRORS, Upload } from '@tus/utils'
import type { StoredPart, StoredProgress, UploadStorage } from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'

/**
 * The tus store that receives bytes, the same bytes seen through the upload domain's port, and
 * the digests computed as they arrived.
 */
export interface Datastore {
  readonly tusStore: DataStore
  readonly storage: UploadStorage
  readonly digests: StreamedDigestRegistry
}

/** Offset and length as tus sees them; undefined when the store has no such upload. */
export async function progressIn(
  store: DataStore,
  key: string,
): Promise<StoredProgress | undefined> {
  try {
    const upload = await store.getUpload(key)
    return { offset: upload.offset, size: upload.size }
  } catch (error) {
    if (error === ERRORS.FILE_NOT_FOUND || error === ERRORS.FILE_NO_LONGER_EXISTS) return undefined
    throw error
  }
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(stream, hash)
  return hash.digest('hex')
}

/** The tus upload a concatenation creates: as long as its parts together, and empty so far. */
export function finalUpload(
  key: string,
  parts: readonly StoredPart[],
  metadata: Readonly<Record<string, string | null>> | undefined,
): Upload {
  return new Upload({
    id: key,
    size: parts.reduce((total, part) => total + part.size, 0),
    offset: 0,
    ...(metadata ? { metadata: { ...metadata } } : {}),
    creation_date: new Date().toISOString(),
  })
}
