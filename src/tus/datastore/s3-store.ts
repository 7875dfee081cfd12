import { once } from 'node:events'
import { createReadStream } from 'node:fs'
import { rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { PassThrough, Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DataStore, ERRORS, StreamSplitter, TUS_RESUMABLE, Upload } from '@tus/utils'
import { SizeAllowance } from '../../lib/size-allowance.ts'
import type { StoredPart } from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'
import { finalUpload } from './common.ts'
import { currentRequestScope } from './request-scope.ts'
import {
  copyPlan,
  infoKeyOf,
  isNotFound,
  MAX_PARTS,
  type S3Objects,
  type SizedBody,
  tailKeyOf,
  type UploadedPart,
} from './s3-objects.ts'

/** The largest upload S3 holds (5 TiB): the part size of an upload of unknown length. */
const MAX_UPLOAD_BYTES = 5 * 1024 ** 4
/**
 * How much of each streaming request's first bytes is kept, in case the body is cut inside it
 * (see PartSender): 1 MiB while few requests stream, 128 KiB each beyond MAX_LARGE_KEEPS, as the
 * hashing thread sizes its batches. Kept bytes are views that pin the socket's reads: 1 MiB for
 * every part streaming made 55 MiB of tusbox's peak RSS with 64 uploads at once (issue 15).
 */
const LARGE_KEEP_BYTES = 1024 * 1024
const SMALL_KEEP_BYTES = 128 * 1024
const MAX_LARGE_KEEPS = 8
/** The user metadata of a tail object: the part number its bytes will become. */
const TAIL_PART_METADATA = 'tusbox-part-number'

export interface S3StoreOptions {
  readonly partSize: number
  readonly minPartSize: number
}

/** What the `.info` object holds: @tus/s3-store's layout, so uploads it created still resume. */
interface UploadInfo {
  readonly id: string
  size: number | undefined
  readonly metadata: Record<string, string | null> | undefined
  readonly creation_date: string | undefined
  readonly storage: { type: string; path: string; bucket?: string } | undefined
}

/** Bytes kept in the tail object, waiting for enough to make a part. */
interface Tail {
  readonly size: number
  /** Undefined for a tail @tus/s3-store wrote, which it deleted before using it. */
  readonly partNumber: number | undefined
}

/** Everything known of one upload in S3; offset = its parts + its tail, or its size once complete. */
interface UploadState {
  readonly info: UploadInfo
  /** Undefined until the first write that is not the whole upload in one object. */
  uploadId: string | undefined
  /** The multipart upload being opened. */
  opening?: Promise<string>
  parts: UploadedPart[]
  tail: Tail | undefined
  /** A tail object whose bytes are in a part already: delete it, never count it. */
  staleTail: boolean
  complete: boolean
}

/**
 * The tus store on S3: tusbox's own, built on @tus/s3-store's layout (`<key>.info`, a multipart
 * upload on `<key>`, `<key>.part` for a tail below S3's smallest part), so uploads that store
 * created still resume, and on @tus/s3-store's ideas (tusd's s3store).
 *
 * Why not @tus/s3-store 2.0.7 itself (tusbox subclassed it until issue 15 counted it: 17 S3
 * requests for one 100 KiB upload in one PATCH, 39 for 3 × 8 MiB):
 * - it stages every part in a temporary file (StreamSplitter) and uploads it from there, even
 *   when the PATCH's Content-Length tells the part sizes before a byte arrives; here a body of
 *   known length streams straight into UploadPart, and only one of unknown length is staged;
 * - it reads `.info`, ListParts and the tail on every getUpload and again in every write (8
 *   GetObjects and 4 ListParts for the small upload), and its only cache is per process, which
 *   several instances without sticky sessions cannot use (tus/tus-node-server#552); here what a
 *   request learnt is kept for that request only (RequestScope), under the upload's lock;
 * - it always opens a multipart upload at creation; here an upload written whole by one body
 *   that fits one part becomes one PutObject, and the multipart upload is opened by the first
 *   write that needs it;
 * - it deletes a tail before using it, so a failed write loses acknowledged bytes; here a tail
 *   names the part it becomes, and is ignored once that part exists.
 */
export class LeanS3Store extends DataStore {
  readonly #objects: S3Objects
  readonly #digests: StreamedDigestRegistry
  readonly #preferredPartSize: number
  readonly #minPartSize: number
  readonly #keeps = new SizeAllowance({
    large: LARGE_KEEP_BYTES,
    small: SMALL_KEEP_BYTES,
    maxLarge: MAX_LARGE_KEEPS,
  })

  constructor(objects: S3Objects, digests: StreamedDigestRegistry, options: S3StoreOptions) {
    super()
    this.extensions = [
      'creation',
      'creation-with-upload',
      'creation-defer-length',
      'termination',
      'expiration',
    ]
    this.#objects = objects
    this.#digests = digests
    this.#preferredPartSize = options.partSize
    this.#minPartSize = Math.max(options.minPartSize, 1)
  }

  /**
   * Writes only the info: the multipart upload waits for a write that needs one. An empty upload
   * (Upload-Length: 0) is complete at once, and so is its object.
   */
  override async create(upload: Upload): Promise<Upload> {
    await this.#create(upload)
    return upload
  }

  async #create(upload: Upload): Promise<UploadState> {
    upload.creation_date ??= new Date().toISOString()
    upload.storage = { type: 's3', path: upload.id, bucket: this.#objects.bucket }
    const state: UploadState = {
      info: {
        id: upload.id,
        size: upload.size,
        metadata: upload.metadata,
        creation_date: upload.creation_date,
        storage: upload.storage,
      },
      uploadId: undefined,
      parts: [],
      tail: undefined,
      staleTail: false,
      complete: false,
    }
    await this.#writeInfo(state)
    if (upload.size === 0) await this.#complete(state)
    this.#remember(state)
    return state
  }

  override async getUpload(id: string): Promise<Upload> {
    const state = await this.#stateOf(id)
    return new Upload({ ...state.info, offset: offsetOf(state) })
  }

  /** Records the length; an upload that already has every byte is completed here. */
  override async declareUploadLength(id: string, size: number): Promise<void> {
    const state = await this.#stateOf(id)
    state.info.size = size
    await this.#guarded(state, async () => {
      await this.#writeInfo(state)
      if (!state.complete && offsetOf(state) === size) await this.#complete(state)
    })
    this.#remember(state)
  }

  /** Hashed on the way (StreamedDigestRegistry), as every write to any store. */
  override write(src: Readable, id: string, offset: number): Promise<number> {
    const length = currentRequestScope()?.takeBodyLength()
    return this.#digests.write(id, offset, src, (hashed) =>
      this.#append(id, offset, endedWhenCut(hashed), length),
    )
  }

  override async remove(id: string): Promise<void> {
    this.#digests.forget(id)
    currentRequestScope()?.forget(scopeKey(id))
    await this.#objects.removeUpload(id)
  }

  /**
   * A final upload made inside S3 with UploadPartCopy where S3's part rules allow: no byte
   * passes through tusbox, and the finish step reads the object once to hash it. Otherwise the
   * partials are streamed into it as writes, hashed on the way, so the finish reads nothing.
   */
  async concatenate(
    key: string,
    parts: readonly StoredPart[],
    metadata: Readonly<Record<string, string | null>> | undefined,
  ): Promise<void> {
    const state = await this.#create(finalUpload(key, parts, metadata))
    if (state.complete) return
    const plan = copyPlan(parts)
    if (plan) {
      await this.#guarded(state, async () => {
        const uploadId = await this.#multipartUploadOf(state)
        state.parts = await Promise.all(
          plan.map(async (source, index) => ({
            number: index + 1,
            etag: await this.#objects.copyPart({ key, uploadId, partNumber: index + 1 }, source),
            size: source.range ? source.range.end - source.range.start + 1 : sizeOf(parts, source),
          })),
        )
        await this.#complete(state)
      })
      this.#remember(state)
      return
    }
    let offset = 0
    for (const part of parts) {
      const { Body } = await this.#objects.get(part.key)
      if (!(Body instanceof Readable))
        throw new Error(`S3 returned no readable body for ${part.key}`)
      const start = offset
      offset = await this.#digests.write(
        key,
        start,
        Body,
        (hashed) => this.#append(key, start, endedWhenCut(hashed), part.size),
        'copied',
      )
    }
  }

  async #append(
    id: string,
    offset: number,
    body: Readable,
    length: number | undefined,
  ): Promise<number> {
    const state = await this.#stateOf(id)
    if (offsetOf(state) !== offset) throw ERRORS.INVALID_OFFSET
    const size = state.info.size
    if (state.complete || length === 0) {
      // Read to its end all the same: whoever handed the body over learns that it ended.
      await new PartSender(body, this.#keeps).drain()
      return offset
    }
    await this.#guarded(state, async () => {
      const reachesEnd = size !== undefined && length !== undefined && offset + length === size
      if (!state.uploadId && reachesEnd && length <= this.#partSizeOf(state)) {
        // The whole upload in one body that fits one part: one PutObject, no multipart upload.
        if (await this.#putWhole(state, body, length)) state.complete = true
        return
      }
      if (length === undefined) await this.#stageParts(state, body)
      else await this.#streamParts(state, body, length)
      if (size !== undefined && offsetOf(state) === size) await this.#complete(state)
      else if (state.staleTail && !state.tail) await this.#dropStaleTail(state)
    })
    this.#remember(state)
    return offsetOf(state)
  }

  /** The object in one request; false when the body ended early (S3 stored nothing). */
  async #putWhole(state: UploadState, body: Readable, length: number): Promise<boolean> {
    const sender = new PartSender(body, this.#keeps)
    const whole = await sender.send(length, (part) => this.#objects.put(state.info.id, part))
    if (!whole) await this.#keepCut(state, sender.keptOfCut())
    await sender.drain()
    return whole
  }

  /**
   * Streams a body of known length straight into parts: `length` and the tail say every part's
   * size before a byte arrives. Each part's request starts as its first byte does, so S3 stores
   * the previous one while the next streams. Bytes of a part the body ends inside are lost with
   * that part's request (the offset only counts parts S3 acknowledged: the client resends them).
   */
  async #streamParts(state: UploadState, body: Readable, length: number): Promise<void> {
    const tail = state.tail ? await this.#readTail(state) : new Uint8Array()
    const size = state.info.size
    const final = size !== undefined && offsetOf(state) + length === size
    const plan = planParts(tail.length + length, final, this.#partSizeOf(state), this.#minPartSize)
    const sender = new PartSender(body, this.#keeps, tail)
    const first = (state.parts.at(-1)?.number ?? 0) + 1
    const uploads: Promise<UploadedPart>[] = []
    for (const [index, partSize] of plan.parts.entries()) {
      const number = first + index
      const stored = sender
        .start(partSize, (part) => this.#uploadPart(state, number, part))
        .then((etag) => ({ number, etag, size: partSize }))
      // Settled below, after the parts before it: never an unhandled rejection meanwhile.
      stored.catch(() => undefined)
      uploads.push(stored)
      if (!(await sender.streamed())) break
    }
    const failure = this.#recordParts(state, await Promise.allSettled(uploads))
    if (failure !== undefined && !sender.cut) throw failure
    // The request the body ended inside, if it did: a part, or else the tail.
    let cutNumber = first + uploads.length - 1
    if (plan.tail > 0 && !sender.cut) {
      cutNumber = first + plan.parts.length
      await sender.send(plan.tail, (part) => this.#writeTail(state, part, cutNumber))
    }
    // What S3 acknowledged before the end stands, and the first bytes of the request that the
    // end aborted follow it, if every part before that request landed.
    if (sender.cut && (state.parts.at(-1)?.number ?? 0) === cutNumber - 1) {
      await this.#keepCut(state, sender.keptOfCut())
    }
    await sender.drain()
  }

  /**
   * A body of unknown length is cut into parts in temporary files (StreamSplitter, as
   * @tus/s3-store does): S3 needs each part's length before its bytes. The last piece below
   * S3's smallest part becomes the tail, unless it ends the upload.
   */
  async #stageParts(state: UploadState, body: Readable): Promise<void> {
    const tail = state.tail ? await this.#readTail(state) : undefined
    const splitter = new StreamSplitter({ chunkSize: this.#partSizeOf(state), directory: tmpdir() })
    splitter.on('chunkFinished', async ({ path, size }: { path: string; size: number }) => {
      try {
        const number = (state.parts.at(-1)?.number ?? 0) + 1
        const piece = { body: createReadStream(path), length: size }
        const partsEnd = state.parts.reduce((total, part) => total + part.size, 0) + size
        if (size >= this.#minPartSize || partsEnd === state.info.size) {
          const etag = await this.#uploadPart(state, number, piece)
          state.parts.push({ number, etag, size })
          if (state.tail) {
            state.tail = undefined
            state.staleTail = true
          }
        } else {
          await this.#writeTail(state, piece, number)
        }
      } finally {
        await rm(path, { force: true })
      }
    })
    await pipeline(Readable.from(prefixed(tail, body)), splitter)
  }

  /**
   * Keeps the first bytes of a request the body ended inside, right after the parts, as the tail
   * (in place of the one that request began with, which they start with): at most one byte below
   * S3's smallest part, so that every part keeps the size the plan gave it.
   */
  async #keepCut(state: UploadState, received: Uint8Array): Promise<void> {
    const bytes = received.subarray(0, this.#minPartSize - 1)
    if (bytes.length <= (state.tail?.size ?? 0)) return
    const number = (state.parts.at(-1)?.number ?? 0) + 1
    await this.#writeTail(state, { body: bytes, length: bytes.length }, number)
  }

  /** The acknowledged parts in number order up to the first failure, which is returned. */
  #recordParts(
    state: UploadState,
    settled: readonly PromiseSettledResult<UploadedPart>[],
  ): unknown | undefined {
    for (const result of settled) {
      if (result.status === 'rejected') return result.reason
      state.parts.push(result.value)
      if (state.tail) {
        state.tail = undefined
        state.staleTail = true
      }
    }
    return undefined
  }

  /** Completes the multipart upload (or writes the empty object of an empty upload). */
  async #complete(state: UploadState): Promise<void> {
    if (!state.uploadId) {
      await this.#objects.put(state.info.id, { body: new Uint8Array(), length: 0 })
      state.complete = true
      return
    }
    if (state.tail) {
      const bytes = await this.#readTail(state)
      const number = (state.parts.at(-1)?.number ?? 0) + 1
      const part = { body: bytes, length: bytes.length }
      state.parts.push({
        number,
        etag: await this.#uploadPart(state, number, part),
        size: bytes.length,
      })
      state.tail = undefined
      state.staleTail = true
    }
    // S3 completes no multipart upload without a part; the last part may be empty.
    if (state.parts.length === 0) {
      const empty = { body: new Uint8Array(), length: 0 }
      state.parts.push({ number: 1, etag: await this.#uploadPart(state, 1, empty), size: 0 })
    }
    await this.#objects.completeMultipartUpload(state.info.id, state.uploadId, state.parts)
    state.complete = true
    if (state.staleTail) await this.#dropStaleTail(state)
  }

  /** The upload's multipart upload, opened (once, however many parts ask at a time) if need be. */
  #multipartUploadOf(state: UploadState): Promise<string> {
    if (state.uploadId) return Promise.resolve(state.uploadId)
    state.opening ??= (async () => {
      const uploadId = await this.#objects.createMultipartUpload(state.info.id)
      state.uploadId = uploadId
      await this.#writeInfo(state)
      return uploadId
    })()
    return state.opening
  }

  /** Opens the multipart upload first if need be: a body refused before any part opens none. */
  async #uploadPart(state: UploadState, partNumber: number, part: SizedBody): Promise<string> {
    const uploadId = await this.#multipartUploadOf(state)
    return this.#objects.uploadPart({ key: state.info.id, uploadId, partNumber }, part)
  }

  /** A tail belongs to a multipart upload: reading the state looks for one only beside it. */
  async #writeTail(state: UploadState, part: SizedBody, partNumber: number): Promise<void> {
    await this.#multipartUploadOf(state)
    await this.#objects.put(tailKeyOf(state.info.id), part, {
      [TAIL_PART_METADATA]: String(partNumber),
    })
    state.tail = { size: part.length, partNumber }
    state.staleTail = false
  }

  async #readTail(state: UploadState): Promise<Uint8Array> {
    const { Body } = await this.#objects.get(tailKeyOf(state.info.id))
    const bytes = (await Body?.transformToByteArray()) ?? new Uint8Array()
    if (bytes.length !== state.tail?.size)
      throw new Error(`the tail of ${state.info.id} changed while the upload was locked`)
    return bytes
  }

  async #dropStaleTail(state: UploadState): Promise<void> {
    await this.#objects.delete(tailKeyOf(state.info.id))
    state.staleTail = false
  }

  async #writeInfo(state: UploadState): Promise<void> {
    const { info } = state
    await this.#objects.put(infoKeyOf(info.id), bytesOf(JSON.stringify({ ...info, offset: 0 })), {
      'tus-version': TUS_RESUMABLE,
      ...(state.uploadId ? { 'upload-id': state.uploadId } : {}),
    })
  }

  /** S3's part size rules for this upload: the preferred size, larger when 10,000 parts would not hold it. */
  #partSizeOf(state: UploadState): number {
    const size = state.info.size ?? MAX_UPLOAD_BYTES
    const fitting = Math.max(this.#preferredPartSize, Math.ceil(size / MAX_PARTS))
    return Math.max(Math.min(fitting, size), this.#minPartSize)
  }

  /** On any failure the state may be off: this request forgets it, the next one reads S3 again. */
  async #guarded(state: UploadState, work: () => Promise<void>): Promise<void> {
    try {
      await work()
    } catch (error) {
      currentRequestScope()?.forget(scopeKey(state.info.id))
      throw error
    }
  }

  async #stateOf(id: string): Promise<UploadState> {
    const known = currentRequestScope()?.recall<UploadState>(scopeKey(id))
    if (known) return known
    const state = await this.#read(id)
    this.#remember(state)
    return state
  }

  /** Again after each change: a complete upload's state holds after the lock is let go. */
  #remember(state: UploadState): void {
    currentRequestScope()?.remember(scopeKey(state.info.id), state, state.complete)
  }

  /** One GetObject of the info, then ListParts and the tail, or whether the object exists. */
  async #read(id: string): Promise<UploadState> {
    let answer: Awaited<ReturnType<S3Objects['get']>>
    try {
      answer = await this.#objects.get(infoKeyOf(id))
    } catch (error) {
      if (isNotFound(error)) throw ERRORS.FILE_NOT_FOUND
      throw error
    }
    const info = parseInfo(id, (await answer.Body?.transformToString()) ?? '{}')
    const uploadId = answer.Metadata?.['upload-id'] || undefined
    const state: UploadState = {
      info,
      uploadId,
      parts: [],
      tail: undefined,
      staleTail: false,
      complete: false,
    }
    if (!uploadId) {
      state.complete = (await this.#objects.head(id)) !== undefined
      return state
    }
    // Both at once: neither needs the other's answer.
    const [parts, tail] = await Promise.all([
      this.#objects.listParts(id, uploadId),
      this.#objects.head(tailKeyOf(id)),
    ])
    if (!parts) {
      state.complete = true
      return state
    }
    state.parts = parts
    if (tail) {
      const recorded = tail.metadata[TAIL_PART_METADATA]
      const partNumber = recorded === undefined ? undefined : Number(recorded)
      // A tail counts only as the part right after the last one; any other is already a part
      // (or was written after a part that failed, so its bytes do not follow the parts').
      const follows = partNumber === undefined || partNumber === parts.length + 1
      if (follows) state.tail = { size: tail.size, partNumber }
      else state.staleTail = true
    }
    return state
  }
}

