import { createHash } from 'node:crypto'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { type DataStore, ERRORS } from '@tus/utils'
import type { StoredProgress, UploadStorage } from '../../uploads/types.ts'
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
