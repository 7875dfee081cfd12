import { Readable } from 'node:stream'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import { ERRORS, type Locker, Metadata } from '@tus/utils'
import { parse as parseContentDisposition } from 'content-disposition'
import { v7 as uuidv7 } from 'uuid'
import type { Principal } from '../auth/authenticate.ts'
import { databaseUnavailable } from '../db/errors.ts'
import { AppError, isAppError, TooManyError } from '../lib/errors.ts'
import { errorBody, RETRY_AFTER_SECONDS, STATUS_BY_KIND } from '../lib/http-status.ts'
import { addLogContext, type Logger } from '../lib/logger.ts'
import {
  type FinishUpload,
  failureError,
  refusedByFirstBytes,
  type ScreenUpload,
} from '../uploads/finish-upload.ts'
import { isUploadId } from '../uploads/storage-key.ts'
import type {
  StoredProgress,
  UploadFile,
  UploadProtocol,
  UploadStorage,
  UploadWriter,
} from '../uploads/types.ts'
import type { UploadService } from '../uploads/upload.service.ts'
import {
  completionHeader,
  INTEROP_HEADER,
  INTEROP_VERSIONS,
  type InteropVersion,
  interopVersionOf,
  PARTIAL_UPLOAD_TYPE,
  readUploadFields,
  type UploadFields,
  uploadLimitHeader,
} from './interop.ts'
import { inconsistentLength, mismatchingOffset, type Problem, problemResponse } from './problems.ts'

/** 104 Upload Resumption Supported (draft-ietf-httpbis-resumable-upload). */
export const UPLOAD_RESUMPTION_SUPPORTED = 104

/** Interim answers carry progress from interop 5 (draft-03) on, at most this often. */
const PROGRESS_EVERY_BYTES = 8 * 1024 * 1024
const PROGRESS_EVERY_MS = 1_000

/**
 * Sends an informational (1xx) answer ahead of the final one. The HTTP edge makes it from the
 * server's response object; undefined where none can be sent (HTTP/1.0, no such API).
 */
export type SendInterim = (status: number, headers: Record<string, string>) => void

export type RufhHandler = (
  request: Request,
  principal: Principal | undefined,
  sendInterim: SendInterim | undefined,
) => Promise<Response>

export interface RufhDeps {
  /** The path uploads are created at; `<path>/<id>` is an upload. Shared with tus. */
  readonly path: string
  readonly writer: UploadWriter
  readonly storage: UploadStorage
  /** The same lock tus takes: one request at a time per upload, across instances. */
  readonly locker: Locker
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  readonly screenUpload: ScreenUpload
  /** The stored file as GET /api/files/:id shows it: the final answer of a completed upload. */
  readonly presentFile: (file: UploadFile) => unknown
  readonly maxSize: number
  readonly expirationMs: number
  /** Absolute base for Location; undefined derives it from the request. */
  readonly publicUrl: string | undefined
  readonly logger: Logger
  readonly metrics: { uploadCreated(protocol: UploadProtocol): void }
}

/** Where a request is aimed, and in which version it is answered. */
interface Exchange {
  readonly request: Request
  readonly version: InteropVersion
  readonly owner: string | null
  readonly sendInterim: SendInterim | undefined
}

/** One upload a request acts on. */
interface Target {
  readonly id: string
  readonly key: string
}

/**
 * Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload) on the tus endpoint: a new
 * edge over the same upload core. Uploads are the same rows (UploadService), the same bytes
 * (UploadWriter over the tus store, hashed as they stream), under the same lock, and finish in
 * the same step with the same event.
 */