const scopeKey = (id: string) => `s3-upload:${id}`

function offsetOf(state: UploadState): number {
  if (state.complete) return state.info.size ?? 0
  return state.parts.reduce((total, part) => total + part.size, 0) + (state.tail?.size ?? 0)
}

function sizeOf(parts: readonly StoredPart[], source: { key: string }): number {
  return parts.find((part) => part.key === source.key)?.size ?? 0
}

function parseInfo(id: string, text: string): UploadInfo {
  const stored = JSON.parse(text) as Record<string, unknown>
  const size = Number(stored.size)
  return {
    id,
    size:
      stored.size !== undefined && stored.size !== null && Number.isFinite(size) ? size : undefined,
    metadata: stored.metadata as UploadInfo['metadata'],
    creation_date: stored.creation_date as string | undefined,
    storage: stored.storage as UploadInfo['storage'],
  }
}

function bytesOf(text: string): SizedBody {
  const body = Buffer.from(text)
  return { body, length: body.length }
}

/**
 * The sizes of the parts `total` bytes make, and the tail left below S3's smallest part: parts of
 * `partSize`, then the rest as a part when it ends the upload or is large enough, else as the
 * tail. As @tus/s3-store cuts them, so that S3_MIN_PART_SIZE = S3_PART_SIZE still gives parts of
 * one size (Cloudflare R2 requires it).
 */
