import { createHash, randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import path from 'node:path'
import type { PreviousUpload, UrlStorage } from 'tus-js-client'

/**
 * Where the CLI keeps its state: TUSBOX_CONFIG_DIR, else $XDG_CONFIG_HOME/tusbox, else
 * ~/.config/tusbox.
 */
export function configDirectory(env: NodeJS.ProcessEnv): string {
  if (env.TUSBOX_CONFIG_DIR) return path.resolve(env.TUSBOX_CONFIG_DIR)
  const base = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : path.join(homedir(), '.config')
  return path.join(base, 'tusbox')
}

/**
 * tus-js-client's URL storage for Node, as one small JSON file per upload in
 * `<config dir>/uploads/`, named after the upload's fingerprint; and the batches runs left open,
 * in `<config dir>/batches/`.
 *
 * Not the FileUrlStorage tus-js-client ships: that keeps every upload in one JSON file rewritten
 * in place (a crash mid-write leaves a file no later run can parse), its lock gives up after five
 * quick retries under parallel uploads, and tus-js-client does not catch a failed save, so the
 * upload would stall. Here each write goes to a temporary file renamed over the entry (atomic),
 * and uploads never touch each other's entries, so parallel uploads and concurrent runs need no
 * lock. One entry per fingerprint: a new upload of the same file replaces the previous entry.
 */
export class ResumeStore implements UrlStorage {
  readonly directory: string
  readonly #batches: string
  readonly #pending = new Set<Promise<unknown>>()

  constructor(configDir: string) {
    this.directory = path.join(configDir, 'uploads')
    this.#batches = path.join(configDir, 'batches')
  }

  async findAllUploads(): Promise<PreviousUpload[]> {
    let names: string[]
    try {
      names = await readdir(this.directory)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
    const entries = await Promise.all(
      names.filter((name) => name.endsWith('.json')).map((name) => this.#read(name.slice(0, -5))),
    )
    return entries.filter((entry) => entry !== undefined)
  }

  async findUploadsByFingerprint(fingerprint: string): Promise<PreviousUpload[]> {
    const entry = await this.#read(keyOf(fingerprint))
    return entry ? [entry] : []
  }

  addUpload(fingerprint: string, upload: PreviousUpload): Promise<string> {
    const key = keyOf(fingerprint)
    const { urlStorageKey: _ignored, ...stored } = upload
    return this.#track(writeAtomically(this.directory, key, stored).then(() => key))
  }

  removeUpload(urlStorageKey: string): Promise<void> {
    return this.#track(rm(this.#file(urlStorageKey), { force: true }))
  }

  /**
   * The batch a run of the same files created and has not completed yet, so that running the
   * command again after an interruption continues it, even when no upload was mid-way.
   */
  async openBatchOf(runKey: string): Promise<string | undefined> {
    const entry = await readJson<{ batchId: string }>(
      path.join(this.#batches, `${keyOf(runKey)}.json`),
    )
    return entry?.batchId
  }

  rememberOpenBatch(runKey: string, batchId: string): Promise<void> {
    return this.#track(writeAtomically(this.#batches, keyOf(runKey), { batchId }))
  }

  forgetOpenBatch(runKey: string): Promise<void> {
    return this.#track(rm(path.join(this.#batches, `${keyOf(runKey)}.json`), { force: true }))
  }

  removeByFingerprint(fingerprint: string): Promise<void> {
    return this.removeUpload(keyOf(fingerprint))
  }

  /**
   * Resolves once every write and removal started so far is done. tus-js-client removes an
   * entry without waiting for it after a success; the process must not exit before it is gone.
   */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending])
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#pending.add(work)
    const forget = () => this.#pending.delete(work)
    work.then(forget, forget)
    return work
  }

  async #read(key: string): Promise<PreviousUpload | undefined> {
    const stored = await readJson<Omit<PreviousUpload, 'urlStorageKey'>>(this.#file(key))
    return stored ? { ...stored, urlStorageKey: key } : undefined
  }

  #file(key: string): string {
    return path.join(this.directory, `${key}.json`)
  }
}

/** Written to a temporary file renamed over the entry: a reader sees the old or the new, whole. */
async function writeAtomically(directory: string, key: string, value: unknown): Promise<void> {
  await mkdir(directory, { recursive: true, mode: 0o700 })
  const temporary = path.join(directory, `.${key}.${randomUUID()}.tmp`)
  // Upload URLs are capabilities on a server without authentication: owner-only.
  await writeFile(temporary, JSON.stringify(value), { mode: 0o600 })
  await rename(temporary, path.join(directory, `${key}.json`))
}

/** Undefined when missing, or unreadable (then the upload starts over, which replaces it). */
async function readJson<T>(file: string): Promise<T | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  try {
    return JSON.parse(text) as T
  } catch {
    return undefined
  }
}

/** A fixed-length name that is safe in any file system, whatever the fingerprint holds. */
function keyOf(fingerprint: string): string {
  return createHash('sha256').update(fingerprint).digest('hex')
}
