import type { Knex } from 'knex'
import { advisoryKey, ownerLockName } from '../db/advisory-lock.ts'
import { executor } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import type { UploadConcat, UploadFile, UploadStatus } from './types.ts'

interface UploadRow {
  id: string
  owner: string | null
  batch_id: string | null
  status: UploadStatus
  filename: string | null
  declared_type: string | null
  detected_type: string | null
  declared_size: string | null
  size: string | null
  sha256: string | null
  storage_key: string
  error_code: string | null
  error_message: string | null
  metadata: Record<string, string | null>
  created_at: Date
  updated_at: Date
  stored_at: Date | null
  deleted_at: Date | null
  expires_at: Date | null
  concat: UploadConcat | null
  partial_ids: string[] | null
  final_id: string | null
}

export interface NewUpload {
  readonly id: string
  readonly owner: string | null
  readonly batchId: string | null
  readonly filename: string | null
  readonly declaredType: string | null
  readonly declaredSize: number | null
  readonly storageKey: string
  readonly metadata: Record<string, string | null>
  readonly expiresAt: Date
  readonly concat?: UploadConcat
  /** A final's partial uploads, in order. */
  readonly partialIds?: readonly string[]
}

export interface StoredFacts {
  readonly size: number
  readonly sha256: string
  readonly detectedType: string
  readonly expiresAt: Date | null
}

export interface FailureFacts {
  readonly code: string
  readonly message: string
  readonly size: number | null
  readonly detectedType: string | null
}

export interface ListQuery {
  /** Only this owner's files; undefined lists everyone's (AUTH_MODE=none). */
  readonly owner?: string
  readonly batchId?: string
  readonly limit: number
  /** Id of the last file of the previous page; uuidv7 ids sort by creation time. */
  readonly after?: string
}

export interface OwnerLimits {
  readonly maxUnfinishedUploads: number
  readonly maxBytesInFlight: number
  readonly unknownSizeCounts: number
}

export type LimitReached = 'too_many_uploads' | 'too_many_bytes'

const TABLE = 'upload_files'

/** See migrations/20261202100000_owner_limit_refusal.ts. */
const REFUSAL_CALL =
  'tusbox_owner_limit_refusal(?::text, ?::bigint, ?::bigint, ?::bigint, ?::bigint, ?::bigint)'

function refusalBindings(
  owner: string,
  declaredSize: number | null,
  limits: OwnerLimits,
): readonly (string | number)[] {
  return [
    owner,
    advisoryKey(ownerLockName(owner)),
    declaredSize ?? limits.unknownSizeCounts,
    limits.maxUnfinishedUploads,
    limits.maxBytesInFlight,
    limits.unknownSizeCounts,
  ]
}

/** The SQL types of the columns a new upload sets: an INSERT … SELECT infers none. */
const COLUMN_TYPES = {
  id: 'uuid',
  owner: 'text',
  batch_id: 'uuid',
  status: 'text',
  filename: 'text',
  declared_type: 'text',
  declared_size: 'bigint',
  storage_key: 'text',
  metadata: 'jsonb',
  expires_at: 'timestamptz',
  concat: 'text',
  partial_ids: 'uuid[]',
} as const

function columnsOf(upload: NewUpload): Record<keyof typeof COLUMN_TYPES, Knex.Value> {
  return {
    id: upload.id,
    owner: upload.owner,
    batch_id: upload.batchId,
    status: 'UPLOADING',
    filename: upload.filename,
    declared_type: upload.declaredType,
    declared_size: upload.declaredSize,
    storage_key: upload.storageKey,
    metadata: upload.metadata,
    expires_at: upload.expiresAt,
    concat: upload.concat ?? null,
    partial_ids: upload.partialIds ? [...upload.partialIds] : null,
  }
}

export class UploadRepository {
  readonly #db: Knex

  constructor(db: Knex) {
    this.#db = db
  }

  /** Returns the row as stored (RETURNING): a creation needs no second round trip to read it. */
  async insert(upload: NewUpload, tx?: Transaction): Promise<UploadFile> {
    const [row]: UploadRow[] = await executor(
      this.#db,
      tx,
    )(TABLE)
      .insert(columnsOf(upload))
      .returning('*')
    if (!row) throw new Error(`inserting upload_files row ${upload.id} returned nothing`)
    return toUploadFile(row)
  }

