import { Worker } from 'node:worker_threads'
import { SizeAllowance } from '../lib/size-allowance.ts'

/** What the hashing thread is sent (see sha256-worker.js). */
export type ToHasher =
  | {
      readonly type: 'update'
      readonly id: number
      readonly buffer: ArrayBuffer
      readonly length: number
    }
  | { readonly type: 'digest'; readonly id: number; readonly request: number }
  | { readonly type: 'drop'; readonly id: number }

type FromHasher =
  | { readonly type: 'consumed'; readonly buffer: ArrayBuffer }
  | { readonly type: 'digest'; readonly request: number; readonly sha256: string }

/**
 * Bytes are copied into batches and the batch is transferred, never the chunk itself: a chunk's
 * ArrayBuffer may be shared (the HTTP parser slices bodies out of the socket's reads,
 * Buffer.allocUnsafe slices a pool), and the store still writes it after we saw it, so
 * transferring it would detach memory in use. Each upload being written holds one batch. While
 * few do, a batch is 1 MiB: the thread is sent (and woken by) one message per MiB, not one per
 * 128 KiB, which halved the main thread's cost of the hashing (1 GiB in 64 KiB pieces: 40–60
 * against 100–110 ms, and 680 against 790 ms on all threads). Beyond MAX_LARGE_BATCHES_HELD
 * uploads a batch is 128 KiB, so 64 uploads at once hold 15 MiB, not 64.
 */
const LARGE_BATCH_BYTES = 1024 * 1024
const SMALL_BATCH_BYTES = 128 * 1024
const MAX_LARGE_BATCHES_HELD = 8
/** Bytes posted and not yet hashed; beyond it writes wait, so memory stays bounded. */
const MAX_IN_FLIGHT_BYTES = 4 * 1024 * 1024
/**
 * Batches of each size kept for reuse once hashed: allocating them anew would feed the collector
 * a copy of every byte. As many as can be in flight, so that however many uploads are written at
 * once, each batch that comes back is the next one taken (with fewer, 64 uploads at once
 * allocated a new batch for most of theirs); idle, they hold 8 MiB.
 */
const MAX_SPARE_BYTES = MAX_IN_FLIGHT_BYTES

/**
 * One thread hashing for the whole process: SHA-256 (native, about 1.1 GB/s here) runs beside
 * the event loop instead of on it, which costs the main thread a copy of each byte instead of
 * hashing it (measured in docs/benchmarks.md).
 */
