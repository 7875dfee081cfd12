import type { Knex } from 'knex'

/**
 * tus concatenation: a partial upload is never a file of its own; a final upload is joined from
 * partials, listed in order. A partial names the final that claimed it, so that two finals
 * racing for one partial cannot both have it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('upload_files', (table) => {
    table.text('concat')
    table.specificType('partial_ids', 'uuid[]')
    table.uuid('final_id')
  })
  await knex.raw(`
    ALTER TABLE upload_files
      ADD CONSTRAINT upload_files_concat_check CHECK (concat IN ('partial', 'final')),
      ADD CONSTRAINT upload_files_partial_ids_check CHECK ((concat IS NOT DISTINCT FROM 'final') = (partial_ids IS NOT NULL))
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE upload_files
      DROP CONSTRAINT upload_files_partial_ids_check,
      DROP CONSTRAINT upload_files_concat_check
  `)
  await knex.schema.alterTable('upload_files', (table) => {
    table.dropColumn('final_id')
    table.dropColumn('partial_ids')
    table.dropColumn('concat')
  })
}
