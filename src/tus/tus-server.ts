import { Server } from '@tus/server'
import { HEADERS, type Locker, TUS_RESUMABLE } from '@tus/utils'
import { v7 as uuidv7 } from 'uuid'
import type { Principal } from '../auth/authenticate.ts'
import { databaseUnavailable } from '../db/errors.ts'
import { type CorsPolicy, RUFH_REQUEST_HEADERS } from '../lib/cors-policy.ts'
import { isAppError, TooManyError } from '../lib/errors.ts'
import { errorBody, RETRY_AFTER_SECONDS, STATUS_BY_KIND } from '../lib/http-status.ts'
import type { Logger } from '../lib/logger.ts'
import {
  type FinishUpload,
  failureError,
  refusedByFirstBytes,
  type ScreenUpload,
  type Written,
} from '../uploads/finish-upload.ts'
import { isUploadId, uploadIdFromStorageKey } from '../uploads/storage-key.ts'
import type { UploadFile, UploadProtocol } from '../uploads/types.ts'
import type { UploadService } from '../uploads/upload.service.ts'
import { admitBufferedBody, type BufferedBodyTarget, tusCreationTarget } from './body-admission.ts'
import type { BufferBudget, BufferReservation } from './buffer-budget.ts'
import {
  advertiseChecksum,
  CHECKSUM_MISMATCH_STATUS,
  carriesChecksummedBody,
  UPLOAD_CONTENT_TYPE,
  verifyChecksum,
} from './checksum.ts'
import {
  createConcatenationEdge,
  parseUploadConcat,
  uploadConcatHeader,
  withoutUploadConcat,
} from './concatenation.ts'
import type { Datastore } from './datastore/index.ts'
import { createHooks, type RequestState, type RequestStates } from './hooks.ts'
import type { RateFloorOptions } from './rate-floor.ts'
import { tusErrorCode } from './tus-errors.ts'

export const TUS_PATH = '/files'

/**
 * Upload-Metadata above this many bytes is refused with 400: real metadata (name, type, batch)
 * fits in a few hundred bytes, and the whole row is kept in Postgres.
 */
export const MAX_METADATA_BYTES = 4096

/** What the tus edge counts (metrics); the container wires it. Bytes are counted by the store. */
export interface TusMetrics {
  /** An upload was registered (its row is UPLOADING). */
  uploadCreated(protocol: UploadProtocol): void
}

export interface TusDeps {
  readonly datastore: Datastore
  /** One request at a time per upload, across every instance that shares the database. */
  readonly locker: Locker
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  /** The type check on an upload's first bytes, before the rest arrives. */
  readonly screenUpload: ScreenUpload
  readonly maxSize: number
  /** Where bodies that carry Upload-Checksum wait until their digest is verified. */
  readonly checksumTempDir: string
  /** Bounds what those bodies hold on disk, in total and per owner. */
  readonly checksumBudget: BufferBudget
  /** Those bodies arriving slower than this are cut. */
  readonly checksumRateFloor: RateFloorOptions
  /** Absolute base for Location; undefined derives it from the request's Host. */
  readonly publicUrl: string | undefined
  readonly cors: CorsPolicy
  readonly logger: Logger
  readonly metrics: TusMetrics
}

/** The request and response headers of tus 1.0.0, for CORS. */
export const TUS_HEADERS: readonly string[] = HEADERS

/** `principal` is undefined only for OPTIONS, which browsers send without credentials. */
export type TusHandler = (request: Request, principal: Principal | undefined) => Promise<Response>

