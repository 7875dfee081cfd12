import { pipeline, type Readable, Transform } from 'node:stream'
import type { StreamedDigest, StreamedDigests } from '../uploads/types.ts'
import { OffThreadSha256 } from './off-thread-sha256.ts'
import type { LockWatcher } from './pg-locker.ts'

/**
 * How many uploads may have a digest in progress at once. Each costs its SHA-256 state (a few
 * hundred bytes, on the hashing thread) and up to `headBytes` of head (64 KiB): about 64 MiB at
 * worst. Beyond it the least recently written upload loses its digest and is read back when it
 * finishes.
 */
const MAX_UPLOADS = 1000

/**
 * A digest nobody wrote to for this long is dropped: its client may never come back, and
 * nothing else would remove it (an unfinished upload expires on whichever process purges).
 * A client that pauses longer still finishes correctly, by the read-back.
 */
const IDLE_MS = 10 * 60_000

export interface StreamedDigestOptions {
  /** How many bytes from the start of each upload to keep for type sniffing. */
  readonly headBytes: number
  readonly maxUploads?: number
  readonly idleMs?: number
  readonly now?: () => number
  /** Told of every chunk a write passes to the store, hashed or not. */
  readonly onBytes?: (bytes: number) => void
}

/** Bytes [0, length) of one upload, as they passed through this process on their way to the store. */
interface Digesting {
  readonly hash: OffThreadSha256
  length: number
  head: Buffer
  lastUsedAt: number
  /** A write is streaming into this digest; it is not final until the store says where it ended. */
  writing: boolean
  /** Set when dropped, so a write still streaming into it does not bring it back. */
  dropped: boolean
}

/**
 * SHA-256 and head of each upload, computed from the bytes as they stream into the store, so the
 * finish step reads neither. The hashing runs on a worker thread (OffThreadSha256): the request
 * thread only copies the bytes, which costs it far less than hashing them. Node's native SHA-256
 * (about 1.1 GB/s here, faster than bytes arrive) cannot be serialized, so a digest lives only in
 * the memory of the process that saw the bytes; hash-wasm can save its state but runs at
 * 160 MB/s, slower than uploads. A digest is kept only while it provably covers exactly the
 * stored bytes:
 *
 * - it starts at offset 0 and grows only by a write that starts where it ends; a write at any other
 *   offset (another instance took the chunks in between, or this process restarted) drops it;
 * - after each write, the store's new offset must equal the bytes hashed: a write that failed,
 *   or that the store took only part of, drops it (the store may hold bytes that were never
 *   hashed, or lack bytes that were);
 * - any request another instance served on the upload drops it (see LockWatcher): on S3 a failed
 *   PATCH loses the `.part` tail, so the offset can fall back and be refilled by other bytes up to
 *   exactly where this digest ends, which no offset check could tell apart.
 *
 * @tus/server's locker lets one request at a time write an upload, so writes never interleave.
 * Without a digest the finish step reads the stored bytes back: slower, never wrong.
 */
export class StreamedDigestRegistry implements StreamedDigests, LockWatcher {
  readonly #headBytes: number
  readonly #maxUploads: number
  readonly #idleMs: number
  readonly #now: () => number
  readonly #onBytes: (bytes: number) => void
  /** In order of last use, oldest first. */
  readonly #digests = new Map<string, Digesting>()

  constructor(options: StreamedDigestOptions) {
    this.#headBytes = options.headBytes
    this.#maxUploads = options.maxUploads ?? MAX_UPLOADS
    this.#idleMs = options.idleMs ?? IDLE_MS
    this.#now = options.now ?? Date.now
    this.#onBytes = options.onBytes ?? (() => undefined)
  }

  /** How many uploads have a digest: what this registry holds in memory. */
  get size(): number {
    return this.#digests.size
  }

