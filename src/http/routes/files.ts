import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { UploadService } from '../../uploads/upload.service.ts'
import { type AppEnv, viewerOf } from '../auth.ts'
import { serveFileContent } from '../file-content.ts'
import {
  errorResponse,
  FileIdParams,
  FilePageSchema,
  FileSchema,
  jsonResponse,
  rejectInvalid,
} from '../openapi/schemas.ts'
import { fileIdParam, limitQuery, optionalUuidQuery } from '../params.ts'
import { presentFile } from '../presenters.ts'

const MAX_PAGE_SIZE = 100

const listFiles = createRoute({
  method: 'get',
  path: '/',
  summary: 'Your files, oldest first',
  request: {
    query: z.object({
      batchId: z.string().optional().openapi({ format: 'uuid', description: 'Only this batch' }),
      limit: z
        .string()
        .optional()
        .openapi({ description: `1 to ${MAX_PAGE_SIZE}; default 50`, example: '50' }),
      after: z
        .string()
        .optional()
        .openapi({ format: 'uuid', description: '`nextCursor` of the previous page' }),
    }),
  },
  responses: {
    200: jsonResponse('A page of files', FilePageSchema),
    400: errorResponse('A limit out of range, or a batchId or cursor that is not an id'),
  },
})

const getFile = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'One file',
  request: { params: FileIdParams },
  responses: {
    200: jsonResponse('The file', FileSchema),
    404: errorResponse('No such file (or not yours)'),
  },
})

const deleteFile = createRoute({
  method: 'delete',
  path: '/{id}',
  summary: 'Delete a file: its bytes go, its row becomes DELETED',
  description: 'A STORED file gets a `file.deleted` event.',
  request: { params: FileIdParams },
  responses: {
    200: jsonResponse('The deleted file', FileSchema),
    404: errorResponse('No such file (or not yours)'),
    410: errorResponse('Already deleted or expired'),
  },
})

const fileContent = createRoute({
  method: 'get',
  path: '/{id}/content',
  summary: 'The bytes of a STORED file',
  description:
    "With its detected Content-Type, an RFC 6266 Content-Disposition and single-range Range support. On S3 with AWS_QUERYSTRING_AUTH=true: a 302 to a freshly presigned URL. The tus upload URL, `GET /files/{id}` outside /api (as tusd and @tus/server serve it, and tus-js-client's `upload.url`), answers exactly the same.",
  request: {
    params: FileIdParams,
    headers: z.object({
      range: z.string().optional().openapi({ example: 'bytes=0-1023' }),
    }),
  },
  responses: {
    200: {
      description: 'The whole file',
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
    },
    206: {
      description: 'The requested range',
      content: { 'application/octet-stream': { schema: z.string().openapi({ format: 'binary' }) } },
    },
    302: { description: 'A presigned URL to download from (S3)' },
    404: errorResponse('No such file (or not yours)'),
    409: errorResponse('The file is not STORED'),
    410: errorResponse('The file was deleted or expired'),
    416: errorResponse('The range is outside the file'),
  },
})

export function fileRoutes(uploads: UploadService): OpenAPIHono<AppEnv> {
  const routes = new OpenAPIHono<AppEnv>({ defaultHook: rejectInvalid })

  routes.openapi(listFiles, async (c) => {
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
    return c.json(
      {
        files: files.map(presentFile),
        nextCursor: files.length === limit && last ? last.id : null,
      },
      200,
    )
  })

  routes.openapi(getFile, async (c) =>
    c.json(presentFile(await uploads.get(fileIdParam(c.req.param('id')), viewerOf(c))), 200),
  )

  routes.openapi(deleteFile, async (c) =>
    c.json(presentFile(await uploads.delete(fileIdParam(c.req.param('id')), viewerOf(c))), 200),
  )

  routes.openapi(fileContent, (c) => serveFileContent(c, uploads, c.req.param('id')))

  return routes
}