export function planParts(
  total: number,
  final: boolean,
  partSize: number,
  minPartSize: number,
): { parts: number[]; tail: number } {
  const parts = Array.from({ length: Math.floor(total / partSize) }, () => partSize)
  const rest = total % partSize
  if (rest === 0) return { parts, tail: 0 }
  if (final || rest >= minPartSize) return { parts: [...parts, rest], tail: 0 }
  return { parts, tail: rest }
}

async function* prefixed(head: Uint8Array | undefined, body: Readable): AsyncGenerator<Uint8Array> {
  if (head && head.length > 0) yield head
  yield* body
}

/**
 * Cuts one body into consecutive requests of known lengths, each streamed as its bytes arrive.
 * A request whose bytes the body does not hold (it ended first) is aborted, so S3 stores nothing
 * of it, and `cut` is set; the first bytes of that request, up to its keep allowance past the
 * head, stay in memory for the store to keep (`keptOfCut`). Keeping all of them would cost a
 * part's size of memory (or disk) per upload in flight, on every request, for the rare one that
 * is cut; once a request has all its bytes, no cut can fall inside it, and its kept bytes go.
 */
class PartSender {
  readonly #chunks: AsyncIterator<Buffer>
  readonly #keeps: SizeAllowance
  /** What the streaming request may keep past the head. */
  #keepLimit = 0
  #pending: Uint8Array | undefined
  #streaming: Promise<boolean> = Promise.resolve(true)
  /** The head's bytes not yet fed: they are always kept, whatever their size. */
  #headLeft: number
  #kept: Uint8Array[] = []
  #keptBeyondHead = 0
  cut = false