/** @tus/server behind the checks it does not make and the JSON errors it does not write. */
export function createTusHandler(deps: TusDeps): TusHandler {
  const states: RequestStates = new WeakMap()
  const hooks = createHooks(deps, states)
  const server = new Server({
    path: TUS_PATH,
    datastore: deps.datastore.tusStore,
    locker: (req) => (isBodilessCreation(req) ? NEW_UPLOAD_LOCKER : deps.locker),
    maxSize: deps.maxSize,
    namingFunction: () => deps.uploads.storageKeyOf(uuidv7()),
    getFileIdFromRequest: (req, lastPath) => storageKeyFromUrl(req.url, lastPath, deps.uploads),
    generateUrl: (_req, { proto, host, path, id }) =>
      `${deps.publicUrl ?? `${proto}://${host}`}${path}/${uploadIdFromStorageKey(id)}`,
    allowedOrigins: (origin) => deps.cors.allows(origin),
    // Browsers may send these only when the preflight allows them; RUFH shares the endpoint.
    allowedHeaders: ['Upload-Checksum', 'X-Request-Id', ...RUFH_REQUEST_HEADERS],
    ...hooks,
  })

  const urlOf = (request: Request, id: string) =>
    `${deps.publicUrl ?? new URL(request.url).origin}${TUS_PATH}/${id}`

  const handle = async (
    received: Request,
    principal: Principal | undefined,
    concat: 'partial' | undefined,
  ): Promise<Response> => {
    const request = concat ? withoutUploadConcat(received) : received
    const state: RequestState | undefined = principal && { principal, concat }
    if (state) states.set(request, state)
    const response = await server.handleWeb(request)
    const joined =
      response.status === 410 &&
      (await concatenation.joinedPartial(
        request,
        principal,
        storageKeyFromUrl(request.url, undefined, deps.uploads),
      ))
    if (joined) return joined
    if (response.status >= 400) {
      const explain = (code: string) => explainSizeError(code, request, state?.file, deps.maxSize)
      const error = await asJsonError(response, state?.retryAfterSeconds, explain)
      if (error.status === 409 && request.method === 'PATCH' && state?.file) {
        await withCurrentOffset(error, state.file, deps)
      }
      return error
    }
    // A partial upload's first bytes are a slice from anywhere in its file: only its final is
    // judged by type, from the joined bytes.
    const judged = state?.file && state.file.concat !== 'partial' ? state.file : undefined
    const written = judged && writtenBy(request, response)
    const refused =
      written && (await refusedByFirstBytes(deps.screenUpload, judged.id, written, deps.logger))
    if (refused) {
      const error = failureError(refused)
      return jsonError(STATUS_BY_KIND[error.kind], error.code, error.message)
    }
    if (request.method === 'OPTIONS') advertiseExtensions(response.headers)
    const concatHeader = state?.file && uploadConcatHeader(state.file, (id) => urlOf(request, id))
    if (concatHeader) response.headers.set('Upload-Concat', concatHeader)
    if (request.method === 'DELETE' && response.status === 204) {
      const key = storageKeyFromUrl(request.url, undefined, deps.uploads)
      if (key) await deps.uploads.markTerminated(key)
    }
    return withUploadExpires(request, response, state?.file)
  }

  const concatenation = createConcatenationEdge({
    uploads: deps.uploads,
    urlOf,
    uploadCreated: () => deps.metrics.uploadCreated('tus'),
    answerError: async (request, error) => {
      const answer = await hooks.onResponseError(request, error as Error)
      const status = answer?.status_code ?? 500
      // Domain errors already name their sizes; nothing is left to explain.
      return asJsonError(new Response(answer?.body ?? '', { status }), undefined, () => undefined)
    },
  })

  return async (received, principal) => {
    const request = withMethodOverride(received)
    if (request instanceof Response) return request
    const refusal = refuseEarly(request) ?? refuseDeclaredSize(request, deps.uploads)
    if (refusal) return refusal
    const concat =
      request.method === 'POST'
        ? parseUploadConcat(request, { publicUrl: deps.publicUrl, tusPath: TUS_PATH })
        : { kind: 'none' as const }
    if (concat.kind === 'refused') return jsonError(400, concat.code, concat.message)
    if (concat.kind === 'final')
      return concatenation.createFinal(request, principal, concat.partialIds)
    const partial = concat.kind === 'partial' ? 'partial' : undefined
    if (!carriesChecksummedBody(request)) return handle(request, principal, partial)
    // Only OPTIONS comes without a principal, and it carries no body.
    if (!principal) throw new Error('a checksummed tus request arrived without its principal')
    return handleChecksummed(request, principal, partial)
  }

  /** Admitted before its body is buffered, verified before the store sees a byte. */
  async function handleChecksummed(
    request: Request,
    principal: Principal,
    concat: 'partial' | undefined,
  ): Promise<Response> {
    let reservation: BufferReservation
    try {
      // Node's parser refuses a malformed Content-Length; a chunked body has none.
      const length = request.headers.get('content-length')
      reservation = await admitBufferedBody(
        { uploads: deps.uploads, budget: deps.checksumBudget },
        bufferedBodyTarget(request, deps.uploads),
        length !== null && /^\d+$/.test(length) ? Number(length) : undefined,
        principal,
      )
    } catch (error) {
      return refusedBeforeBody(error)
    }
    try {
      const checked = await verifyChecksum(request, {
        tempDir: deps.checksumTempDir,
        maxBodySize: reservation.bytes,
        rateFloor: deps.checksumRateFloor,
      })
      if (!checked.ok) return checksumRefusal(checked, request)
      try {
        return await handle(checked.request, principal, concat)
      } finally {
        await checked.release()
      }
    } finally {
      reservation.release()
    }
  }

  function checksumRefusal(
    checked: { status: number; code: string; message: string },
    request: Request,
  ): Response {
    if (checked.status === CHECKSUM_MISMATCH_STATUS) {
      deps.logger.warn('upload checksum mismatch', { method: request.method, url: request.url })
    }
    return jsonError(checked.status, checked.code, checked.message)
  }
}

