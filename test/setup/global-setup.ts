import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import { PgBoss } from 'pg-boss'
import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts'
import { createKnex } from '../../src/db/knex.ts'
import { migrateLatest } from '../../src/db/migrate.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { startS3TestServer } from '../helpers/s3-server.ts'
import type { S3TestSettings } from '../helpers/stores.ts'
import { TEMPLATE_DATABASE, withDatabase } from './template.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Connection to the server's maintenance database, for CREATE DATABASE … TEMPLATE. */
    adminDatabaseUrl: string
    /** The S3-compatible server: S3_TEST_* when set (a real MinIO), else the fauxqs shim. */
    s3: S3TestSettings
  }
}

/**
 * One PostgreSQL for the whole run: TEST_DATABASE_URL when set (as CI and production use), else
 * an embedded one in a temporary directory. A template database is migrated once, pg-boss schema
 * included; every test file clones it (see helpers/database.ts).
 */
export default async function setup(project: TestProject) {
  const logger = createLogger('warn')
  let adminUrl = process.env.TEST_DATABASE_URL
  let stopEmbedded: (() => Promise<void>) | undefined
  let dataDir: string | undefined
  if (!adminUrl) {
    dataDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-pg-'))
    // mkdtemp makes a private directory; Postgres may run as another user (see embedded-postgres.ts).
    await chmod(dataDir, 0o755)
    const embedded = await startEmbeddedPostgres({
      dir: path.join(dataDir, 'postgres'),
      port: 0,
      database: 'postgres',
      logger,
    })
    const { user, password, host, port } = embedded.connection
    adminUrl = `postgres://${user}:${encodeURIComponent(String(password))}@${host}:${port}/postgres`
    stopEmbedded = () => embedded.stop()
  }
  await createTemplate(adminUrl)
  project.provide('adminDatabaseUrl', adminUrl)

  const s3 = await s3TestSettings()
  project.provide('s3', s3.settings)

  return async () => {
    await s3.stop?.()
    await stopEmbedded?.()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  }
}

async function s3TestSettings(): Promise<{ settings: S3TestSettings; stop?: () => Promise<void> }> {
  const { S3_TEST_ENDPOINT: endpoint } = process.env
  if (endpoint) {
    return {
      settings: {
        endpoint,
        region: process.env.S3_TEST_REGION ?? 'us-east-1',
        accessKeyId: process.env.S3_TEST_ACCESS_KEY_ID ?? 'minioadmin',
        secretAccessKey: process.env.S3_TEST_SECRET_ACCESS_KEY ?? 'minioadmin',
        forcePathStyle: process.env.S3_TEST_FORCE_PATH_STYLE !== 'false',
      },
    }
  }
  const server = await startS3TestServer()
  return {
    settings: {
      endpoint: server.endpoint,
      region: 'us-east-1',
      accessKeyId: 'tusbox-test',
      secretAccessKey: 'tusbox-test-secret',
      forcePathStyle: true,
    },
    stop: () => server.stop(),
  }
}

async function createTemplate(adminUrl: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE_DATABASE} WITH (FORCE)`)
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`)
  } finally {
    await admin.end()
  }
  const templateUrl = withDatabase(adminUrl, TEMPLATE_DATABASE)
  const knex = createKnex(templateUrl)
  try {
    await migrateLatest(knex)
  } finally {
    await knex.destroy()
  }
  const boss = new PgBoss({ connectionString: templateUrl, max: 2 })
  await boss.start()
  await boss.stop({ graceful: false, close: true })
}
