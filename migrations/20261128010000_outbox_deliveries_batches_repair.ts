import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Delivery state per event and destination (each webhook URL, the pg-boss topic): one failing
  // endpoint is retried alone and never causes a resend to the others.
  await knex.schema.createTable('outbox_deliveries', (table) => {
    table
      .uuid('event_id')
      .notNullable()
      .references('id')
      .inTable('outbox_events')
      .onDelete('CASCADE')
    table.text('destination').notNullable()
    table.text('status').notNullable().defaultTo('pending')
    table.integer('attempts').notNullable().defaultTo(0)
    table.text('last_error')
    table.timestamp('next_attempt_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.timestamp('delivered_at', { useTz: true })
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.primary(['event_id', 'destination'])
  })
  await knex.raw(`
    ALTER TABLE outbox_deliveries
      ADD CONSTRAINT outbox_deliveries_status_check CHECK (status IN ('pending', 'delivered', 'dead'))
  `)

  await knex.schema.alterTable('upload_batches', (table) => {
    table.integer('expected_files')
    table.timestamp('complete_requested_at', { useTz: true })
    table.timestamp('completed_at', { useTz: true })
  })

  // Repair looks at each idle upload once after its last activity, not at every run.
  await knex.schema.alterTable('upload_files', (table) => {
    table.timestamp('repair_checked_at', { useTz: true })
    table.index(['status', 'updated_at'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('upload_files', (table) => {
    table.dropIndex(['status', 'updated_at'])
    table.dropColumn('repair_checked_at')
  })
  await knex.schema.alterTable('upload_batches', (table) => {
    table.dropColumn('completed_at')
    table.dropColumn('complete_requested_at')
    table.dropColumn('expected_files')
  })
  await knex.schema.dropTable('outbox_deliveries')
}