function bufferedBodyTarget(request: Request, uploads: UploadService): BufferedBodyTarget {
  if (request.method === 'POST') return tusCreationTarget(request.headers)
  return { kind: 'append', storageKey: storageKeyFromUrl(request.url, undefined, uploads) }
}

/** A domain refusal (or an unreachable database) as the tus edge's JSON error; bugs propagate. */
function refusedBeforeBody(error: unknown): Response {
  const known = isAppError(error) ? error : databaseUnavailable(error)
  if (!known) throw error
  const status = STATUS_BY_KIND[known.kind]
  const retryAfter =
    known instanceof TooManyError
      ? known.retryAfterSeconds
      : status === 503
        ? RETRY_AFTER_SECONDS
        : undefined
  const headers: Record<string, string> =
    retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) }
  return jsonError(status, known.code, known.message, headers)
}

/**
 * A creation without a body writes only the new upload's info, under an id @tus/server drew a
 * moment ago (uuidv7): no client knows it before the 201 that carries it, which is sent after the
 * lock is let go, so there is nobody to exclude. Taking PgLocker's lock there would cost two
 * Postgres round trips per creation on the locker's one session, for nothing. A creation with a
 * body (creation-with-upload) writes bytes, and keeps the real lock.
 */
const NEW_UPLOAD_LOCKER: Locker = {
  newLock: () => ({ lock: async () => undefined, unlock: async () => undefined }),
}

/** The test @tus/server's PostHandler makes before it writes a creation's body. */
function isBodilessCreation(request: Request): boolean {
  return request.method === 'POST' && request.headers.get('content-type') !== UPLOAD_CONTENT_TYPE
}

function storageKeyFromUrl(
  url: string,
  lastPath: string | undefined,
  uploads: UploadService,
): string | undefined {
  const { pathname } = new URL(url)
  const id = lastPath ?? pathname.slice(pathname.lastIndexOf('/') + 1)
  // Only /files/<uuidv7>: anything else never reaches the store, so no id can escape its directory.
  if (pathname !== `${TUS_PATH}/${id}` || !isUploadId(id)) return undefined
  return uploads.storageKeyOf(id)
}

/** Methods a client may ask for with X-HTTP-Method-Override on a POST. */
const OVERRIDABLE_METHODS = new Set(['PATCH', 'DELETE'])

/**
 * tus 1.0.0 (core protocol, X-HTTP-Method-Override): a client whose environment cannot send
 * PATCH or DELETE sends POST with this header, and the server MUST treat the request as that
 * method (tus-js-client's `overridePatchMethod`). @tus/server 2 no longer does. Only POST may
 * carry it, and only towards PATCH or DELETE: a PATCH that says DELETE is refused, not obeyed.
 */