  /**
   * Runs a store's `write` of `source` at `offset` with the bytes counted and hashed on their way
   * through (one stream for both: every stage between the request and the store costs per chunk),
   * and resolves with the store's new offset. Bytes the store copies from its own uploads (a
   * concatenation) are hashed but not counted: they were counted when they arrived.
   */
  async write(
    key: string,
    offset: number,
    source: Readable,
    write: (source: Readable) => Promise<number>,
    origin: 'received' | 'copied' = 'received',
  ): Promise<number> {
    const digest = this.#begin(key, offset)
    const onBytes = origin === 'received' ? this.#onBytes : () => undefined
    const passing = new Transform({
      transform: (chunk: Buffer, _encoding, done) => {
        onBytes(chunk.length)
        if (!digest) return done(null, chunk)
        this.#absorb(digest, chunk)
        // The hashing thread is behind: hold the body back rather than queue unbounded copies.
        const room = digest.hash.room()
        if (room) void room.then(() => done(null, chunk))
        else done(null, chunk)
      },
    })
    // pipeline, unlike pipe, hands a failing source's error on to the store.
    const counted = pipeline(source, passing, () => undefined)
    if (!digest) return write(counted)
    let newOffset: number
    try {
      newOffset = await write(counted)
    } catch (error) {
      this.#drop(key, digest)
      throw error
    }
    digest.writing = false
    digest.hash.flush()
    if (digest.length !== newOffset) this.#drop(key, digest)
    else if (!digest.dropped) this.#touch(key, digest)
    return newOffset
  }

  async digestOf(key: string, size: number): Promise<StreamedDigest | undefined> {
    const digest = this.#digests.get(key)
    if (!digest || digest.writing || digest.length !== size) return undefined
    // The hashing thread answers after every batch posted before this question, so for exactly
    // `size` bytes; it keeps the state, since the finish may fail and run again.
    const sha256 = await digest.hash.digest()
    return sha256 === undefined ? undefined : { sha256, head: digest.head }
  }

  headOf(key: string, bytes: number): Uint8Array | undefined {
    const digest = this.#digests.get(key)
    if (!digest || digest.writing || digest.head.length < bytes) return undefined
    return digest.head.subarray(0, bytes)
  }

  forget(key: string): void {
    const digest = this.#digests.get(key)
    if (digest) this.#drop(key, digest)
  }

  releasedElsewhere(key: string): void {
    this.forget(key)
  }

  mayHaveMissedReleases(): void {
    for (const [key, digest] of this.#digests) this.#drop(key, digest)
  }

  /** The digest this write extends, a new one at offset 0, or undefined: the write goes unhashed. */
  #begin(key: string, offset: number): Digesting | undefined {
    this.#dropIdle()
    const known = this.#digests.get(key)
    if (known && !known.writing && known.length === offset) {
      known.writing = true
      this.#touch(key, known)
      return known
    }
    if (known) this.#drop(key, known)
    // A write already under way means the upload lock failed to exclude it: trust neither.
    if (offset !== 0 || known?.writing) return undefined
    const fresh: Digesting = {
      hash: new OffThreadSha256(),
      length: 0,
      head: Buffer.alloc(0),
      lastUsedAt: this.#now(),
      writing: true,
      dropped: false,
    }
    this.#digests.set(key, fresh)
    if (this.#digests.size > this.#maxUploads) {
      const [oldestKey, oldest] = this.#digests.entries().next().value as [string, Digesting]
      this.#drop(oldestKey, oldest)
    }
    return fresh
  }

  #absorb(digest: Digesting, chunk: Buffer): void {
    if (digest.dropped) return
    digest.hash.update(chunk)
    if (digest.length < this.#headBytes) {
      digest.head = Buffer.concat([digest.head, chunk.subarray(0, this.#headBytes - digest.length)])
    }
    digest.length += chunk.length
  }

  /** Moves the digest to the end of the map, which stays in order of last use. */
  #touch(key: string, digest: Digesting): void {
    digest.lastUsedAt = this.#now()
    this.#digests.delete(key)
    this.#digests.set(key, digest)
  }

  #drop(key: string, digest: Digesting): void {
    digest.dropped = true
    digest.hash.drop()
    if (this.#digests.get(key) === digest) this.#digests.delete(key)
  }

  /** Oldest first, so the walk stops at the first digest in use; a write in progress is in use. */
  #dropIdle(): void {
    const idleSince = this.#now() - this.#idleMs
    for (const [key, digest] of this.#digests) {
      if (digest.writing) continue
      if (digest.lastUsedAt > idleSince) return
      this.#drop(key, digest)
    }
  }
}
