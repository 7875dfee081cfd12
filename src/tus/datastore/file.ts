import { close, constants, createWriteStream, open as openCallback, writeFile } from 'node:fs'
import { access, mkdir, open, rm } from 'node:fs/promises'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import { FileStore } from '@tus/file-store'
import { ERRORS, type Upload } from '@tus/utils'
import type { FileStorageConfig } from '../../config.ts'
import type { ByteRange, StoredPart, StoredProgress, UploadStorage } from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'
import { type Datastore, finalUpload, progressIn, sha256Of, TusStoreWriter } from './common.ts'

export async function createFileDatastore(
  config: FileStorageConfig,
  digests: StreamedDigestRegistry,
): Promise<Datastore> {
  const root = path.resolve(config.directory)
  // FileStore creates its directory in a callback that throws; create it first so a bad
  // FILE_STORE_DIR is reported at start-up instead of crashing the process later.
  await mkdir(root, { recursive: true })
  const tusStore = new HashingFileStore(root, digests)
  return {
    tusStore,
    storage: new FileStorage(root, tusStore, digests),
    writer: new TusStoreWriter(tusStore),
    digests,
  }
}

/**
 * FileStore whose writes are hashed on their way to the file (see StreamedDigestRegistry). Its
 * writes skip FileStore's own: that adds a stage that only counts the bytes, which the digests'
 * stage sees already, and every stage between the request and the file costs per 64 KiB chunk
 * and holds its own buffers while a write waits for the disk.
 */
class HashingFileStore extends FileStore {
  readonly #root: string
  readonly #digests: StreamedDigestRegistry

  constructor(root: string, digests: StreamedDigestRegistry) {
    super({ directory: root })
    this.#root = root
    this.#digests = digests
  }

  /**
   * What FileStore.create does (an empty file, and the upload's info as JSON in `<file>.json`,
   * where its FileConfigstore reads it), for less work on the event loop: FileStore makes a
   * `mkdir -p` on every creation and writes one after the other, through fs/promises
   * FileHandles. Here the two writes overlap, through the lighter callback API, and the month's
   * directory is made only when a write finds it missing (once a month).
   */
  override async create(upload: Upload): Promise<Upload> {
    const file = pathIn(this.#root, upload.id)
    const info = JSON.stringify(upload)
    let failure = await createBoth(file, info)
    if (errorCode(failure) === 'ENOENT') {
      await mkdir(path.dirname(file), { recursive: true })
      failure = await createBoth(file, info)
    }
    if (failure) throw failure
    upload.storage = { type: 'file', path: file }
    return upload
  }

  override write(readable: Readable, id: string, offset: number): Promise<number> {
    return this.#digests.write(id, offset, readable, (hashed) => this.#writeAt(id, offset, hashed))
  }

  override async remove(id: string): Promise<void> {
    this.#digests.forget(id)
    await super.remove(id)
  }

  /** A write of bytes already in the store: hashed on the way like any write, never counted. */
  copy(readable: Readable, id: string, offset: number): Promise<number> {
    return this.#digests.write(
      id,
      offset,
      readable,
      (hashed) => this.#writeAt(id, offset, hashed),
      'copied',
    )
  }

  /** As FileStore.write: into the existing file at `offset`; resolves with the new offset. */
  async #writeAt(id: string, offset: number, source: Readable): Promise<number> {
    const file = createWriteStream(pathIn(this.#root, id), { flags: 'r+', start: offset })
    try {
      await pipeline(source, file)
    } catch {
      throw ERRORS.FILE_WRITE_ERROR
    }
    return offset + file.bytesWritten
  }
}

class FileStorage implements UploadStorage {
  readonly #root: string
  readonly #store: HashingFileStore
  readonly #digests: StreamedDigestRegistry

  constructor(root: string, store: HashingFileStore, digests: StreamedDigestRegistry) {
    this.#root = root
    this.#store = store
    this.#digests = digests
  }

  progress(key: string): Promise<StoredProgress | undefined> {
    return progressIn(this.#store, key)
  }

  async readHead(key: string, bytes: number): Promise<Uint8Array> {
    const handle = await open(pathIn(this.#root, key), 'r')
    try {
      const buffer = Buffer.alloc(bytes)
      const { bytesRead } = await handle.read(buffer, 0, bytes, 0)
      return buffer.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  }

  async sha256(key: string): Promise<string> {
    const handle = await open(pathIn(this.#root, key), 'r')
    return sha256Of(handle.createReadStream())
  }

  async openRead(key: string, range?: ByteRange): Promise<Readable> {
    const handle = await open(pathIn(this.#root, key), 'r')
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {})
  }

  async downloadUrl(): Promise<undefined> {
    return undefined
  }

  async remove(key: string): Promise<void> {
    this.#digests.forget(key)
    const file = pathIn(this.#root, key)
    // The .json companion is FileStore's upload info (its FileConfigstore).
    await Promise.all([rm(file, { force: true }), rm(`${file}.json`, { force: true })])
  }

  /**
   * Streams each part into the new upload's file in turn, hashed in the same pass (the digest
   * the finish step then uses): one read and one write of every byte, none held in memory.
   */
  async concatenate(
    key: string,
    parts: readonly StoredPart[],
    metadata: Readonly<Record<string, string | null>> | undefined,
  ): Promise<void> {
    await this.#store.create(finalUpload(key, parts, metadata))
    let offset = 0
    for (const part of parts) {
      offset = await this.#store.copy(await this.openRead(part.key), key, offset)
    }
  }

  /** /readyz shows the reason to anyone who asks: the error code, never the directory's path. */
  async checkReady(): Promise<void> {
    try {
      await access(this.#root, constants.R_OK | constants.W_OK)
    } catch (error) {
      throw new Error(`the store directory cannot be read and written (${errorCode(error)})`)
    }
  }
}

function pathIn(root: string, key: string): string {
  const file = path.resolve(root, key)
  if (!file.startsWith(`${root}${path.sep}`)) {
    throw new Error(`storage key ${key} points outside the store`)
  }
  return file
}

const openFile = promisify(openCallback)
const closeFile = promisify(close)
const writeText = promisify(writeFile)

/**
 * Creates the empty upload file and its info file at once; resolves with the first failure, or
 * undefined. Both writes have ended by then, so a retry races neither.
 */
async function createBoth(file: string, info: string): Promise<unknown> {
  const outcomes = await Promise.allSettled([
    openFile(file, 'w').then(closeFile),
    writeText(`${file}.json`, info),
  ])
  return outcomes.find((outcome) => outcome.status === 'rejected')?.reason
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'error'
}
