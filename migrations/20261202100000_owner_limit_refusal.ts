import type { Knex } from 'knex'

/**
 * An owned creation in one round trip: this function takes the owner's advisory lock (held
 * until the calling statement's transaction ends) and then counts the owner's unfinished
 * uploads. It must be a VOLATILE plpgsql function: in READ COMMITTED, the calling statement's
 * snapshot is taken before the lock is granted, but each statement inside a volatile function
 * takes a new one, so the count sees every creation committed by whoever held the lock before.
 * Returns the limit the new upload would pass ('too_many_uploads' | 'too_many_bytes'), or NULL.
 *
 * The count runs under the lock, so an owner's creations wait for it one after the other: the
 * partial index makes it read only the owner's unfinished uploads (index-only), not every upload
 * the owner ever made (the (owner, created_at) index) nor everyone's unfinished ones.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE INDEX upload_files_unfinished_by_owner ON upload_files (owner) INCLUDE (declared_size)
      WHERE status = 'UPLOADING'
  `)
  await knex.raw(`
    CREATE FUNCTION tusbox_owner_limit_refusal(
      owner_name text,
      lock_key bigint,
      new_bytes bigint,
      max_uploads bigint,
      max_bytes bigint,
      unknown_size_counts bigint
    ) RETURNS text
    LANGUAGE plpgsql VOLATILE
    AS $$
    DECLARE
      uploads bigint;
      bytes bigint;
    BEGIN
      PERFORM pg_advisory_xact_lock(lock_key);
      SELECT count(*), coalesce(sum(coalesce(declared_size, unknown_size_counts)), 0)
        INTO uploads, bytes
        FROM upload_files
        WHERE owner = owner_name AND status = 'UPLOADING';
      IF uploads + 1 > max_uploads THEN
        RETURN 'too_many_uploads';
      END IF;
      IF bytes + new_bytes > max_bytes THEN
        RETURN 'too_many_bytes';
      END IF;
      RETURN NULL;
    END
    $$
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    'DROP FUNCTION tusbox_owner_limit_refusal(text, bigint, bigint, bigint, bigint, bigint)',
  )
  await knex.raw('DROP INDEX upload_files_unfinished_by_owner')
}
