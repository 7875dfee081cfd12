import { createHash } from 'node:crypto'
import { constants } from 'node:fs'
import { access, mkdir, open, rm } from 'node:fs/promises'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { FileStore } from '@tus/file-store'
import { type DataStore, ERRORS } from '@tus/utils'
import type { ByteRange, StoredProgress, UploadStorage } from '../uploads/types.ts'

/** The tus store that receives bytes, and the same bytes seen through the upload domain's port. */
export interface Datastore {
  readonly tusStore: DataStore
  readonly storage: UploadStorage
}

export async function createFileDatastore(directory: string): Promise<Datastore> {
  const root = path.resolve(directory)
  // FileStore creates its directory in a callback that throws; create it first so a bad
  // FILE_STORE_DIR is reported at start-up instead of crashing the process later.
  await mkdir(root, { recursive: true })
  const tusStore = new FileStore({ directory: root })
  return { tusStore, storage: new FileStorage(root, tusStore) }
}

class FileStorage implements UploadStorage {
  readonly #root: string
  readonly #store: FileStore

  constructor(root: string, store: FileStore) {
    this.#root = root
    this.#store = store
  }

  async progress(key: string): Promise<StoredProgress | undefined> {
    try {
      const upload = await this.#store.getUpload(key)
      return { offset: upload.offset, size: upload.size }
    } catch (error) {
      if (error === ERRORS.FILE_NOT_FOUND || error === ERRORS.FILE_NO_LONGER_EXISTS)
        return undefined
      throw error
    }
  }

  async readHead(key: string, bytes: number): Promise<Uint8Array> {
    const handle = await open(this.#pathOf(key), 'r')
    try {
      const buffer = Buffer.alloc(bytes)
      const { bytesRead } = await handle.read(buffer, 0, bytes, 0)
      return buffer.subarray(0, bytesRead)
    } finally {
      await handle.close()
    }
  }

  async sha256(key: string): Promise<string> {
    const hash = createHash('sha256')
    const handle = await open(this.#pathOf(key), 'r')
    await pipeline(handle.createReadStream(), hash)
    return hash.digest('hex')
  }

  async openRead(key: string, range?: ByteRange): Promise<Readable> {
    const handle = await open(this.#pathOf(key), 'r')
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {})
  }

  async remove(key: string): Promise<void> {
    const file = this.#pathOf(key)
    // The .json companion is FileStore's upload info (its FileConfigstore).
    await Promise.all([rm(file, { force: true }), rm(`${file}.json`, { force: true })])
  }

  async checkReady(): Promise<void> {
    await access(this.#root, constants.R_OK | constants.W_OK)
  }

  #pathOf(key: string): string {
    const file = path.resolve(this.#root, key)
    if (!file.startsWith(`${this.#root}${path.sep}`)) {
      throw new Error(`storage key ${key} points outside the store`)
    }
    return file
  }
}