  constructor(body: Readable, keeps: SizeAllowance, head?: Uint8Array) {
    this.#chunks = body[Symbol.asyncIterator]()
    this.#keeps = keeps
    this.#pending = head && head.length > 0 ? head : undefined
    this.#headLeft = head?.length ?? 0
  }

  /** The first bytes of the request the body ended inside; empty when none was cut. */
  keptOfCut(): Uint8Array {
    return this.cut ? Buffer.concat(this.#kept) : new Uint8Array()
  }

  /** Starts the request of the next `length` bytes; `streamed()` says when its bytes are sent. */
  start<T>(length: number, request: (part: SizedBody) => Promise<T>): Promise<T> {
    this.#kept = []
    this.#keptBeyondHead = 0
    const body = new PassThrough()
    // Its reader is the SDK's request, which may stop listening once it failed.
    body.on('error', () => undefined)
    const abort = new AbortController()
    const answer = request({ body, length, signal: abort.signal })
    answer.catch(() => body.destroy())
    this.#streaming = this.#feed(body, length, abort)
    return answer
  }

  /**
   * Reads the body to its end once every part has its bytes: whoever handed the body over learns
   * it ended (RUFH tells a complete body from a cut one that way).
   */
  async drain(): Promise<void> {
    while (await this.#next()) {
      // A body longer than it said is cut at its length by the HTTP parser: nothing comes here.
    }
  }

  /** Resolves true once the last request's bytes were all handed over, false if the body ended first. */
  streamed(): Promise<boolean> {
    return this.#streaming
  }

  /** One whole request: false (nothing stored) when the body ended before `length` bytes. */
  async send(length: number, request: (part: SizedBody) => Promise<unknown>): Promise<boolean> {
    const answer = this.start(length, request)
    const whole = await this.streamed()
    try {
      await answer
    } catch (error) {
      if (whole) throw error
    }
    return whole
  }

  async #feed(target: PassThrough, length: number, abort: AbortController): Promise<boolean> {
    this.#keepLimit = this.#keeps.take()
    try {
      return await this.#feedKeeping(target, length, abort)
    } finally {
      this.#keeps.giveBack(this.#keepLimit)
    }
  }

