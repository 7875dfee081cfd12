import { Readable } from 'node:stream'
import type { Context } from 'hono'
import type { UploadService } from '../uploads/upload.service.ts'
import { type AppEnv, viewerOf } from './auth.ts'
import { attachmentDisposition } from './content-disposition.ts'
import { fileIdParam } from './params.ts'
import { parseRangeHeader } from './range.ts'

/**
 * The bytes of a STORED file, for `/api/files/:id/content` and the tus upload URL alike: the
 * owner's only (404 to anyone else), a single Range, a download disposition, and on S3 with
 * presigned downloads a 302. Anything not STORED answers a JSON error, never partial bytes.
 */
export async function serveFileContent(
  c: Context<AppEnv>,
  uploads: UploadService,
  rawId: string,
): Promise<Response> {
  const file = await uploads.getStored(fileIdParam(rawId), viewerOf(c))
  const presentation = {
    contentType: file.detectedType ?? 'application/octet-stream',
    contentDisposition: attachmentDisposition(file.filename ?? file.id),
  }
  const redirect = await uploads.downloadUrl(file, presentation)
  if (redirect) {
    // A fresh URL per call; a cached redirect would outlive its signature.
    c.header('Cache-Control', 'no-store')
    return c.redirect(redirect, 302)
  }
  const { stream, range } = await uploads.openContent(file, parseRangeHeader(c.req.header('range')))
  const headers = new Headers({
    'Content-Type': presentation.contentType,
    'Content-Disposition': presentation.contentDisposition,
    'Content-Length': String(range ? range.end - range.start + 1 : file.size),
    'Accept-Ranges': 'bytes',
    ETag: `"${file.sha256}"`,
    'Cache-Control': 'private, no-cache',
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': "default-src 'none'; sandbox",
  })
  if (range) headers.set('Content-Range', `bytes ${range.start}-${range.end}/${file.size}`)
  const body = Readable.toWeb(stream) as ReadableStream<Uint8Array>
  return new Response(body, { status: range ? 206 : 200, headers })
}
