import { AppError } from '../lib/errors.ts'
import { isUuid } from '../uploads/storage-key.ts'

/** Ids are checked before any query: Postgres rejects a malformed uuid with an error, not a miss. */
export function fileIdParam(value: string): string {
  if (!isUuid(value)) throw new AppError('not_found', 'file_not_found', `No file with id ${value}.`)
  return value.toLowerCase()
}

export function batchIdParam(value: string): string {
  if (!isUuid(value))
    throw new AppError('not_found', 'batch_not_found', `No batch with id ${value}.`)
  return value.toLowerCase()
}

export function optionalUuidQuery(name: string, value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  if (!isUuid(value)) throw new AppError('invalid', `invalid_${name}`, `${name} must be an id.`)
  return value.toLowerCase()
}

export function limitQuery(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback
  const limit = Number(value)
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new AppError('invalid', 'invalid_limit', `limit must be a whole number from 1 to ${max}.`)
  }
  return limit
}
