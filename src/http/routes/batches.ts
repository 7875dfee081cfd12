import { Hono } from 'hono'
import type { BatchService } from '../../uploads/batch.service.ts'
import { batchIdParam } from '../params.ts'
import { presentBatch, presentBatchView } from '../presenters.ts'

export function batchRoutes(batches: BatchService): Hono {
  const routes = new Hono()

  routes.post('/', async (c) => c.json(presentBatch(await batches.create(null)), 201))

  routes.get('/:id', async (c) =>
    c.json(presentBatchView(await batches.get(batchIdParam(c.req.param('id'))))),
  )

  return routes
}
