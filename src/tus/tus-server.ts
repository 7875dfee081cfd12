import { Server } from '@tus/server'
import { TUS_RESUMABLE } from '@tus/utils'
import { v7 as uuidv7 } from 'uuid'
import { errorBody, RETRY_AFTER_SECONDS } from '../lib/http-status.ts'
import type { Logger } from '../lib/logger.ts'
import type { FinishUpload } from '../uploads/finish-upload.ts'
import { isUploadId, uploadIdFromStorageKey } from '../uploads/storage-key.ts'
import type { UploadService } from '../uploads/upload.service.ts'
import type { Datastore } from './datastore.ts'
import { createHooks, type RequestUploads } from './hooks.ts'
import { tusErrorCode } from './tus-errors.ts'

export const TUS_PATH = '/files'

/**
 * Upload-Metadata above this many bytes is refused with 400: real metadata (name, type, batch)
 * fits in a few hundred bytes, and the whole row is kept in Postgres.
 */
export const MAX_METADATA_BYTES = 4096

export interface TusDeps {
  readonly datastore: Datastore
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  readonly maxSize: number
  /** Absolute base for Location; undefined derives it from the request's Host. */
  readonly publicUrl: string | undefined
  readonly logger: Logger
}

export type TusHandler = (request: Request) => Promise<Response>

/** @tus/server behind the checks it does not make and the JSON errors it does not write. */
export function createTusHandler(deps: TusDeps): TusHandler {
  const requestUploads: RequestUploads = new WeakMap()
  const server = new Server({
    path: TUS_PATH,
    datastore: deps.datastore.tusStore,
    maxSize: deps.maxSize,
    namingFunction: () => deps.uploads.storageKeyOf(uuidv7()),
    getFileIdFromRequest: (req, lastPath) => storageKeyFromUrl(req.url, lastPath, deps.uploads),
    generateUrl: (_req, { proto, host, path, id }) =>
      `${deps.publicUrl ?? `${proto}://${host}`}${path}/${uploadIdFromStorageKey(id)}`,
    ...createHooks(deps, requestUploads),
  })

  return async (request) => {
    const refusal = refuseEarly(request)
    if (refusal) return refusal
    const response = await server.handleWeb(request)
    if (response.status >= 400) return asJsonError(response)
    if (request.method === 'DELETE' && response.status === 204) {
      const key = storageKeyFromUrl(request.url, undefined, deps.uploads)
      if (key) await deps.uploads.markTerminated(key)
    }
    return withUploadExpires(request, response, requestUploads.get(request))
  }
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

function refuseEarly(request: Request): Response | undefined {
  const { method, headers } = request
  if (method === 'GET') {
    return jsonError(405, 'method_not_allowed', 'Download files from /api/files/:id/content.', {
      Allow: 'POST, HEAD, PATCH, DELETE, OPTIONS',
    })
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
  if (method === 'PATCH' && headers.get('content-type') !== 'application/offset+octet-stream') {
    return jsonError(
      415,
      'unsupported_media_type',
      'PATCH bodies must be sent as Content-Type: application/offset+octet-stream.',
    )
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

async function asJsonError(response: Response): Promise<Response> {
  const text = await response.text()
  const body = isJsonError(text)
    ? text
    : errorBody(tusErrorCode(response.status, text), text.trim() || response.statusText)
  const headers = new Headers(response.headers)
  headers.set('Content-Type', 'application/json')
  headers.set('Content-Length', String(Buffer.byteLength(body)))
  // onResponseError can set a status and a body, not headers; only it answers 503 here.
  if (response.status === 503) headers.set('Retry-After', String(RETRY_AFTER_SECONDS))
  return new Response(body, { status: response.status, headers })
}

function isJsonError(text: string): boolean {
  try {
    return typeof JSON.parse(text)?.error?.code === 'string'
  } catch {
    return false
  }
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