export function createRufhHandler(deps: RufhDeps): RufhHandler {
  const creationPaths = new Set([deps.path, `${deps.path}/`])

  const handle = async (exchange: Exchange): Promise<Response> => {
    const { request } = exchange
    const { pathname } = new URL(request.url)
    if (creationPaths.has(pathname)) {
      if (request.method === 'OPTIONS') return options(exchange)
      if (request.method === 'POST' || request.method === 'PUT') return create(exchange)
      return notAllowed(exchange, ['OPTIONS', 'POST', 'PUT'])
    }
    const target = targetOf(pathname)
    if (!target) throw new AppError('not_found', 'upload_not_found', 'No such upload.')
    addLogContext({ uploadId: target.id })
    switch (request.method) {
      case 'HEAD':
      case 'GET':
        return offsetRetrieval(exchange, target)
      case 'PATCH':
        return append(exchange, target)
      case 'DELETE':
        return cancel(exchange, target)
      case 'OPTIONS':
        return options(exchange)
      default:
        return notAllowed(exchange, ['HEAD', 'GET', 'PATCH', 'DELETE', 'OPTIONS'])
    }
  }

  const targetOf = (pathname: string): Target | undefined => {
    const id = pathname.slice(deps.path.length + 1)
    if (pathname !== `${deps.path}/${id}` || !isUploadId(id)) return undefined
    return { id, key: deps.uploads.storageKeyOf(id) }
  }

  const limitsFor = (version: InteropVersion, expiresAt: Date | null = null) => {
    const maxAgeMs = expiresAt ? expiresAt.getTime() - Date.now() : deps.expirationMs
    return uploadLimitHeader(version, { maxSize: deps.maxSize, maxAgeSeconds: maxAgeMs / 1000 })
  }

  /** Headers every answer in `version` carries; Upload-Limit from interop 6 (draft-04) on. */
  const baseHeaders = (version: InteropVersion, expiresAt?: Date | null) => {
    const headers: Record<string, string> = { [INTEROP_HEADER]: String(version) }
    if (version >= 6) headers['Upload-Limit'] = limitsFor(version, expiresAt)
    return headers
  }

  const options = (exchange: Exchange): Response =>
    new Response(null, {
      status: 204,
      headers: { ...baseHeaders(exchange.version), 'Upload-Limit': limitsFor(exchange.version) },
    })

  const create = async (exchange: Exchange): Promise<Response> => {
    const { request, version } = exchange
    const fields = readUploadFields(request.headers, version)
    if (fields.complete === undefined) {
      const [name] = completionHeader(version, false)
      throw new AppError('invalid', 'missing_header', `An upload creation must send ${name}.`)
    }
    if (request.headers.get('content-type') === PARTIAL_UPLOAD_TYPE) {
      throw new AppError(
        'invalid',
        'partial_upload_on_creation',
        `${PARTIAL_UPLOAD_TYPE} is the type of appends; a creation sends the file's own type.`,
      )
    }
    const length = knownLength(fields, contentLengthOf(request), 0)
    if (length !== undefined) deps.uploads.checkDeclaredSize(length)
    const id = uuidv7()
    const target = { id, key: deps.uploads.storageKeyOf(id) }
    addLogContext({ uploadId: id })
    const metadata = creationMetadata(request)
    const file = await deps.uploads.register({
      storageKey: target.key,
      size: length,
      metadata,
      owner: exchange.owner,
    })
    await deps.writer.create(target.key, length, metadata)
    deps.metrics.uploadCreated('rufh')
    deps.logger.info('upload created', {
      uploadId: id,
      protocol: 'rufh',
      interopVersion: version,
      size: file.declaredSize,
      declaredType: file.declaredType,
    })
    const location = locationOf(request, id)
    exchange.sendInterim?.(UPLOAD_RESUMPTION_SUPPORTED, {
      ...baseHeaders(version, file.expiresAt),
      Location: location,
    })
    return writeBody(exchange, target, { ...fields, offset: 0 }, location)
  }

  const offsetRetrieval = async (exchange: Exchange, target: Target): Promise<Response> => {
    const file = await deps.uploads.admit(target.key, 'resume-check', exchange.owner)
    if (file.status === 'STORED') return replay(exchange, file)
    // Taking the lock ends an append the client has given up on; the offset is then final.
    const progress = await underLock(exchange.request, target, async () =>
      deps.storage.progress(target.key),
    )
    if (!progress) throw bytesGone(target)
    const headers: Record<string, string> = {
      ...baseHeaders(exchange.version, file.expiresAt),
      'Upload-Offset': String(progress.offset),
      'Cache-Control': 'no-store',
    }
    const [name, value] = completionHeader(exchange.version, false)
    headers[name] = value
    const length = progress.size ?? file.declaredSize
    if (length !== null && length !== undefined) headers['Upload-Length'] = String(length)
    return new Response(null, { status: 204, headers })
  }

  const append = async (exchange: Exchange, target: Target): Promise<Response> => {
    const { request, version } = exchange
    const fields = readUploadFields(request.headers, version)
    if (fields.offset === undefined) {
      throw new AppError('invalid', 'missing_offset', 'An append must send Upload-Offset.')
    }
    if (fields.complete === undefined) {
      const [name] = completionHeader(version, false)
      throw new AppError('invalid', 'missing_header', `An append must send ${name}.`)
    }
    if (version >= 6 && request.headers.get('content-type') !== PARTIAL_UPLOAD_TYPE) {
      throw new AppError(
        'unsupported_type',
        'unsupported_media_type',
        `Appends must be sent as Content-Type: ${PARTIAL_UPLOAD_TYPE}.`,
      )
    }
    let file: UploadFile
    try {
      file = await deps.uploads.admit(target.key, 'append', exchange.owner)
    } catch (error) {
      // A client that lost the final answer may send the last append again (draft §4.4).
      if (isAppError(error) && error.code === 'upload_already_stored') {
        return replay(exchange, await deps.uploads.get(target.id, exchange.owner))
      }
      throw error
    }
    return writeBody(
      exchange,
      target,
      { ...fields, offset: fields.offset },
      undefined,
      file.expiresAt,
    )
  }

  /**
   * Appends the request's body at `fields.offset` under the upload's lock, and answers: the
   * final answer when the upload is complete, else 201 (a creation) or 204.
   */
  const writeBody = async (
    exchange: Exchange,
    target: Target,
    fields: AppendFields,
    location: string | undefined,
    expiresAt: Date | null = null,
  ): Promise<Response> => {
    const stop = new AbortController()
    const { outcome, length } = await underLock(
      exchange.request,
      target,
      async () => {
        const progress = await deps.storage.progress(target.key)
        if (!progress) throw bytesGone(target)
        const plan = planAppend(exchange, progress, fields)
        if (progress.size === undefined && plan.length !== undefined) {
          await deps.writer.declareLength(target.key, plan.length)
        }
        const outcome = await deps.writer.append(
          target.key,
          fields.offset,
          bodyOf(exchange.request),
          {
            maxBytes: plan.room,
            signal: stop.signal,
            onProgress: progressReporter(exchange),
          },
        )
        // Upload-Complete: ?1 on a body of unknown length: the upload ends where the body did.
        if (fields.complete && outcome.bodyEnded && plan.length === undefined) {
          await deps.writer.declareLength(target.key, outcome.offset)
          return { outcome, length: outcome.offset }
        }
        return { outcome, length: plan.length }
      },
      () => stop.abort(),
    )
    if (outcome.overflowed) return invalidate(target, length)
    if (!outcome.bodyEnded) throw bodyCut(stop.signal.aborted)
    if (!fields.complete) {
      const written = { from: fields.offset, to: outcome.offset }
      const refused = await refusedByFirstBytes(deps.screenUpload, target.id, written, deps.logger)
      if (refused) return completed(exchange, refused)
      return accepted(exchange, outcome.offset, location, expiresAt)
    }
    if (outcome.offset !== length) {
      throw new ProblemError(
        inconsistentLength(`The upload ends at ${length} bytes; it has ${outcome.offset}.`),
        { 'Upload-Offset': String(outcome.offset) },
      )
    }
    return completed(exchange, await deps.finishUpload(target.id))
  }

  /**
   * The upload's length once this append is in (undefined while nobody said), and how many bytes
   * the append may write; or the problem that refuses it before a byte is read.
   */
  const planAppend = (
    exchange: Exchange,
    progress: StoredProgress,
    fields: AppendFields,
  ): { readonly length: number | undefined; readonly room: number } => {
    const refuse = (problem: Problem) =>
      new ProblemError(problem, {
        'Upload-Offset': String(progress.offset),
        ...Object.fromEntries([completionHeader(exchange.version, false)]),
      })
    if (progress.offset !== fields.offset) {
      throw refuse(mismatchingOffset(progress.offset, fields.offset))
    }
    const contentLength = contentLengthOf(exchange.request)
    const requestLength = knownLength(fields, contentLength, fields.offset)
    const length = progress.size ?? requestLength
    if (requestLength !== undefined && length !== requestLength) {
      throw refuse(inconsistentLength(`The upload's length is ${length} bytes.`))
    }
    if (length !== undefined && length < fields.offset) {
      throw refuse(inconsistentLength(`The upload already has ${fields.offset} bytes.`))
    }
    if (length !== undefined) deps.uploads.checkDeclaredSize(length)
    const room = (length ?? deps.maxSize) - fields.offset
    if (contentLength !== undefined && contentLength > room) {
      if (length === undefined) throw tooLarge()
      throw refuse(inconsistentLength(`The upload ends at ${length} bytes.`))
    }
    return { length, room }
  }

  /** An append (or creation) that leaves the upload incomplete. */
  const accepted = (
    exchange: Exchange,
    offset: number,
    location: string | undefined,
    expiresAt: Date | null,
  ): Response => {
    const headers: Record<string, string> = {
      ...baseHeaders(exchange.version, expiresAt),
      'Upload-Offset': String(offset),
      ...Object.fromEntries([completionHeader(exchange.version, false)]),
    }
    if (location) headers.Location = location
    return new Response(null, { status: location ? 201 : 204, headers })
  }

  /** Sends `104` with Upload-Offset while a body arrives (interop 5 on). */
  const progressReporter = (exchange: Exchange): ((offset: number) => void) | undefined => {
    const { sendInterim, version } = exchange
    if (!sendInterim || version < 5) return undefined
    let reportedOffset = -1
    let reportedAt = Date.now()
    return (offset) => {
      const now = Date.now()
      if (offset - reportedOffset < PROGRESS_EVERY_BYTES && now - reportedAt < PROGRESS_EVERY_MS) {
        return
      }
      reportedOffset = offset
      reportedAt = now
      sendInterim(UPLOAD_RESUMPTION_SUPPORTED, {
        [INTEROP_HEADER]: String(version),
        'Upload-Offset': String(offset),
      })
    }
  }

  /** The final answer of a completed upload: the stored file, or why it was refused. */
  const completed = (exchange: Exchange, file: UploadFile): Response => {
    const headers: Record<string, string> = {
      ...baseHeaders(exchange.version),
      ...Object.fromEntries([completionHeader(exchange.version, true)]),
      'Upload-Offset': String(file.size ?? file.declaredSize ?? 0),
    }
    if (file.status === 'FAILED') {
      const refusal = failureError(file)
      return jsonAnswer(
        STATUS_BY_KIND[refusal.kind],
        errorBody(refusal.code, refusal.message),
        headers,
      )
    }
    return jsonAnswer(200, JSON.stringify(deps.presentFile(file)), headers)
  }

  /** A lost final answer is answered again (draft: a client may retry the completing append). */
  const replay = (exchange: Exchange, file: UploadFile): Response => {
    const response = completed(exchange, file)
    if (exchange.request.method === 'HEAD' || exchange.request.method === 'GET') {
      response.headers.set('Cache-Control', 'no-store')
    }
    return response
  }

  /** Bytes beyond the known length (or the size limit) make the upload invalid: it is removed. */
  const invalidate = async (target: Target, length: number | undefined): Promise<never> => {
    await deps.storage.remove(target.key)
    await deps.uploads.markTerminated(target.key)
    deps.logger.warn('upload invalidated: bytes beyond its length', { uploadId: target.id })
    if (length === undefined) throw tooLarge()
    throw new ProblemError(
      inconsistentLength(`The upload ends at ${length} bytes and more arrived; it was removed.`),
    )
  }

  const cancel = async (exchange: Exchange, target: Target): Promise<Response> => {
    await deps.uploads.admit(target.key, 'terminate', exchange.owner)
    // Taking the lock ends an append in flight first; its bytes then go with the rest.
    await underLock(exchange.request, target, () => deps.storage.remove(target.key))
    await deps.uploads.markTerminated(target.key)
    return new Response(null, {
      status: 204,
      headers: { [INTEROP_HEADER]: String(exchange.version) },
    })
  }

  /**
   * Runs `work` holding the upload's lock. A request that wants the lock asks the holder to let
   * go (the PgLocker's release request, over NOTIFY across instances): `onReleaseRequested`
   * ends the holder's body, and its bytes so far are kept.
   */
  const underLock = async <T>(
    request: Request,
    target: Target,
    work: () => Promise<T>,
    onReleaseRequested: () => void = () => undefined,
  ): Promise<T> => {
    const lock = deps.locker.newLock(target.key)
    try {
      await lock.lock(request.signal, onReleaseRequested)
    } catch (error) {
      // A holder that ignored the release request for the locker's whole timeout (30 s).
      if (error !== ERRORS.ERR_LOCK_TIMEOUT) throw error
      throw new AppError('unavailable', 'upload_locked', 'Another request holds this upload.')
    }
    try {
      return await work()
    } finally {
      await lock.unlock()
    }
  }

  const locationOf = (request: Request, id: string): string =>
    `${deps.publicUrl ?? new URL(request.url).origin}${deps.path}/${id}`

  // The code tus answers for the same refusal (docs/troubleshooting.md lists it), for a length
  // not yet known; a known one is refused by the core's checkDeclaredSize, naming the size.
  const tooLarge = () =>
    new AppError(
      'too_large',
      'max_size_exceeded',
      `The upload would grow past ${deps.maxSize} bytes, the limit (FILE_UPLOAD_MAX_SIZE on the server).`,
    )

  const errorAnswer = (exchange: Exchange | undefined, error: unknown): Response => {
    const headers = exchange ? baseHeaders(exchange.version) : {}
    if (error instanceof ProblemError) {
      return problemResponse(error.problem, { ...headers, ...error.headers })
    }
    const known = isAppError(error) ? error : databaseUnavailable(error)
    if (!known) {
      deps.logger.error('RUFH request failed', { error })
      return jsonAnswer(
        500,
        errorBody('internal_error', 'Something went wrong; the upload can be resumed.'),
        headers,
      )
    }
    if (known instanceof TooManyError) headers['Retry-After'] = String(known.retryAfterSeconds)
    if (known.kind === 'unavailable') headers['Retry-After'] = String(RETRY_AFTER_SECONDS)
    return jsonAnswer(STATUS_BY_KIND[known.kind], errorBody(known.code, known.message), headers)
  }

  return async (request, principal, sendInterim) => {
    const version = interopVersionOf(request.headers)
    if (version === undefined) return unsupportedVersion(request)
    const exchange: Exchange = {
      request,
      version,
      owner: principal?.owner ?? null,
      sendInterim,
    }
    // The edge authenticates everything but OPTIONS; a missing principal must never fall back
    // to the null owner, which sees every upload (AUTH_MODE=none).
    if (!principal && request.method !== 'OPTIONS') {
      throw new Error('a RUFH request reached the handler without its principal')
    }
    try {
      return await handle(exchange)
    } catch (error) {
      return errorAnswer(exchange, error)
    }
  }
}

