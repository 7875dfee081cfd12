import { Metadata } from '@tus/utils'
import type { Principal } from '../auth/authenticate.ts'
import { AppError, TooManyError } from '../lib/errors.ts'
import { RETRY_AFTER_SECONDS } from '../lib/http-status.ts'
import type { UploadService } from '../uploads/upload.service.ts'
import type { BufferBudget, BufferReservation } from './buffer-budget.ts'

export interface BodyAdmissionDeps {
  readonly uploads: UploadService
  readonly budget: BufferBudget
}

/** What a body about to be buffered is allowed: where it goes, and how many bytes it may hold. */
export type BufferedBodyTarget =
  | { readonly kind: 'append'; readonly storageKey: string | undefined }
  | {
      readonly kind: 'create'
      readonly size: number | undefined
      readonly metadata: Readonly<Record<string, string | null>> | undefined
      /** tus concatenation: a partial upload, which is checked as one. */
      readonly concat: 'partial' | undefined
    }

/**
 * Admits a body that will be buffered before it reaches the store (Upload-Checksum today),
 * before a single byte of it is read (security review M1): the upload exists and is the
 * requester's (or, for a creation, every creation rule and the owner's limits pass), the body
 * fits what the upload can still take, and the buffer budget has room for it. The reservation
 * it returns bounds the body; release it once the request is answered. Throws AppError.
 * Protocol-neutral: any edge that buffers a body calls it first.
 */
export async function admitBufferedBody(
  deps: BodyAdmissionDeps,
  target: BufferedBodyTarget,
  declaredLength: number | undefined,
  principal: Principal,
): Promise<BufferReservation> {
  const allowance = await allowanceOf(deps.uploads, target, principal)
  const largest = deps.budget.largestBody(principal.owner)
  if (declaredLength !== undefined && declaredLength > allowance) {
    throw new AppError(
      'too_large',
      'size_exceeded',
      `The body has ${declaredLength} bytes; the upload can take ${allowance} more.`,
    )
  }
  if (declaredLength !== undefined && declaredLength > largest) {
    throw new AppError(
      'too_large',
      'checksummed_chunk_too_large',
      `A checksummed chunk may hold at most ${largest} bytes; send the upload in smaller chunks.`,
    )
  }
  const bytes = Math.min(declaredLength ?? allowance, allowance, largest)
  const reservation = deps.budget.reserve(principal.owner, bytes)
  if (reservation === 'owner') {
    throw new TooManyError(
      'too_many_buffered_bytes',
      'Your checksummed chunks in flight already hold your share of the server buffer; wait for them to finish.',
      RETRY_AFTER_SECONDS,
    )
  }
  if (reservation === 'total') {
    throw new AppError(
      'unavailable',
      'checksum_buffer_full',
      'The server buffers as many checksummed chunks as it can hold; try again shortly.',
    )
  }
  return reservation
}

async function allowanceOf(
  uploads: UploadService,
  target: BufferedBodyTarget,
  principal: Principal,
): Promise<number> {
  if (target.kind === 'create') {
    return uploads.creationAllowance({
      size: target.size,
      metadata: target.metadata,
      owner: principal.owner,
      concat: target.concat,
    })
  }
  if (!target.storageKey) throw new AppError('not_found', 'upload_not_found', 'No such upload.')
  return uploads.appendAllowance(target.storageKey, principal.owner)
}

/**
 * The creation a tus POST asks for, read from its headers as @tus/server will read them; a
 * header it would refuse is refused here first (400), before the body is read.
 */
export function tusCreationTarget(headers: Headers): BufferedBodyTarget {
  const length = headers.get('upload-length')
  const deferred = headers.get('upload-defer-length') === '1'
  if ((length === null) === !deferred || (length !== null && !/^\d+$/.test(length))) {
    throw new AppError(
      'invalid',
      'invalid_header',
      'A creation sends Upload-Length as a whole number, or Upload-Defer-Length: 1.',
    )
  }
  let metadata: Record<string, string | null> | undefined
  try {
    const header = headers.get('upload-metadata')
    metadata = header === null ? undefined : Metadata.parse(header)
  } catch {
    throw new AppError('invalid', 'invalid_header', 'Upload-Metadata is malformed.')
  }
  const concat = headers.get('upload-concat') === 'partial' ? 'partial' : undefined
  return { kind: 'create', size: length === null ? undefined : Number(length), metadata, concat }
}
