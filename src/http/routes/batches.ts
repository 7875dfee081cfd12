import { Hono } from 'hono'
import { AppError } from '../../lib/errors.ts'
import type { BatchService } from '../../uploads/batch.service.ts'
import { type AppEnv, viewerOf } from '../auth.ts'
import { batchIdParam } from '../params.ts'
import { presentBatchView } from '../presenters.ts'

export function batchRoutes(batches: BatchService): Hono<AppEnv> {
  const routes = new Hono<AppEnv>()

  routes.post('/', async (c) => {
    const body = await optionalJsonObject(c.req.raw)
    const expectedFiles = body.expectedFiles ?? null
    if (expectedFiles !== null && typeof expectedFiles !== 'number') {
      throw new AppError('invalid', 'invalid_expected_files', 'expectedFiles must be a number.')
    }
    const batch = await batches.create(viewerOf(c), expectedFiles)
    return c.json(presentBatchView({ batch, files: [], allStored: false }), 201)
  })

  routes.get('/:id', async (c) =>
    c.json(presentBatchView(await batches.get(batchIdParam(c.req.param('id')), viewerOf(c)))),
  )

  routes.post('/:id/complete', async (c) =>
    c.json(
      presentBatchView(
        await batches.requestCompletion(batchIdParam(c.req.param('id')), viewerOf(c)),
      ),
    ),
  )

  return routes
}

/** An empty body is an empty object; anything else must be a JSON object. */
async function optionalJsonObject(request: Request): Promise<Record<string, unknown>> {
  const text = await request.text()
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
