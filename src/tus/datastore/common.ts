import { createHash } from 'node:crypto'
import { type Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { type DataStore, ERRORS, Upload } from '@tus/utils'
import type {
  AppendOptions,
  AppendOutcome,
  StoredPart,
  StoredProgress,
  UploadStorage,
  UploadWriter,
} from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'

/**
 * The tus store that receives bytes, the same bytes seen through the upload domain's port, and
 * the digests computed as they arrived.
 */
export interface Datastore {
  readonly tusStore: DataStore
  readonly storage: UploadStorage
  /** The same store, for edges that do not go through @tus/server (RUFH). */
  readonly writer: UploadWriter
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

/** UploadWriter over the tus store: the same files or objects, the same hashing `write`. */
export class TusStoreWriter implements UploadWriter {
  readonly #store: DataStore

  constructor(store: DataStore) {
    this.#store = store
  }

  async create(
    key: string,
    size: number | undefined,
    metadata: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    const upload = new Upload({
      id: key,
      size,
      offset: 0,
      metadata: { ...metadata },
      creation_date: new Date().toISOString(),
    })
    await this.#store.create(upload)
  }

  /**
   * The body reaches the store through a limiter that the store sees end normally whatever
   * happens to the body (an error, an abort, too many bytes): the store then keeps what it got
   * and reports where it ends, which is also where the streamed digest ends (@tus/server's
   * writeToStore ends its proxy on abort for the same reason).
   */
  async append(
    key: string,
    offset: number,
    body: Readable,
    options: AppendOptions,
  ): Promise<AppendOutcome> {
    let received = 0
    let overflowed = false
    let bodyEnded = false
    const limiter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const room = options.maxBytes - received
        if (chunk.length > room) {
          overflowed = true
          received += room
          done(null, chunk.subarray(0, room))
          stop()
          return
        }
        received += chunk.length
        options.onProgress?.(offset + received)
        done(null, chunk)
      },
    })
    const stop = () => {
      body.unpipe(limiter)
      if (!limiter.writableEnded) limiter.end()
    }
    const ended = () => {
      bodyEnded = !overflowed
    }
    body.once('end', ended)
    body.once('error', stop)
    body.once('close', stop)
    options.signal.addEventListener('abort', stop, { once: true })
    if (options.signal.aborted || body.destroyed) stop()
    else body.pipe(limiter)
    try {
      const newOffset = await this.#store.write(limiter, key, offset)
      return { offset: newOffset, bodyEnded, overflowed }
    } finally {
      options.signal.removeEventListener('abort', stop)
      body.off('end', ended)
      body.off('error', stop)
      body.off('close', stop)
    }
  }

  /**
   * Records the length of an upload created without one. An upload that has every byte by then
   * is complete: FileStore has nothing to assemble, and tusbox's S3 store completes its object
   * in declareUploadLength.
   */
  async declareLength(key: string, size: number): Promise<void> {
    await this.#store.declareUploadLength(key, size)
  }
}