/** An append's fields once its offset is known (a creation appends at 0). */
type AppendFields = UploadFields & { readonly offset: number }

/**
 * A body that stopped before its end: the client cut it off, or another request on the upload
 * ended it. What arrived is kept, and the client learns the offset with HEAD.
 */
function bodyCut(endedByNewerRequest: boolean): AppError {
  return endedByNewerRequest
    ? new AppError(
        'conflict',
        'upload_interrupted',
        'A newer request on this upload ended this one; the bytes received are kept.',
      )
    : new AppError(
        'conflict',
        'body_incomplete',
        'The body ended early; the bytes received are kept.',
      )
}

/** A refusal the draft answers with a problem document, and the headers that go with it. */
class ProblemError extends Error {
  readonly problem: Problem
  readonly headers: Record<string, string>

  constructor(problem: Problem, headers: Record<string, string> = {}) {
    super(problem.detail)
    this.problem = problem
    this.headers = headers
  }
}

/**
 * The length a request states: Upload-Length, or (when it completes the upload) the offset plus
 * its Content-Length. Both, disagreeing: the inconsistent-length problem.
 */
function knownLength(
  fields: UploadFields,
  contentLength: number | undefined,
  offset: number,
): number | undefined {
  const implied =
    fields.complete && contentLength !== undefined ? offset + contentLength : undefined
  if (fields.length !== undefined && implied !== undefined && fields.length !== implied) {
    throw new ProblemError(
      inconsistentLength(
        `Upload-Length says ${fields.length} bytes; the completing body ends at ${implied}.`,
      ),
    )
  }
  return fields.length ?? implied
}

