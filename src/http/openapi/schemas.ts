import { z } from '@hono/zod-openapi'
import { AppError } from '../../lib/errors.ts'
import { MAX_FILES_PER_BATCH } from '../../uploads/batch.service.ts'
import { UPLOAD_STATUSES } from '../../uploads/types.ts'

/**
 * The shapes /api answers with, as the presenters build them; the OpenAPI description at
 * /api/openapi.json is generated from these and the route definitions next to them.
 */
const timestamp = z.iso.datetime().openapi({ example: '2026-11-28T12:00:00.000Z' })
const id = z.uuid().openapi({ example: '01a22063-b7db-76c5-ade9-046081fece3e' })

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'file_not_found' }),
      message: z.string().openapi({ example: 'No file with id 01a22063-….' }),
    }),
  })
  .openapi('Error')

export const FileSchema = z
  .object({
    id,
    status: z.enum(UPLOAD_STATUSES),
    filename: z.string().nullable(),
    contentType: z
      .string()
      .nullable()
      .openapi({ description: 'Detected from the bytes once stored' }),
    declaredType: z.string().nullable(),
    size: z.number().int().nullable(),
    sha256: z.string().nullable().openapi({ description: 'Hex SHA-256 of the stored bytes' }),
    batchId: id.nullable(),
    error: z.object({ code: z.string(), message: z.string().nullable() }).nullable(),
    createdAt: timestamp,
    updatedAt: timestamp,
    storedAt: timestamp.nullable(),
    deletedAt: timestamp.nullable(),
    expiresAt: timestamp.nullable(),
  })
  .openapi('File')

export const FilePageSchema = z
  .object({
    files: z.array(FileSchema),
    nextCursor: id.nullable().openapi({ description: 'Pass as `after` for the next page' }),
  })
  .openapi('FilePage')

export const BatchSchema = z
  .object({
    id,
    expectedFiles: z.number().int().nullable(),
    completeRequestedAt: timestamp.nullable(),
    completedAt: timestamp.nullable(),
    createdAt: timestamp,
    allStored: z.boolean().openapi({ description: 'True once it has files and all are STORED' }),
    files: z.array(FileSchema),
  })
  .openapi('Batch')

const EXPECTED_FILES_RULE = `expectedFiles must be a whole number from 1 to ${MAX_FILES_PER_BATCH}.`

export const NewBatchSchema = z
  .object({
    expectedFiles: z
      .number({ error: EXPECTED_FILES_RULE })
      .int({ error: EXPECTED_FILES_RULE })
      .min(1, { error: EXPECTED_FILES_RULE })
      .max(MAX_FILES_PER_BATCH, { error: EXPECTED_FILES_RULE })
      .optional()
      .openapi({ description: 'The batch completes once this many files are STORED' }),
  })
  .openapi('NewBatch')

export const OutboxOverviewSchema = z
  .object({
    events: z.object({
      pending: z.number().int(),
      delivered: z.number().int(),
      dead: z.number().int(),
      oldestPendingAgeSeconds: z.number().nullable(),
    }),
    queues: z
      .array(
        z.object({
          name: z.string(),
          queued: z.number().int(),
          deferred: z.number().int(),
          active: z.number().int(),
          failed: z.number().int(),
          total: z.number().int(),
        }),
      )
      .readonly(),
  })
  .openapi('OutboxOverview')

export const FileIdParams = z.object({
  id: z.string().openapi({ param: { name: 'id', in: 'path' }, format: 'uuid' }),
})

export const BatchIdParams = FileIdParams

/**
 * Turns a failed validation into the API's error: `invalid_<field>` (snake case) for a bad
 * member, `invalid_body` when the body itself is not an object.
 */
export function rejectInvalid(result: { success: boolean; error?: z.ZodError }): void {
  if (result.success || !result.error) return
  const issue = result.error.issues[0]
  const field = issue?.path[0]
  if (typeof field === 'string' && issue) {
    const code = `invalid_${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`
    throw new AppError('invalid', code, issue.message)
  }
  throw new AppError('invalid', 'invalid_body', 'The body must be a JSON object.')
}

export function errorResponse(description: string) {
  return { description, content: { 'application/json': { schema: ErrorSchema } } }
}

export function jsonResponse<T extends z.ZodType>(description: string, schema: T) {
  return { description, content: { 'application/json': { schema } } }
}