function withMethodOverride(request: Request): Request | Response {
  const override = request.headers.get('x-http-method-override')
  if (override === null) return request
  if (request.method !== 'POST' || !OVERRIDABLE_METHODS.has(override)) {
    return jsonError(
      400,
      'invalid_method_override',
      'X-HTTP-Method-Override is honoured on POST requests only, with PATCH or DELETE.',
    )
  }
  const headers = new Headers(request.headers)
  headers.delete('x-http-method-override')
  return new Request(request.url, {
    method: override,
    headers,
    body: override === 'PATCH' ? request.body : null,
    ...(override === 'PATCH' ? { duplex: 'half' } : {}),
  })
}

/**
 * tus 1.0.0: the creation URL takes POST, an upload URL HEAD, PATCH and DELETE (and GET, a
 * download the HTTP layer serves before tus sees it). @tus/server
 * creates an upload for a POST to any URL under its path, and answers 404 to other methods.
 */
const ALLOWED_AT_CREATION = ['POST', 'OPTIONS']
const ALLOWED_AT_UPLOAD = ['GET', 'HEAD', 'PATCH', 'DELETE', 'OPTIONS']

function refuseEarly(request: Request): Response | undefined {
  const { method, headers } = request
  const pathname = new URL(request.url).pathname
  // tus-js-client users often configure the endpoint with a trailing slash.
  const atCreation = pathname === TUS_PATH || pathname === `${TUS_PATH}/`
  const allowed = atCreation ? ALLOWED_AT_CREATION : ALLOWED_AT_UPLOAD
  if (!allowed.includes(method)) {
    const hint = `${method} is not allowed here; use ${allowed.join(', ')}.`
    return jsonError(405, 'method_not_allowed', hint, { Allow: allowed.join(', ') })
  }
  const version = headers.get('tus-resumable')
  if (method !== 'OPTIONS' && version === null) {
    return jsonError(
      412,
      'tus_resumable_required',
      'Send Tus-Resumable: 1.0.0 with every tus request.',
    )
  }
  if (method !== 'OPTIONS' && version !== TUS_RESUMABLE) {
    return jsonError(412, 'unsupported_tus_version', `Tus-Resumable ${version} is not supported.`)
  }
  if (method === 'PATCH' && headers.get('content-type') !== UPLOAD_CONTENT_TYPE) {
    return jsonError(
      415,
      'unsupported_media_type',
      'PATCH bodies must be sent as Content-Type: application/offset+octet-stream.',
    )
  }
  // tus creation-with-upload: the body of a creation follows the PATCH rules; @tus/server would
  // ignore a body of another type and create an empty upload (tus-compliance-tests ext-cwu-002).
  if (
    method === 'POST' &&
    hasBody(headers) &&
    headers.get('content-type') !== UPLOAD_CONTENT_TYPE
  ) {
    return jsonError(
      415,
      'unsupported_media_type',
      'A creation that carries upload data must send it as Content-Type: application/offset+octet-stream; a creation without data sends no body.',
    )
  }
  // @tus/server answers 403 here; a missing header is a malformed request (400), as in tusd.
  if (method === 'PATCH' && headers.get('upload-offset') === null) {
    return jsonError(400, 'missing_offset', 'PATCH requests must send Upload-Offset.')
  }
  const metadata = headers.get('upload-metadata')
  if (metadata !== null && Buffer.byteLength(metadata) > MAX_METADATA_BYTES) {
    return jsonError(
      400,
      'metadata_too_large',
      `Upload-Metadata is limited to ${MAX_METADATA_BYTES} bytes.`,
    )
  }
  return undefined
}

/**
 * An Upload-Length outside FILE_UPLOAD_MIN_SIZE..FILE_UPLOAD_MAX_SIZE, at creation or declared
 * later (creation-defer-length), refused with the core's message before @tus/server answers its
 * bare "Maximum size exceeded". A value that is not a length is left to its validator (400).
 */
function refuseDeclaredSize(request: Request, uploads: UploadService): Response | undefined {
  const length = request.headers.get('upload-length')
  if (length === null || !/^\d{1,15}$/.test(length)) return undefined
  try {
    uploads.checkDeclaredSize(Number(length))
    return undefined
  } catch (error) {
    if (!isAppError(error)) throw error
    return jsonError(STATUS_BY_KIND[error.kind], error.code, error.message)
  }
}

/**
 * @tus/server's size errors name no numbers: a body past the upload's length, or a deferred-length
 * upload growing past FILE_UPLOAD_MAX_SIZE. Undefined keeps its message.
 */
