import type { Knex } from 'knex'
import { v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createKnex } from '../../src/db/knex.ts'
import { storageKeyFor } from '../../src/uploads/storage-key.ts'
import {
  type NewUpload,
  type OwnerLimits,
  UploadRepository,
} from '../../src/uploads/upload.repository.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'

const RACERS = 20

describe('owner limits at creation (UploadRepository.insertWithinLimits)', () => {
  let database: TestDatabase
  let knex: Knex
  let uploads: UploadRepository

  beforeAll(async () => {
    database = await createTestDatabase()
    // One connection per racer: every creation is in flight at once, none waits for the pool.
    knex = createKnex(database.url, undefined, RACERS)
    uploads = new UploadRepository(knex)
  })

  afterAll(async () => {
    await knex?.destroy()
    await database?.drop()
  })

  const newUpload = (owner: string, declaredSize: number | null): NewUpload & { owner: string } => {
    const id = uuidv7()
    return {
      id,
      owner,
      batchId: null,
      filename: 'a.txt',
      declaredType: 'text/plain',
      declaredSize,
      storageKey: storageKeyFor(id),
      metadata: { filename: 'a.txt' },
      expiresAt: new Date(Date.now() + 60_000),
    }
  }
  const limits = (overrides: Partial<OwnerLimits>): OwnerLimits => ({
    maxUnfinishedUploads: 1000,
    maxBytesInFlight: 1_000_000,
    unknownSizeCounts: 1000,
    ...overrides,
  })
  const rowsOf = async (owner: string) =>
    knex('upload_files').where({ owner }).select('id', 'declared_size')
  const race = (owner: string, size: number, within: OwnerLimits) =>
    Promise.all(
      Array.from({ length: RACERS }, () =>
        uploads.insertWithinLimits(newUpload(owner, size), within),
      ),
    )

  // Both races over-admit if the count takes no lock, and also if it counts with the snapshot
  // of the statement that waited for the lock (tried: the function declared STABLE).
  it('admits exactly the unfinished uploads limit when creations race at it', async () => {
    const outcomes = await race('racer-count', 10, limits({ maxUnfinishedUploads: 5 }))

    expect(outcomes.filter((outcome) => typeof outcome !== 'string')).toHaveLength(5)
    expect(outcomes.filter((outcome) => outcome === 'too_many_uploads')).toHaveLength(15)
    expect(await rowsOf('racer-count')).toHaveLength(5)
  })

  it('admits exactly the bytes that fit when creations race at the bytes limit', async () => {
    const outcomes = await race('racer-bytes', 300, limits({ maxBytesInFlight: 1000 }))

    expect(outcomes.filter((outcome) => typeof outcome !== 'string')).toHaveLength(3)
    expect(outcomes.filter((outcome) => outcome === 'too_many_bytes')).toHaveLength(17)
    expect(await rowsOf('racer-bytes')).toHaveLength(3)
  })

  it('returns the stored row, and counts a deferred length as unknownSizeCounts bytes', async () => {
    const within = limits({ maxBytesInFlight: 1500, unknownSizeCounts: 1000 })
    const upload = newUpload('deferred', null)

    const stored = await uploads.insertWithinLimits(upload, within)

    expect(stored).toMatchObject({
      id: upload.id,
      owner: 'deferred',
      status: 'UPLOADING',
      declaredSize: null,
      storageKey: upload.storageKey,
      metadata: { filename: 'a.txt' },
      expiresAt: upload.expiresAt,
    })
    expect(await uploads.insertWithinLimits(newUpload('deferred', 600), within)).toBe(
      'too_many_bytes',
    )
    expect(await uploads.checkLimits('deferred', 500, within)).toBeUndefined()
    expect(await uploads.checkLimits('deferred', 501, within)).toBe('too_many_bytes')
    expect(await rowsOf('deferred')).toHaveLength(1)
  })

  it('counts only unfinished uploads', async () => {
    const within = limits({ maxUnfinishedUploads: 1 })
    const first = await uploads.insertWithinLimits(newUpload('finisher', 10), within)
    if (typeof first === 'string') throw new Error(`refused: ${first}`)
    expect(await uploads.insertWithinLimits(newUpload('finisher', 10), within)).toBe(
      'too_many_uploads',
    )

    await uploads.markDeleted(first.id)

    expect(await uploads.insertWithinLimits(newUpload('finisher', 10), within)).toMatchObject({
      status: 'UPLOADING',
    })
  })

  it('creates an owned upload in one database round trip', async () => {
    const statements: string[] = []
    const record = (query: { sql: string }) => statements.push(query.sql)
    knex.on('query', record)
    try {
      await uploads.insertWithinLimits(newUpload('counted', 10), limits({}))
    } finally {
      knex.off('query', record)
    }
    expect(statements).toHaveLength(1)
  })
})