function contentLengthOf(request: Request): number | undefined {
  const raw = request.headers.get('content-length')
  return raw === null ? undefined : Number(raw)
}

/**
 * The body as a Node stream. A client that goes away fails it even when no write reads it any
 * more (an append that ended on a newer request's release, or past its room): the write saw what
 * it needed, and the failure must not reach the process as an uncaught 'error' event.
 */
function bodyOf(request: Request): Readable {
  if (!request.body) return Readable.from([])
  const body = Readable.fromWeb(request.body as NodeReadableStream<Uint8Array>)
  body.on('error', () => undefined)
  return body
}

/**
 * The tus-style metadata record the upload row keeps, from what a RUFH client says: the file
 * name from Content-Disposition (`filename*` first), the declared type from Content-Type, the
 * batch from the `batchId` query parameter. Upload-Metadata, which tus-js-client sends in its
 * IETF modes too, is read first, and the RUFH headers take precedence over it.
 */
function creationMetadata(request: Request): Record<string, string | null> {
  const metadata: Record<string, string | null> = parseTusMetadata(
    request.headers.get('upload-metadata'),
  )
  const disposition = request.headers.get('content-disposition')
  // The parser is lenient (it never throws): a name it cannot read is no name.
  const filename =
    disposition === null ? undefined : parseContentDisposition(disposition).parameters.filename
  if (filename) metadata.filename = filename
  const type = request.headers.get('content-type')
  if (type !== null && !GENERIC_BODY_TYPES.has(type)) metadata.filetype = type
  const batchId = new URL(request.url).searchParams.get('batchId')
  if (batchId !== null) metadata.batchId = batchId
  return metadata
}

