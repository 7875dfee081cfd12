import path from 'node:path'
import type { Knex } from 'knex'

export const MIGRATIONS_DIRECTORY = path.resolve(import.meta.dirname, '../../migrations')

/** Applies pending migrations; returns the names it ran. Safe to call on every start. */
export async function migrateLatest(db: Knex): Promise<string[]> {
  const [, applied] = (await db.migrate.latest({
    directory: MIGRATIONS_DIRECTORY,
    loadExtensions: ['.ts'],
  })) as [number, string[]]
  return applied
}