function explainSizeError(
  code: string,
  request: Request,
  file: UploadFile | undefined,
  maxSize: number,
): string | undefined {
  const limit = `the limit is ${maxSize} bytes (FILE_UPLOAD_MAX_SIZE on the server)`
  if (code === 'max_size_exceeded') return `The upload grew past ${maxSize} bytes; ${limit}.`
  if (code !== 'size_exceeded' || !file) return undefined
  const offset = Number(request.headers.get('upload-offset'))
  const end = offset + Number(request.headers.get('content-length'))
  if (file.declaredSize !== null) {
    return `This body would take the upload to ${end} bytes, past its Upload-Length of ${file.declaredSize} bytes.`
  }
  return `This body would take the upload to ${end} bytes; ${limit}.`
}

/** The bytes a PATCH (or a creation-with-upload POST) wrote, read from its answer. */
function writtenBy(request: Request, response: Response): Written | undefined {
  if (request.method !== 'PATCH' && request.method !== 'POST') return undefined
  const to = Number(response.headers.get('upload-offset') ?? Number.NaN)
  const from = request.method === 'POST' ? 0 : Number(request.headers.get('upload-offset'))
  return Number.isFinite(from) && Number.isFinite(to) ? { from, to } : undefined
}

function hasBody(headers: Headers): boolean {
  return Number(headers.get('content-length') ?? 0) > 0 || headers.has('transfer-encoding')
}

function jsonError(
  status: number,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): Response {
  return new Response(errorBody(code, message), {
    status,
    headers: {
      'Content-Type': 'application/json',
      'Tus-Resumable': TUS_RESUMABLE,
      ...(status === 412 ? { 'Tus-Version': TUS_RESUMABLE } : {}),
      ...extraHeaders,
    },
  })
}

async function asJsonError(
  response: Response,
  retryAfterSeconds: number | undefined,
  explain: (code: string) => string | undefined,
): Promise<Response> {
  const text = await response.text()
  const code = tusErrorCode(response.status, text)
  const body = isJsonError(text)
    ? text
    : errorBody(code, explain(code) ?? (text.trim() || response.statusText))
  const headers = new Headers(response.headers)
  headers.set('Content-Type', 'application/json')
  headers.set('Content-Length', String(Buffer.byteLength(body)))
  // onResponseError can set a status and a body, not headers: a 429 leaves its wait in the
  // request's state, and only a database outage answers 503 here.
  const retryAfter =
    retryAfterSeconds ?? (response.status === 503 ? RETRY_AFTER_SECONDS : undefined)
  if (retryAfter !== undefined) headers.set('Retry-After', String(retryAfter))
  return new Response(body, { status: response.status, headers })
}

/**
 * A PATCH whose Upload-Offset does not match learns the right one in the same answer, as tusd
 * does (tus-compliance-tests opt-err-002), instead of needing another HEAD.
 */
async function withCurrentOffset(error: Response, file: UploadFile, deps: TusDeps): Promise<void> {
  const progress = await deps.datastore.storage.progress(file.storageKey)
  if (progress) error.headers.set('Upload-Offset', String(progress.offset))
}

function isJsonError(text: string): boolean {
  try {
    return typeof JSON.parse(text)?.error?.code === 'string'
  } catch {
    return false
  }
}

/**
 * The extensions tusbox adds to those @tus/server lists (checksum, concatenation), and GET among
 * the methods a page may send: the upload URL is also where the file is downloaded from.
 */
function advertiseExtensions(headers: Headers): void {
  advertiseChecksum(headers)
  headers.set('Tus-Extension', `${headers.get('tus-extension')},concatenation`)
  const methods = headers.get('access-control-allow-methods')
  if (methods) headers.set('Access-Control-Allow-Methods', `${methods}, GET`)
}

/** tus expiration extension: unfinished uploads say until when they may sit idle. */
function withUploadExpires(
  request: Request,
  response: Response,
  file: { status: string; expiresAt: Date | null } | undefined,
): Response {
  if (file?.status !== 'UPLOADING' || !file.expiresAt || request.method === 'DELETE')
    return response
  response.headers.set('Upload-Expires', file.expiresAt.toUTCString())
  return response
}
