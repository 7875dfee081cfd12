import { Readable } from 'node:stream'
import { Hono } from 'hono'
import type { UploadService } from '../../uploads/upload.service.ts'
import { attachmentDisposition } from '../content-disposition.ts'
import { fileIdParam, limitQuery, optionalUuidQuery } from '../params.ts'
import { presentFile } from '../presenters.ts'
import { parseRangeHeader } from '../range.ts'

const MAX_PAGE_SIZE = 100

export function fileRoutes(uploads: UploadService): Hono {
  const routes = new Hono()

  routes.get('/', async (c) => {
    const limit = limitQuery(c.req.query('limit'), 50, MAX_PAGE_SIZE)
    const files = await uploads.list({
      batchId: optionalUuidQuery('batchId', c.req.query('batchId')),
      after: optionalUuidQuery('after', c.req.query('after')),
      limit,
    })
    const last = files.at(-1)
    return c.json({
      files: files.map(presentFile),
      nextCursor: files.length === limit && last ? last.id : null,
    })
  })

  routes.get('/:id', async (c) => {
    return c.json(presentFile(await uploads.get(fileIdParam(c.req.param('id')))))
  })

  routes.delete('/:id', async (c) => {
    return c.json(presentFile(await uploads.delete(fileIdParam(c.req.param('id')))))
  })

  routes.get('/:id/content', async (c) => {
    const requested = parseRangeHeader(c.req.header('range'))
    const { file, stream, range } = await uploads.openContent(
      fileIdParam(c.req.param('id')),
      requested,
    )
    const size = file.size ?? 0
    const headers = new Headers({
      'Content-Type': file.detectedType ?? 'application/octet-stream',
      'Content-Disposition': attachmentDisposition(file.filename ?? file.id),
      'Content-Length': String(range ? range.end - range.start + 1 : size),
      'Accept-Ranges': 'bytes',
      ETag: `"${file.sha256}"`,
      'Cache-Control': 'private, no-cache',
      'X-Content-Type-Options': 'nosniff',
      'Content-Security-Policy': "default-src 'none'; sandbox",
    })
    if (range) headers.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
    const body = Readable.toWeb(stream) as ReadableStream<Uint8Array>
    return new Response(body, { status: range ? 206 : 200, headers })
  })

  return routes
}
