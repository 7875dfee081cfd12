import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import type { ReadableStreamReadResult } from 'node:stream/web'
import { type RateFloorOptions, watchRateFloor } from './rate-floor.ts'

/**
 * The tus checksum extension (https://tus.io/protocols/resumable-upload#checksum), which
 * @tus/server lacks. A body that carries Upload-Checksum must be refused whole when its digest
 * does not match ("the Server MUST NOT append the data to the upload"), but the store appends
 * bytes as they arrive. So such a body is first received into a temporary file while it is
 * hashed, and only a verified body is handed on, streaming from that file. Requests without the
 * header are passed on untouched and keep streaming straight into the store.
 */

/**
 * Digest length in bytes of each supported algorithm, in the order OPTIONS advertises them. The
 * spec requires sha1; md5 and sha256 are what clients commonly have at hand.
 */
const DIGEST_BYTES: ReadonlyMap<string, number> = new Map([
  ['sha1', 20],
  ['md5', 16],
  ['sha256', 32],
])

export const CHECKSUM_ALGORITHMS: readonly string[] = [...DIGEST_BYTES.keys()]

/** tus checksum extension: "460 Checksum Mismatch". */
export const CHECKSUM_MISMATCH_STATUS = 460

/** tus 1.0.0: the Content-Type of every body that carries upload bytes. */
export const UPLOAD_CONTENT_TYPE = 'application/offset+octet-stream'

export interface ChecksumOptions {
  /** Where bodies wait while their digest is computed. */
  readonly tempDir: string
  /**
   * The largest body that may be buffered: what the upload can still take, and no more than
   * the buffer budget lets one body hold. The caller works it out once the request is admitted.
   */
  readonly maxBodySize: number
  /** Bodies that arrive slower than this are cut (408) and their buffer removed. */
  readonly rateFloor: RateFloorOptions
}

/** The request may go on to @tus/server; `release` removes what verifying it left on disk. */
export interface ChecksumPassed {
  readonly ok: true
  /** The request itself, or a copy whose body streams from the verified temporary file. */
  readonly request: Request
  /** Call once @tus/server has answered: it has read all of the body it is going to read. */
  release(): Promise<void>
}

/** The request is refused before any of its bytes reach the store. */
export interface ChecksumRefused {
  readonly ok: false
  readonly status: number
  readonly code: string
  readonly message: string
}

export type ChecksumResult = ChecksumPassed | ChecksumRefused

interface ExpectedChecksum {
  readonly ok: true
  readonly algorithm: string
  readonly digest: Buffer
}

interface ReceivedBody {
  readonly ok: true
  readonly digest: Buffer
  readonly size: number
}

/**
 * True when `request` carries upload bytes under Upload-Checksum: a PATCH, or a
 * creation-with-upload POST (which carries the first chunk). Only these are buffered, and the
 * caller admits them (id, owner, limits, buffer budget) before verifyChecksum reads a byte.
 */
export function carriesChecksummedBody(request: Request): boolean {
  if (request.headers.get('upload-checksum') === null) return false
  if (request.method === 'PATCH') return true
  // A creation POST without upload data appends no bytes: there is nothing to verify.
  return request.method === 'POST' && request.headers.get('content-type') === UPLOAD_CONTENT_TYPE
}

/** Verifies Upload-Checksum before any byte of the body reaches the store. */
export async function verifyChecksum(
  request: Request,
  options: ChecksumOptions,
): Promise<ChecksumResult> {
  const header = request.headers.get('upload-checksum')
  if (header === null || !carriesChecksummedBody(request)) return passedUntouched(request)
  const expected = parseUploadChecksum(header)
  if (!expected.ok) return expected
  if (Number(request.headers.get('content-length') ?? 0) > options.maxBodySize) {
    return tooLarge(options.maxBodySize)
  }

  await mkdir(options.tempDir, { recursive: true })
  const file = path.join(options.tempDir, `tusbox-checksum-${randomUUID()}`)
  let passed: ChecksumPassed | undefined
  try {
    const received = await receive(request.body, file, expected.algorithm, options)
    if (!received.ok) return received
    if (!timingSafeEqual(received.digest, expected.digest)) {
      return refused(
        CHECKSUM_MISMATCH_STATUS,
        'checksum_mismatch',
        `The body's ${expected.algorithm} digest does not match Upload-Checksum; none of it was stored. Send the chunk again.`,
      )
    }
    passed = forwardFromFile(request, file, received.size)
    return passed
  } finally {
    if (!passed) await rm(file, { force: true })
  }
}

/** OPTIONS: the checksum extension and its algorithms (tus checksum extension, "Headers"). */
export function advertiseChecksum(headers: Headers): void {
  const extensions = headers.get('tus-extension')
  headers.set('Tus-Extension', extensions ? `${extensions},checksum` : 'checksum')
  headers.set('Tus-Checksum-Algorithm', CHECKSUM_ALGORITHMS.join(','))
}