class HashingThread {
  readonly #worker: Worker
  readonly #answers = new Map<number, (sha256: string | undefined) => void>()
  readonly #spare = new Map<number, ArrayBuffer[]>([
    [LARGE_BATCH_BYTES, []],
    [SMALL_BATCH_BYTES, []],
  ])
  readonly #waitingForRoom: (() => void)[] = []
  #inFlightBytes = 0
  readonly #batchSizes = new SizeAllowance({
    large: LARGE_BATCH_BYTES,
    small: SMALL_BATCH_BYTES,
    maxLarge: MAX_LARGE_BATCHES_HELD,
  })
  #nextId = 1
  #nextRequest = 1
  #alive = true

  constructor() {
    this.#worker = new Worker(new URL('./sha256-worker.js', import.meta.url))
    // An idle hashing thread must not keep a process alive; work in flight does (#holdOpen).
    this.#worker.unref()
    this.#worker.on('message', (message: FromHasher) => this.#receive(message))
    this.#worker.on('error', () => this.#die())
    this.#worker.on('exit', () => this.#die())
  }

  get alive(): boolean {
    return this.#alive
  }

  newId(): number {
    return this.#nextId++
  }

  /** A batch for an upload to fill; it gives it back by posting it, or with giveBack. */
  takeBuffer(): ArrayBuffer {
    const size = this.#batchSizes.take()
    return this.#spare.get(size)?.pop() ?? new ArrayBuffer(size)
  }

  /** A batch taken and not posted. */
  giveBack(buffer: ArrayBuffer): void {
    this.#returned(buffer)
    this.#keep(buffer)
  }

  post(id: number, buffer: ArrayBuffer, length: number): void {
    this.#returned(buffer)
    if (!this.#alive) return
    this.#inFlightBytes += buffer.byteLength
    this.#holdOpen()
    this.#send({ type: 'update', id, buffer, length }, [buffer])
  }

  /** Resolves once fewer bytes are in flight than the bound; undefined when there is room now. */
  room(): Promise<void> | undefined {
    if (!this.#alive || this.#inFlightBytes < MAX_IN_FLIGHT_BYTES) return undefined
    return new Promise((resolve) => this.#waitingForRoom.push(resolve))
  }

  digest(id: number): Promise<string | undefined> {
    if (!this.#alive) return Promise.resolve(undefined)
    const request = this.#nextRequest++
    return new Promise((resolve) => {
      this.#answers.set(request, resolve)
      this.#holdOpen()
      this.#send({ type: 'digest', id, request })
    })
  }

  drop(id: number): void {
    if (this.#alive) this.#send({ type: 'drop', id })
  }

  /**
   * Keeps the process alive while the thread holds work someone waits for (a writer waiting for
   * room, a digest asked for), and only then: its replies would otherwise never be heard.
   */
  #holdOpen(): void {
    if (this.#inFlightBytes > 0 || this.#answers.size > 0) this.#worker.ref()
    else this.#worker.unref()
  }

  #returned(buffer: ArrayBuffer): void {
    this.#batchSizes.giveBack(buffer.byteLength)
  }

  #keep(buffer: ArrayBuffer): void {
    const spare = this.#spare.get(buffer.byteLength)
    if (spare && (spare.length + 1) * buffer.byteLength <= MAX_SPARE_BYTES) spare.push(buffer)
  }

  #send(message: ToHasher, transfer: ArrayBuffer[] = []): void {
    this.#worker.postMessage(message, transfer)
  }

  #receive(message: FromHasher): void {
    if (message.type === 'consumed') {
      this.#inFlightBytes -= message.buffer.byteLength
      this.#holdOpen()
      this.#keep(message.buffer)
      // Every writer waiting goes on, not one per batch given back: a writer woken alone may
      // post nothing more (its client paused, its body ended), and the others would wait on it.
      // Each takes one chunk before it asks again: the bound holds within a chunk per writer.
      if (this.#inFlightBytes < MAX_IN_FLIGHT_BYTES) {
        for (const resolve of this.#waitingForRoom.splice(0)) resolve()
      }
      return
    }
    this.#answer(message.request, message.sha256)
  }

  #answer(request: number, sha256: string | undefined): void {
    const resolve = this.#answers.get(request)
    this.#answers.delete(request)
    this.#holdOpen()
    resolve?.(sha256)
  }

  /** Every digest it held is lost: their uploads are read back when they finish. */
  #die(): void {
    if (!this.#alive) return
    this.#alive = false
    for (const request of [...this.#answers.keys()]) this.#answer(request, undefined)
    for (const resolve of this.#waitingForRoom.splice(0)) resolve()
  }
}

let shared: HashingThread | undefined

function hashingThread(): HashingThread {
  if (!shared?.alive) shared = new HashingThread()
  return shared
}

/** An incremental SHA-256 computed on the hashing thread; the bytes given to it are copied. */
export class OffThreadSha256 {
  readonly #thread = hashingThread()
  readonly #id = this.#thread.newId()
  #batch: ArrayBuffer | undefined
  #filled = 0
  #dropped = false

  update(chunk: Uint8Array): void {
    if (this.#dropped) return
    for (let offset = 0; offset < chunk.length; ) {
      this.#batch ??= this.#thread.takeBuffer()
      const take = Math.min(this.#batch.byteLength - this.#filled, chunk.length - offset)
      new Uint8Array(this.#batch, this.#filled, take).set(chunk.subarray(offset, offset + take))
      this.#filled += take
      offset += take
      if (this.#filled === this.#batch.byteLength) this.flush()
    }
  }

  /** Sends what is batched; call it when a write ends, so an idle upload holds no batch. */
  flush(): void {
    if (this.#batch && this.#filled > 0) this.#thread.post(this.#id, this.#batch, this.#filled)
    else if (this.#batch) this.#thread.giveBack(this.#batch)
    this.#batch = undefined
    this.#filled = 0
  }

  /** A promise to wait on before giving more bytes, or undefined when there is room now. */
  room(): Promise<void> | undefined {
    return this.#thread.room()
  }

  /** The hex digest of every byte given so far; undefined if the hashing thread died meanwhile. */
  digest(): Promise<string | undefined> {
    this.flush()
    return this.#thread.digest(this.#id)
  }

  drop(): void {
    if (this.#dropped) return
    this.#dropped = true
    if (this.#batch) this.#thread.giveBack(this.#batch)
    this.#batch = undefined
    this.#thread.drop(this.#id)
  }
}