/**
 * Content-Types that label a body without naming a file's type: clients send them for any bytes
 * (curl -d, URLSession without an explicit type). The type is then the one sniffed from the bytes.
 */
const GENERIC_BODY_TYPES = new Set([
  'application/octet-stream',
  'application/x-www-form-urlencoded',
])

function parseTusMetadata(header: string | null): Record<string, string | null> {
  if (header === null) return {}
  try {
    return Metadata.parse(header)
  } catch {
    throw new AppError('invalid', 'invalid_metadata', 'Upload-Metadata is malformed.')
  }
}

function bytesGone(target: Target): AppError {
  return new AppError('gone', 'upload_gone', `The bytes of upload ${target.id} are gone.`)
}

function notAllowed(exchange: Exchange, allowed: readonly string[]): Response {
  return jsonAnswer(
    405,
    errorBody(
      'method_not_allowed',
      `${exchange.request.method} is not allowed here; use ${allowed.join(', ')}.`,
    ),
    { [INTEROP_HEADER]: String(exchange.version), Allow: allowed.join(', ') },
  )
}

function unsupportedVersion(request: Request): Response {
  const named = request.headers.get(INTEROP_HEADER)
  return problemResponse(
    {
      status: 400,
      title: 'Unsupported interop version',
      code: 'unsupported_interop_version',
      detail: `Upload-Draft-Interop-Version ${named} is not served; use one of ${INTEROP_VERSIONS.join(', ')}.`,
      'supported-versions': [...INTEROP_VERSIONS],
    },
    {},
  )
}

function jsonAnswer(status: number, body: string, headers: Record<string, string>): Response {
  return new Response(body, { status, headers: { ...headers, 'Content-Type': 'application/json' } })
}