  /**
   * Inserts an owner's upload unless it would take them past a limit, in one statement (one
   * round trip): tusbox_owner_limit_refusal takes the owner's advisory lock, so concurrent
   * creations count one after the other, and the lock is held until the insert commits. An
   * upload of unknown length (deferred) counts as `unknownSizeCounts` bytes.
   */
  async insertWithinLimits(
    upload: NewUpload & { readonly owner: string },
    limits: OwnerLimits,
  ): Promise<UploadFile | LimitReached> {
    const columns = columnsOf(upload)
    const names = Object.keys(COLUMN_TYPES) as (keyof typeof COLUMN_TYPES)[]
    const { rows } = await this.#db.raw<{ rows: (UploadRow & { refusal: LimitReached | null })[] }>(
      `WITH decision AS (SELECT ${REFUSAL_CALL} AS refusal),
      inserted AS (
        INSERT INTO ${TABLE} (${names.join(', ')})
        SELECT ${names.map((name) => `?::${COLUMN_TYPES[name]}`).join(', ')}
        FROM decision WHERE refusal IS NULL
        RETURNING *
      )
      SELECT decision.refusal, inserted.* FROM decision LEFT JOIN inserted ON true`,
      [
        ...refusalBindings(upload.owner, upload.declaredSize, limits),
        ...names.map((name) => columns[name]),
      ],
    )
    const [row] = rows
    if (!row) throw new Error(`inserting upload_files row ${upload.id} returned nothing`)
    return row.refusal ?? toUploadFile(row)
  }

  /**
   * Gives the partial uploads `partialIds` to the final `finalId`, all or none: only unclaimed
   * partials still UPLOADING are taken, and a final racing for the same partial waits on its row
   * lock, then finds it claimed. Resolves with whether every partial was taken.
   */
  async claimPartials(
    finalId: string,
    partialIds: readonly string[],
    tx: Transaction,
  ): Promise<boolean> {
    const claimed = await executor(
      this.#db,
      tx,
    )(TABLE)
      .whereIn('id', partialIds)
      .where({ concat: 'partial', status: 'UPLOADING' })
      .whereNull('final_id')
      .update({ final_id: finalId, updated_at: this.#db.fn.now() })
    return claimed === partialIds.length
  }

  /** Hands back the partials of a final that could not be joined, so another final may take them. */
  async releasePartials(finalId: string): Promise<void> {
    await this.#db(TABLE)
      .where({ final_id: finalId, status: 'UPLOADING' })
      .update({ final_id: null, updated_at: this.#db.fn.now() })
  }

  /**
   * Which limit a new upload of `declaredSize` bytes would take its owner past, if any. The
   * owner's lock is let go as the answer comes: it is an early answer only (a creation checks
   * again as it inserts).
   */
  async checkLimits(
    owner: string,
    declaredSize: number | null,
    limits: OwnerLimits,
  ): Promise<LimitReached | undefined> {
    const { rows } = await this.#db.raw<{ rows: { refusal: LimitReached | null }[] }>(
      `SELECT ${REFUSAL_CALL} AS refusal`,
      refusalBindings(owner, declaredSize, limits),
    )
    return rows[0]?.refusal ?? undefined
  }

  async findById(id: string, tx?: Transaction): Promise<UploadFile | undefined> {
    const row = await executor(this.#db, tx)<UploadRow>(TABLE).where({ id }).first()
    return row && toUploadFile(row)
  }

  /** Reads the row and holds its lock until the transaction ends, so finishers take turns. */
  async lockById(id: string, tx: Transaction): Promise<UploadFile | undefined> {
    const row = await executor(this.#db, tx)<UploadRow>(TABLE).where({ id }).forUpdate().first()
    return row && toUploadFile(row)
  }

  async markStored(id: string, facts: StoredFacts, tx: Transaction): Promise<UploadFile> {
    return this.#update(
      id,
      {
        status: 'STORED',
        size: facts.size,
        sha256: facts.sha256,
        detected_type: facts.detectedType,
        stored_at: this.#db.fn.now(),
        expires_at: facts.expiresAt,
      },
      tx,
    )
  }

  async markFailed(id: string, facts: FailureFacts, tx: Transaction): Promise<UploadFile> {
    return this.#update(
      id,
      {
        status: 'FAILED',
        error_code: facts.code,
        error_message: facts.message,
        size: facts.size,
        detected_type: facts.detectedType,
        expires_at: null,
      },
      tx,
    )
  }

  async markDeleted(id: string, tx?: Transaction): Promise<UploadFile> {
    return this.#update(
      id,
      { status: 'DELETED', deleted_at: this.#db.fn.now(), expires_at: null },
      tx,
    )
  }

  /**
   * A partial upload whose bytes now live in its final: DELETED, with the size it contributed,
   * which a resuming client's HEAD is still told (see UploadService.joinedPartialSize).
   */
  async markJoined(id: string, size: number): Promise<UploadFile> {
    return this.#update(id, {
      status: 'DELETED',
      size,
      deleted_at: this.#db.fn.now(),
      expires_at: null,
    })
  }

  /** Pushes an unfinished upload's expiry forward; a no-op once the upload has left UPLOADING. */
  async extendExpiry(id: string, expiresAt: Date): Promise<void> {
    await this.#db(TABLE)
      .where({ id, status: 'UPLOADING' })
      .update({ expires_at: expiresAt, updated_at: this.#db.fn.now() })
  }

  /**
   * Locks up to `limit` rows in `status` whose expires_at has passed, skipping rows another
   * worker holds: concurrent purges take disjoint sets and never delete twice.
   */
  async lockExpired(
    status: UploadStatus,
    now: Date,
    limit: number,
    tx: Transaction,
  ): Promise<UploadFile[]> {
    const rows = await executor(
      this.#db,
      tx,
    )<UploadRow>(TABLE)
      .where({ status })
      .andWhere('expires_at', '<', now)
      .orderBy('expires_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
    return rows.map(toUploadFile)
  }

  async lockFailedBefore(cutoff: Date, limit: number, tx: Transaction): Promise<UploadFile[]> {
    const rows = await executor(
      this.#db,
      tx,
    )<UploadRow>(TABLE)
      .where({ status: 'FAILED' })
      .andWhere('updated_at', '<', cutoff)
      .orderBy('updated_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
    return rows.map(toUploadFile)
  }

  async markExpired(ids: readonly string[], tx: Transaction): Promise<void> {
    if (ids.length === 0) return
    await executor(
      this.#db,
      tx,
    )(TABLE)
      .whereIn('id', ids)
      .update({ status: 'EXPIRED', expires_at: null, updated_at: this.#db.fn.now() })
  }

  async deleteRows(ids: readonly string[], tx: Transaction): Promise<void> {
    if (ids.length === 0) return
    await executor(this.#db, tx)(TABLE).whereIn('id', ids).delete()
  }

  /** UPLOADING rows idle since before `idleBefore` and not checked since their last activity. */
  async repairCandidates(idleBefore: Date, limit: number): Promise<UploadFile[]> {
    const rows = await this.#db<UploadRow>(TABLE)
      .where({ status: 'UPLOADING' })
      .andWhere('updated_at', '<', idleBefore)
      .andWhere((query) =>
        query.whereNull('repair_checked_at').orWhereRaw('repair_checked_at < updated_at'),
      )
      .orderBy('updated_at')
      .limit(limit)
    return rows.map(toUploadFile)
  }

  /** Leaves updated_at alone: it measures the client's activity, not ours. */
  async markRepairChecked(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await this.#db(TABLE).whereIn('id', ids).update({ repair_checked_at: this.#db.fn.now() })
  }

  /** Uploads still UPLOADING: an index-only count on (status, expires_at), for metrics. */
  async countUploading(): Promise<number> {
    const [row] = await this.#db(TABLE)
      .where({ status: 'UPLOADING' })
      .count<{ count: string }[]>({ count: '*' })
    return Number(row?.count ?? 0)
  }

  async countInBatch(batchId: string): Promise<number> {
    const [row] = await this.#db(TABLE)
      .where({ batch_id: batchId })
      .count<{ count: string }[]>({ count: '*' })
    return Number(row?.count ?? 0)
  }

  async list(query: ListQuery): Promise<UploadFile[]> {
    const rows = await this.#db<UploadRow>(TABLE)
      // A partial upload is not a file: only its final is.
      .whereRaw(`concat IS DISTINCT FROM 'partial'`)
      .modify((builder) => {
        if (query.owner !== undefined) builder.where({ owner: query.owner })
        if (query.batchId) builder.where({ batch_id: query.batchId })
        if (query.after) builder.where('id', '>', query.after)
      })
      .orderBy('id')
      .limit(query.limit)
    return rows.map(toUploadFile)
  }

  async #update(
    id: string,
    changes: Record<string, unknown>,
    tx?: Transaction,
  ): Promise<UploadFile> {
    const [row] = await executor(
      this.#db,
      tx,
    )<UploadRow>(TABLE)
      .where({ id })
      .update({ ...changes, updated_at: this.#db.fn.now() })
      .returning('*')
    if (!row) throw new Error(`upload_files row ${id} vanished during an update`)
    return toUploadFile(row)
  }
}

function toUploadFile(row: UploadRow): UploadFile {
  return {
    id: row.id,
    owner: row.owner,
    batchId: row.batch_id,
    status: row.status,
    filename: row.filename,
    declaredType: row.declared_type,
    detectedType: row.detected_type,
    declaredSize: toNumber(row.declared_size),
    size: toNumber(row.size),
    sha256: row.sha256,
    storageKey: row.storage_key,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    metadata: row.metadata,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    storedAt: row.stored_at,
    deletedAt: row.deleted_at,
    expiresAt: row.expires_at,
    concat: row.concat,
    partialIds: row.partial_ids,
    finalId: row.final_id,
  }
}

/** node-postgres returns bigint as text; sizes stay far below 2^53. */
function toNumber(value: string | null): number | null {
  return value === null ? null : Number(value)
}
