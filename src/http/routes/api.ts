import { OpenAPIHono } from '@hono/zod-openapi'
import type { OutboxOperations } from '../../outbox/operations.ts'
import type { BatchService } from '../../uploads/batch.service.ts'
import type { UploadService } from '../../uploads/upload.service.ts'
import type { AppEnv } from '../auth.ts'
import { htmlPageHeaders } from '../html-page.ts'
import { API_DOCS_PAGE } from '../openapi/docs-page.ts'
import { adminRoutes } from './admin.ts'
import { batchRoutes } from './batches.ts'
import { fileRoutes } from './files.ts'

export interface ApiDeps {
  readonly uploads: UploadService
  readonly batches: BatchService
  readonly operations: OutboxOperations
  readonly version: string
}

/** Paths under /api anyone may read: the description of the API, not its data. */
export const PUBLIC_API_PATHS = ['/openapi.json', '/docs']

/** The JSON API, with its OpenAPI 3.1 description generated from the route definitions. */
export function apiRoutes(deps: ApiDeps): OpenAPIHono<AppEnv> {
  const api = new OpenAPIHono<AppEnv>()
  api.route('/files', fileRoutes(deps.uploads))
  api.route('/batches', batchRoutes(deps.batches))
  api.route('/admin', adminRoutes(deps.operations))

  api.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'Needed when AUTH_MODE=jwt; its sub claim owns what it creates.',
  })
  api.doc31('/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'tusbox API',
      version: deps.version,
      description:
        'Files uploaded over tus or RUFH at /files, their batches, and ops figures. Errors are always {"error": {"code", "message"}}.',
    },
    servers: [{ url: '/api' }],
    security: [{ bearer: [] }],
  })
  const docsHeaders = htmlPageHeaders(API_DOCS_PAGE)
  api.get('/docs', (c) => c.html(API_DOCS_PAGE, 200, docsHeaders))
  return api
}
