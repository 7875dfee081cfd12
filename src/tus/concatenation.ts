import { Metadata, TUS_RESUMABLE } from '@tus/utils'
import { v7 as uuidv7 } from 'uuid'
import type { Principal } from '../auth/authenticate.ts'
import { AppError } from '../lib/errors.ts'
import { isUploadId } from '../uploads/storage-key.ts'
import type { UploadFile } from '../uploads/types.ts'
import type { UploadService } from '../uploads/upload.service.ts'

/**
 * The tus 1.0.0 concatenation extension at the edge: reading `Upload-Concat`, which @tus/server
 * 2.4.5 refuses outright (its PostHandler tests the store for a misspelt extension,
 * "concatentation"). Partial uploads go through @tus/server as ordinary uploads; tusbox creates
 * final uploads itself, from the rows and bytes the partials left.
 */
export type UploadConcatRequest =
  | { readonly kind: 'none' }
  | { readonly kind: 'partial' }
  | { readonly kind: 'final'; readonly partialIds: readonly string[] }
  | { readonly kind: 'refused'; readonly code: string; readonly message: string }

export interface UploadUrls {
  /** PUBLIC_URL when set explicitly: the base tus-js-client saw in Location. */
  readonly publicUrl: string | undefined
  readonly tusPath: string
}

const FINAL_PREFIX = 'final;'

/** Reads `Upload-Concat` of a creation: `partial`, or `final;<url> <url> …` (tus 1.0.0). */
export function parseUploadConcat(request: Request, urls: UploadUrls): UploadConcatRequest {
  const header = request.headers.get('upload-concat')
  if (header === null) return { kind: 'none' }
  const value = header.trim()
  if (value === 'partial') return { kind: 'partial' }
  if (!value.startsWith(FINAL_PREFIX)) {
    return refused('Upload-Concat must be "partial" or "final;<url> <url> …".')
  }
  // tus 1.0.0: "The Client MUST NOT include the Upload-Length header in the final upload
  // creation": the length is the partials' sum.
  if (request.headers.has('upload-length') || request.headers.has('upload-defer-length')) {
    return refused('A final upload takes its length from its partial uploads; send no length.')
  }
  const tokens = value.slice(FINAL_PREFIX.length).split(' ').filter(Boolean)
  if (tokens.length === 0) return refused('Upload-Concat: final names no partial uploads.')
  const partialIds: string[] = []
  for (const token of tokens) {
    const id = uploadIdFromUrl(token, request.url, urls)
    if (!id) return refused(`${token.slice(0, 200)} is not an upload URL of this server.`)
    partialIds.push(id)
  }
  return { kind: 'final', partialIds }
}

function refused(message: string): UploadConcatRequest {
  return { kind: 'refused', code: 'invalid_upload_concat', message }
}

/**
 * Absolute URLs (from Location), relative ones, and those behind PUBLIC_URL (a proxy's host and
 * path prefix) all name an upload; a URL of another host names none.
 */
function uploadIdFromUrl(token: string, requestUrl: string, urls: UploadUrls): string | undefined {
  let url: URL
  try {
    url = new URL(token, requestUrl)
  } catch {
    return undefined
  }
  const id = url.pathname.slice(url.pathname.lastIndexOf('/') + 1)
  if (!isUploadId(id)) return undefined
  const bases = [{ host: new URL(requestUrl).host, prefix: '' }]
  if (urls.publicUrl) {
    const base = new URL(urls.publicUrl)
    bases.push({ host: base.host, prefix: base.pathname.replace(/\/$/, '') })
  }
  const matches = bases.some(
    ({ host, prefix }) => url.host === host && url.pathname === `${prefix}${urls.tusPath}/${id}`,
  )
  return matches ? id : undefined
}

/** The request @tus/server sees for a partial upload: an ordinary creation. */
export function withoutUploadConcat(request: Request): Request {
  const headers = new Headers(request.headers)
  headers.delete('upload-concat')
  return new Request(request.url, {
    method: request.method,
    headers,
    body: request.body,
    ...(request.body ? { duplex: 'half' } : {}),
  })
}

