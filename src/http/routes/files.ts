import { Readable } from 'node:stream'
import { Hono } from 'hono'
import type { UploadService } from '../../uploads/upload.service.ts'
import { type AppEnv, viewerOf } from '../auth.ts'
import { attachmentDisposition } from '../content-disposition.ts'
import { fileIdParam, limitQuery, optionalUuidQuery } from '../params.ts'
import { presentFile } from '../presenters.ts'
import { parseRangeHeader } from '../range.ts'

const MAX_PAGE_SIZE = 100

export function fileRoutes(uploads: UploadService): Hono<AppEnv> {
  const routes = new Hono<AppEnv>()

  routes.get('/', async (c) => {
    const limit = limitQuery(c.req.query('limit'), 50, MAX_PAGE_SIZE)
    const files = await uploads.list(
      {
        batchId: optionalUuidQuery('batchId', c.req.query('batchId')),
        after: optionalUuidQuery('after', c.req.query('after')),
        limit,
      },
      viewerOf(c),
    )
    const last = files.at(-1)
    return c.json({
      files: files.map(presentFile),
      nextCursor: files.length === limit && last ? last.id : null,
    })
  })

  routes.get('/:id', async (c) => {
    return c.json(presentFile(await uploads.get(fileIdParam(c.req.param('id')), viewerOf(c))))
  })

  routes.delete('/:id', async (c) => {
    return c.json(presentFile(await uploads.delete(fileIdParam(c.req.param('id')), viewerOf(c))))
  })

  routes.get('/:id/content', async (c) => {
    const file = await uploads.getStored(fileIdParam(c.req.param('id')), viewerOf(c))
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
    const { stream, range } = await uploads.openContent(
      file,
      parseRangeHeader(c.req.header('range')),
    )
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
  })

  return routes
}