/** `Upload-Checksum: <algorithm> <Base64 digest>`, with exactly one space between the two. */
export function parseUploadChecksum(header: string): ExpectedChecksum | ChecksumRefused {
  const [algorithm, encoded, ...rest] = header.split(' ')
  if (algorithm === undefined || encoded === undefined || rest.length > 0 || algorithm === '') {
    return invalidChecksum('Upload-Checksum must be "<algorithm> <Base64 digest>".')
  }
  const name = algorithm.toLowerCase()
  const length = DIGEST_BYTES.get(name)
  if (length === undefined) {
    // tus checksum extension: an unsupported algorithm is answered with 400 Bad Request.
    return refused(
      400,
      'unsupported_checksum_algorithm',
      `Upload-Checksum algorithm "${algorithm}" is not supported; use one of ${CHECKSUM_ALGORITHMS.join(', ')}.`,
    )
  }
  const digest = Buffer.from(encoded, 'base64')
  // Node's decoder skips characters outside the alphabet; re-encoding catches them.
  if (digest.toString('base64') !== encoded) {
    return invalidChecksum(`A ${name} digest is ${length} bytes, sent as padded Base64.`)
  }
  // A digest of the wrong length can match no body: a mismatch, as the tus compliance tests
  // (sagikazarmark/tus-compliance-tests, checksum) expect, refused before any byte is read.
  if (digest.length !== length) {
    return refused(
      CHECKSUM_MISMATCH_STATUS,
      'checksum_mismatch',
      `Upload-Checksum holds a ${digest.length}-byte digest, but a ${name} digest is ${length} bytes: it cannot match the body; none of it was stored.`,
    )
  }
  return { ok: true, algorithm: name, digest }
}

function passedUntouched(request: Request): ChecksumPassed {
  return { ok: true, request, release: async () => {} }
}

/**
 * Writes the body to `file` and hashes it on the way; reading stops at `maxBodySize` bytes, or
 * when the body arrives slower than the rate floor.
 */
async function receive(
  body: ReadableStream<Uint8Array> | null,
  file: string,
  algorithm: string,
  options: ChecksumOptions,
): Promise<ReceivedBody | ChecksumRefused> {
  const limit = options.maxBodySize
  const hash = createHash(algorithm)
  // 0o600: the body is someone's file, and the temporary directory may be shared.
  const handle = await open(file, 'wx', 0o600)
  const reader = body?.getReader()
  // Cancelling ends the pending read with done: true; `tripped` tells it from a complete body.
  const floor = watchRateFloor(options.rateFloor, () => void reader?.cancel().catch(() => {}))
  let size = 0
  try {
    while (reader) {
      let next: ReadableStreamReadResult<Uint8Array>
      try {
        next = await reader.read()
      } catch {
        // The client went away mid-body: nothing of it may reach the store.
        return refused(400, 'request_aborted', 'The request body ended before it was complete.')
      }
      if (floor.tripped) return tooSlow(options.rateFloor)
      if (next.done) break
      size += next.value.byteLength
      floor.received(next.value.byteLength)
      if (size > limit) {
        await reader.cancel()
        return tooLarge(limit)
      }
      hash.update(next.value)
      await writeAll(handle, next.value)
    }
  } finally {
    floor.stop()
    await handle.close()
  }
  return { ok: true, digest: hash.digest(), size }
}

/** A write may be short; the verified file must hold every byte that was hashed. */
async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let written = 0
  while (written < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.byteLength - written)
    written += bytesWritten
  }
}

/** The same request, its body now read back from the verified file. */
function forwardFromFile(request: Request, file: string, size: number): ChecksumPassed {
  const source = createReadStream(file)
  const headers = new Headers(request.headers)
  // The length is known now; @tus/server checks it against the upload before writing.
  headers.set('Content-Length', String(size))
  headers.delete('Transfer-Encoding')
  return {
    ok: true,
    request: new Request(request.url, {
      method: request.method,
      headers,
      body: Readable.toWeb(source) as ReadableStream<Uint8Array>,
      duplex: 'half',
    }),
    release: async () => {
      // @tus/server may have answered without reading the body (409, 404, 413 ...).
      source.destroy()
      await rm(file, { force: true })
    },
  }
}

function tooSlow(floor: RateFloorOptions): ChecksumRefused {
  return refused(
    408,
    'body_too_slow',
    `The body arrived slower than ${floor.minBytesPerSecond} bytes per second over ${floor.windowMs / 1000} s; none of it was stored. Resume the upload.`,
  )
}

function tooLarge(limit: number): ChecksumRefused {
  return refused(413, 'size_exceeded', `A request body may hold at most ${limit} bytes.`)
}

function invalidChecksum(message: string): ChecksumRefused {
  return refused(400, 'invalid_checksum', message)
}

function refused(status: number, code: string, message: string): ChecksumRefused {
  return { ok: false, status, code, message }
}