export interface ConcatenationEdgeDeps {
  readonly uploads: UploadService
  /** An upload's URL, as Location gives it. */
  readonly urlOf: (request: Request, id: string) => string
  readonly uploadCreated: () => void
  /** The JSON error answer any tus request gets for `error`. */
  readonly answerError: (request: Request, error: unknown) => Promise<Response>
}

/** What the tus handler hands to concatenation, past @tus/server. */
export interface ConcatenationEdge {
  /** `POST` with `Upload-Concat: final;…`: joined and finished before its 201 is sent. */
  createFinal(
    request: Request,
    principal: Principal | undefined,
    partialIds: readonly string[],
  ): Promise<Response>
  /**
   * A HEAD that @tus/server answered 410: for a partial whose bytes were joined into a final,
   * its answer as it was, complete; otherwise undefined. Looked up only after that 410, so other
   * HEADs cost nothing.
   */
  joinedPartial(
    request: Request,
    principal: Principal | undefined,
    storageKey: string | undefined,
  ): Promise<Response | undefined>
}

export function createConcatenationEdge(deps: ConcatenationEdgeDeps): ConcatenationEdge {
  return {
    async createFinal(request, principal, partialIds) {
      await request.body?.cancel()
      // Only OPTIONS reaches tus without a principal; anything else is a wiring mistake.
      if (!principal) {
        const refusal = new AppError('unauthenticated', 'unauthenticated', 'Authenticate first.')
        return deps.answerError(request, refusal)
      }
      try {
        const file = await deps.uploads.concatenate({
          storageKey: deps.uploads.storageKeyOf(uuidv7()),
          partialIds,
          metadata: finalMetadata(request),
          owner: principal.owner,
        })
        deps.uploadCreated()
        const urlOf = (id: string) => deps.urlOf(request, id)
        // tus 1.0.0 calls Upload-Concat a request and response header: the 201 of a final says
        // what it joined, as the 201 of a partial says `partial`.
        const headers = new Headers({ Location: urlOf(file.id), 'Tus-Resumable': TUS_RESUMABLE })
        const concat = uploadConcatHeader(file, urlOf)
        if (concat) headers.set('Upload-Concat', concat)
        return new Response(null, { status: 201, headers })
      } catch (error) {
        return deps.answerError(request, error)
      }
    },

    async joinedPartial(request, principal, storageKey) {
      if (request.method !== 'HEAD' || !principal || !storageKey) return undefined
      const size = await deps.uploads.joinedPartialSize(storageKey, principal.owner)
      return size === undefined ? undefined : joinedPartialHead(size)
    },
  }
}

/** Upload-Metadata of a final creation, as @tus/server would read it for any other. */
function finalMetadata(request: Request): Record<string, string | null> | undefined {
  const header = request.headers.get('upload-metadata')
  if (header === null) return undefined
  try {
    return Metadata.parse(header) as Record<string, string | null>
  } catch {
    throw new AppError('invalid', 'invalid_metadata', 'Upload-Metadata is not valid.')
  }
}

/** tus 1.0.0: HEAD on a partial or final upload carries its Upload-Concat. */
export function uploadConcatHeader(
  file: UploadFile,
  urlOf: (id: string) => string,
): string | undefined {
  if (file.concat === 'partial') return 'partial'
  if (file.concat === 'final')
    return `${FINAL_PREFIX}${(file.partialIds ?? []).map(urlOf).join(' ')}`
  return undefined
}

/** What HEAD answers for a partial upload already joined into its final (its bytes are gone). */
function joinedPartialHead(size: number): Response {
  return new Response(null, {
    status: 200,
    headers: {
      'Tus-Resumable': TUS_RESUMABLE,
      'Cache-Control': 'no-store',
      'Upload-Offset': String(size),
      'Upload-Length': String(size),
      'Upload-Concat': 'partial',
    },
  })
}
