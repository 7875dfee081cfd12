import { createHash } from 'node:crypto'
import type { Knex } from 'knex'

/**
 * The first 8 bytes of SHA-256 as a signed bigint (as text, for a `::bigint` parameter).
 * Advisory keys are shared by everything in the database; with 64 bits, a collision between two
 * of our names or with pg-boss's own locks (also 64-bit hash prefixes, in the same single-bigint
 * key space) is negligible. 32-bit hashtext() would not be.
 */
export function advisoryKey(name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString()
}

/**
 * Holds the owner's advisory lock until the transaction ends, so that what an owner creates
 * (uploads, batches) is counted against its limits one creation at a time.
 */
export async function lockOwner(trx: Knex.Transaction, owner: string): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(?::bigint)', [advisoryKey(ownerLockName(owner))])
}

/** The name of an owner's lock, also taken inside tusbox_owner_limit_refusal (see its migration). */
export function ownerLockName(owner: string): string {
  return `tusbox:owner:${owner}`
}