  async #feedKeeping(
    target: PassThrough,
    length: number,
    abort: AbortController,
  ): Promise<boolean> {
    let left = length
    while (left > 0) {
      const chunk = this.#pending ?? (await this.#next())
      this.#pending = undefined
      // The request failed: its error is the answer, and nothing more is sent.
      if (target.destroyed) return false
      if (!chunk) {
        this.cut = true
        abort.abort()
        target.destroy(new Error('the request body ended before the part did'))
        return false
      }
      const piece = chunk.length > left ? chunk.subarray(0, left) : chunk
      if (chunk.length > left) this.#pending = chunk.subarray(left)
      left -= piece.length
      this.#keep(piece)
      if (!target.write(piece)) await drainedOrClosed(target)
    }
    this.#kept = []
    target.end()
    return true
  }

  #keep(piece: Uint8Array): void {
    const ofHead = Math.min(this.#headLeft, piece.length)
    this.#headLeft -= ofHead
    const room = ofHead + this.#keepLimit - this.#keptBeyondHead
    if (room <= 0) return
    const kept = piece.length > room ? piece.subarray(0, room) : piece
    this.#kept.push(kept)
    this.#keptBeyondHead += kept.length - ofHead
  }

  async #next(): Promise<Uint8Array | undefined> {
    const { value, done } = await this.#chunks.next()
    return done ? undefined : value
  }
}

async function drainedOrClosed(stream: PassThrough): Promise<void> {
  const controller = new AbortController()
  try {
    await Promise.race([
      once(stream, 'drain', { signal: controller.signal }),
      once(stream, 'close', { signal: controller.signal }),
    ])
  } catch {
    // 'error' on the way: the request failed, and the next write sees the stream destroyed.
  } finally {
    controller.abort()
  }
}

/**
 * A PATCH whose connection is cut destroys the request body; the store sees an end instead, so it
 * keeps what it can and reports where the upload ends, as FileStore does.
 */
function endedWhenCut(src: Readable): Readable {
  const body = new PassThrough()
  const endBody = () => {
    if (!body.writableEnded) body.end()
  }
  src.once('error', endBody)
  src.once('close', endBody)
  src.pipe(body)
  if (src.destroyed) endBody()
  return body
}
