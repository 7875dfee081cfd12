import { type BareItem, type Dictionary, parseItem, serializeDictionary } from 'structured-headers'
import { AppError } from '../lib/errors.ts'

/**
 * The interop versions of draft-ietf-httpbis-resumable-upload tusbox answers, each in its own
 * terms: 3 (draft-01, iOS 17), 4 (draft-02), 5 (draft-03, tus-js-client `ietf-draft-03`),
 * 6 (drafts 04-05, tus-js-client `ietf-draft-05`), 7 (drafts 06-08), 8 (drafts 09-12).
 */
export const INTEROP_VERSIONS = [3, 4, 5, 6, 7, 8] as const
export type InteropVersion = (typeof INTEROP_VERSIONS)[number]

export const INTEROP_HEADER = 'Upload-Draft-Interop-Version'

/** The media type of an append's body from interop 6 on (draft-04). */
export const PARTIAL_UPLOAD_TYPE = 'application/partial-upload'

/** A RUFH request names its interop version and is not a tus request. */
export function isRufhRequest(headers: Headers): boolean {
  return headers.has(INTEROP_HEADER) && !headers.has('tus-resumable')
}

/** The version a request names, or undefined when tusbox does not speak it. */
export function interopVersionOf(headers: Headers): InteropVersion | undefined {
  const named = headers.get(INTEROP_HEADER)?.trim()
  return INTEROP_VERSIONS.find((version) => String(version) === named)
}

/** What a RUFH request says about its upload, read from structured fields (RFC 9651). */
export interface UploadFields {
  /** Whether this request's body ends the upload; undefined when the request does not say. */
  readonly complete: boolean | undefined
  readonly offset: number | undefined
  readonly length: number | undefined
}

/**
 * Interop 3 (draft-01) says `Upload-Incomplete: ?1` where later versions say
 * `Upload-Complete: ?0`. A field that is present but not a bare Boolean or non-negative Integer
 * (`?2`, `?1;x`, `-1`, 16 digits, two values of a repeated header) is refused with 400: the
 * draft defines no parameters on them, and guessing an offset could corrupt an upload.
 */
export function readUploadFields(headers: Headers, version: InteropVersion): UploadFields {
  const complete =
    version === 3
      ? negated(booleanField(headers, 'Upload-Incomplete'))
      : booleanField(headers, 'Upload-Complete')
  return {
    complete,
    offset: integerField(headers, 'Upload-Offset'),
    length: integerField(headers, 'Upload-Length'),
  }
}

/** The completion flag as a response header, in the version's own terms. */
export function completionHeader(version: InteropVersion, complete: boolean): [string, string] {
  return version === 3
    ? ['Upload-Incomplete', complete ? '?0' : '?1']
    : ['Upload-Complete', complete ? '?1' : '?0']
}

export interface UploadLimits {
  readonly maxSize: number
  /** Seconds an upload may sit idle before it expires. */
  readonly maxAgeSeconds: number
}

/**
 * `Upload-Limit` (interop 6 on): a Dictionary. Interop 6 calls the lifetime `expires`, 7 renamed
 * it `max-age`. tusbox sets no append sizes and no minimum, so `min-size=0` says so explicitly.
 */
export function uploadLimitHeader(version: InteropVersion, limits: UploadLimits): string {
  const dictionary: Dictionary = new Map([
    ['max-size', [limits.maxSize, new Map()]],
    ['min-size', [0, new Map()]],
    [
      version === 6 ? 'expires' : 'max-age',
      [Math.max(0, Math.floor(limits.maxAgeSeconds)), new Map()],
    ],
  ])
  return serializeDictionary(dictionary)
}

function booleanField(headers: Headers, name: string): boolean | undefined {
  const value = bareItem(headers, name)
  if (value === undefined) return undefined
  if (typeof value !== 'boolean') throw malformed(name, 'a Boolean (?0 or ?1)')
  return value
}

function integerField(headers: Headers, name: string): number | undefined {
  const value = bareItem(headers, name)
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw malformed(name, 'a non-negative Integer')
  }
  return value
}

function bareItem(headers: Headers, name: string): BareItem | undefined {
  const raw = headers.get(name)
  if (raw === null) return undefined
  let item: ReturnType<typeof parseItem>
  try {
    item = parseItem(raw)
  } catch {
    throw malformed(name, 'one structured field item (RFC 9651)')
  }
  const [value, parameters] = item
  if (parameters.size > 0) throw malformed(name, 'an item without parameters')
  return value
}

function negated(value: boolean | undefined): boolean | undefined {
  return value === undefined ? undefined : !value
}

function malformed(name: string, expected: string): AppError {
  return new AppError('invalid', 'malformed_header', `${name} must be ${expected}.`)
}
