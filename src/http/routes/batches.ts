import { createRoute, OpenAPIHono } from '@hono/zod-openapi'
import type { Context } from 'hono'
import { AppError } from '../../lib/errors.ts'
import type { BatchService } from '../../uploads/batch.service.ts'
import { type AppEnv, viewerOf } from '../auth.ts'
import {
  BatchIdParams,
  BatchSchema,
  errorResponse,
  jsonResponse,
  NewBatchSchema,
  rejectInvalid,
} from '../openapi/schemas.ts'
import { batchIdParam } from '../params.ts'
import { presentBatchView } from '../presenters.ts'

const createBatch = createRoute({
  method: 'post',
  path: '/',
  summary: 'Create a batch',
  description: 'Pass its id as `batchId` upload metadata to add files to it.',
  request: {
    // A reference, not the schema itself: @hono/zod-openapi would then validate the body before
    // the handler and refuse any body without a JSON Content-Type (415). The handler checks it
    // against the same NewBatchSchema, whatever its Content-Type, as the API always has.
    body: {
      required: false,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/NewBatch' } } },
    },
  },
  responses: {
    201: jsonResponse('The new batch', BatchSchema),
    400: errorResponse('The body is not a JSON object, or expectedFiles is out of range'),
  },
})

const getBatch = createRoute({
  method: 'get',
  path: '/{id}',
  summary: 'A batch and its files',
  request: { params: BatchIdParams },
  responses: {
    200: jsonResponse('The batch', BatchSchema),
    404: errorResponse('No such batch (or not yours)'),
  },
})

const completeBatch = createRoute({
  method: 'post',
  path: '/{id}/complete',
  summary: 'Declare that no more files are coming',
  description:
    '`batch.completed` is recorded once every file is STORED (at once if they already are). Idempotent; later uploads into the batch get 409 batch_closed.',
  request: { params: BatchIdParams },
  responses: {
    200: jsonResponse('The batch', BatchSchema),
    404: errorResponse('No such batch (or not yours)'),
  },
})

export function batchRoutes(batches: BatchService): OpenAPIHono<AppEnv> {
  const routes = new OpenAPIHono<AppEnv>({ defaultHook: rejectInvalid })
  routes.openAPIRegistry.register('NewBatch', NewBatchSchema)

  routes.openapi(createBatch, async (c) => {
    const body = NewBatchSchema.safeParse(await optionalJsonObject(c))
    rejectInvalid(body)
    const batch = await batches.create(viewerOf(c), body.data?.expectedFiles ?? null)
    return c.json(presentBatchView({ batch, files: [], allStored: false }), 201)
  })

  routes.openapi(getBatch, async (c) =>
    c.json(presentBatchView(await batches.get(batchIdParam(c.req.param('id')), viewerOf(c))), 200),
  )

  routes.openapi(completeBatch, async (c) =>
    c.json(
      presentBatchView(
        await batches.requestCompletion(batchIdParam(c.req.param('id')), viewerOf(c)),
      ),
      200,
    ),
  )

  return routes
}

/**
 * An empty body is an empty object; anything else must be a JSON object, whatever its declared
 * Content-Type (only application/json bodies are checked before the handler runs).
 */
async function optionalJsonObject(c: Context<AppEnv>): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  if (text.trim() === '') return {}
  try {
    const value: unknown = JSON.parse(text)
    if (typeof value === 'object' && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>
  } catch {
    // Reported below like any other body that is not an object.
  }
  throw new AppError('invalid', 'invalid_body', 'The body must be a JSON object.')
}
