import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('upload_batches', (table) => {
    table.uuid('id').primary()
    table.text('owner')
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.index(['owner', 'created_at'])
  })

  await knex.schema.createTable('upload_files', (table) => {
    table.uuid('id').primary()
    table.text('owner')
    table.uuid('batch_id').references('id').inTable('upload_batches').onDelete('RESTRICT')
    table.text('status').notNullable()
    table.text('filename')
    table.text('declared_type')
    table.text('detected_type')
    table.bigint('declared_size')
    table.bigint('size')
    table.specificType('sha256', 'char(64)')
    table.text('storage_key').notNullable().unique()
    table.text('error_code')
    table.text('error_message')
    table.jsonb('metadata').notNullable().defaultTo('{}')
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.timestamp('stored_at', { useTz: true })
    table.timestamp('deleted_at', { useTz: true })
    table.timestamp('expires_at', { useTz: true })
    table.index(['batch_id', 'created_at'])
    table.index(['owner', 'created_at'])
    table.index(['status', 'expires_at'])
  })
  await knex.raw(`
    ALTER TABLE upload_files
      ADD CONSTRAINT upload_files_status_check
        CHECK (status IN ('UPLOADING', 'STORED', 'FAILED', 'DELETED', 'EXPIRED')),
      ADD CONSTRAINT upload_files_stored_has_digest_check
        CHECK (status <> 'STORED' OR (sha256 IS NOT NULL AND size IS NOT NULL AND detected_type IS NOT NULL)),
      ADD CONSTRAINT upload_files_sizes_check
        CHECK ((size IS NULL OR size >= 0) AND (declared_size IS NULL OR declared_size >= 0))
  `)

  await knex.schema.createTable('outbox_events', (table) => {
    table.uuid('id').primary()
    table.text('aggregate_type').notNullable()
    table.text('aggregate_id').notNullable()
    table.text('event_type').notNullable()
    table.jsonb('payload').notNullable()
    table.text('idempotency_key').notNullable()
    table.text('status').notNullable().defaultTo('pending')
    table.integer('attempts').notNullable().defaultTo(0)
    table.text('last_error')
    table.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    table.timestamp('delivered_at', { useTz: true })
    table.unique(['event_type', 'idempotency_key'], {
      indexName: 'outbox_events_event_type_idempotency_key_unique',
    })
    table.index(['aggregate_type', 'aggregate_id'])
    table.index(['status', 'created_at'])
  })
  await knex.raw(`
    ALTER TABLE outbox_events
      ADD CONSTRAINT outbox_events_status_check CHECK (status IN ('pending', 'delivered', 'dead'))
  `)
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('outbox_events')
  await knex.schema.dropTable('upload_files')
  await knex.schema.dropTable('upload_batches')
}
