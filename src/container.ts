import type { Knex } from 'knex'
import type { PgBoss } from 'pg-boss'
import { createAuthenticate } from './auth/authenticate.ts'
import type { Config } from './config.ts'
import { startEmbeddedPostgres } from './db/embedded-postgres.ts'
import { type ConnectionSettings, createKnex, transactionRunner } from './db/knex.ts'
import { migrateLatest } from './db/migrate.ts'
import { checkDatabaseReachable } from './db/reachability.ts'
import { createApp, createWorkerApp } from './http/app.ts'
import { anonymousHostNames } from './http/host-check.ts'
import { presentFile } from './http/presenters.ts'
import { bossJobQueue, bossTopics, createBoss, queueStats, startBoss } from './jobs/boss.ts'
import { outboxDeliverHandler } from './jobs/handlers/outbox-deliver.ts'
import { outboxSweepHandler } from './jobs/handlers/outbox-sweep.ts'
import { uploadsPurgeHandler } from './jobs/handlers/uploads-purge.ts'
import { uploadsRepairHandler } from './jobs/handlers/uploads-repair.ts'
import { JOB_NAMES } from './jobs/names.ts'
import { type JobHandlers, startWorkers } from './jobs/worker.ts'
import { corsPolicy } from './lib/cors-policy.ts'
import type { Logger } from './lib/logger.ts'
import {
  countPurges,
  FinishObservingUploadRepository,
  measureFinish,
} from './metrics/instrument.ts'
import { Metrics } from './metrics/metrics.ts'
import { OutboxOperations } from './outbox/operations.ts'
import { OutboxRepository } from './outbox/outbox.repository.ts'
import { createRufhHandler } from './rufh/rufh-handler.ts'
import { BufferBudget } from './tus/buffer-budget.ts'
import {
  createDatastore,
  type Datastore,
  scopedLocker,
  withinRequest,
} from './tus/datastore/index.ts'
import { PgLocker } from './tus/pg-locker.ts'
import { createTusHandler, TUS_PATH } from './tus/tus-server.ts'
import { BatchRepository } from './uploads/batch.repository.ts'
import { BatchService } from './uploads/batch.service.ts'
import {
  createFinishUpload,
  createScreenUpload,
  type FinishUpload,
} from './uploads/finish-upload.ts'
import { UploadRepository } from './uploads/upload.repository.ts'
import { UploadService } from './uploads/upload.service.ts'

export const EMBEDDED_DATABASE_NAME = 'tusbox'

/** A started database: where it is, and how to stop it when tusbox started it. */
export interface Database {
  readonly connection: ConnectionSettings
  readonly knex: Knex
  close(): Promise<void>
}

export interface Container {
  readonly database: Database
  readonly boss: PgBoss
  readonly app: ReturnType<typeof createApp>
  /** /metrics and /healthz alone, for `tusbox worker` on WORKER_METRICS_PORT. */
  readonly workerApp: ReturnType<typeof createWorkerApp>
  readonly metrics: Metrics
  readonly datastore: Datastore
  readonly uploads: UploadService
  readonly finishUpload: FinishUpload
  /** The job handlers, callable directly (tusbox purge, tests) as well as by pg-boss. */
  readonly handlers: JobHandlers
  readonly operations: OutboxOperations
  /** Makes this process a worker: it takes jobs from every queue and runs the schedules. */
  startWorkers(): Promise<void>
  /** Stops what start-up started, newest first; the HTTP server must already be closed. */
  close(): Promise<void>
}

/** Starts PostgreSQL when tusbox owns it (no DATABASE_URL), connects, and migrates. */
export async function openDatabase(config: Config, logger: Logger): Promise<Database> {
  if (config.database.kind === 'external') {
    await checkDatabaseReachable(config.database.url)
    const knex = createKnex(config.database.url, logger)
    await migrateOrClose(knex)
    return { connection: config.database.url, knex, close: () => knex.destroy() }
  }
  const embedded = await startEmbeddedPostgres({
    dir: config.database.dir,
    port: config.database.port,
    database: EMBEDDED_DATABASE_NAME,
    logger,
  })
  const knex = createKnex(embedded.connection, logger)
  try {
    await migrateLatest(knex)
  } catch (error) {
    await knex.destroy()
    await embedded.stop()
    throw error
  }
  return {
    connection: embedded.connection,
    knex,
    async close() {
      await knex.destroy()
      await embedded.stop()
    },
  }
}

async function migrateOrClose(knex: Knex): Promise<void> {
  try {
    await migrateLatest(knex)
  } catch (error) {
    await knex.destroy()
    throw error
  }
}

/**
 * /readyz shows the reason to anyone who asks: the error code (ECONNREFUSED, a SQLSTATE), not
 * the driver's message, which can name hosts, ports and users.
 */
async function checkDatabase(knex: Knex): Promise<void> {
  try {
    await knex.raw('SELECT 1')
  } catch (error) {
    throw new Error(`PostgreSQL does not answer (${(error as { code?: string }).code ?? 'error'})`)
  }
}

/** The one composition root: every module gets its dependencies here and nowhere else. */
export async function buildContainer(
  config: Config,
  logger: Logger,
  database: Database,
): Promise<Container> {
  const { knex } = database
  const boss = createBoss(database.connection, logger)
  await startBoss(boss)
  const transactions = transactionRunner(knex)
  const jobs = bossJobQueue(boss)
  const uploadRepository = new UploadRepository(knex)
  const batchRepository = new BatchRepository(knex)
  const outboxRepository = new OutboxRepository(knex)
  const metrics = new Metrics({
    queries: {
      uploadsInProgress: () => uploadRepository.countUploading(),
      pendingEvents: () => outboxRepository.pendingSummary(),
    },
    logger,
    queues: JOB_NAMES,
  })
  // Counted where the store reads them, in the pass that hashes them: no stream of its own.
  const datastore = await createDatastore(config.storage, {
    onBytesWritten: (bytes) => metrics.bytesReceived(bytes),
    logger,
  })
  const publicUrl = config.http.publicUrl
  const policy = {
    minSize: config.uploads.minSize,
    maxSize: config.uploads.maxSize,
    allowedTypes: config.uploads.allowedTypes,
    storedTtlMs: config.uploads.storedTtlMs,
  }
  // Timed and counted here, around the step, so the step itself knows nothing of metrics.
  const finishObserver = new FinishObservingUploadRepository(knex)
  const finishDeps = {
    uploads: finishObserver,
    batches: batchRepository,
    outbox: outboxRepository,
    jobs,
    storage: datastore.storage,
    digests: datastore.digests,
    transactions,
    policy,
    publicUrl,
    logger,
  }
  const finishUpload = measureFinish(createFinishUpload(finishDeps), finishObserver, metrics)
  const screenUpload = measureFinish(createScreenUpload(finishDeps), finishObserver, metrics)
  const uploads = new UploadService({
    uploads: uploadRepository,
    batches: batchRepository,
    outbox: outboxRepository,
    jobs,
    transactions,
    publicUrl,
    storage: datastore.storage,
    finishUpload,
    policy: { ...policy, expirationMs: config.uploads.expirationMs },
    ownerLimits: config.ownerLimits,
    storageKeyPrefix: config.storage.backend === 's3' ? config.storage.keyPrefix : '',
    logger,
  })
  const cors = corsPolicy(config.corsAllowedOrigins)
  const operations = new OutboxOperations(outboxRepository, jobs, () => queueStats(boss))
  // Connects on the first tus request, so a worker-only process never opens its session.
  // Hearing of requests on other instances, it drops digests that may no longer match the bytes.
  const locker = new PgLocker({
    connection: database.connection,
    logger,
    watcher: datastore.digests,
  })
  // What the store learns of an upload within a request holds while that request holds its lock.
  const uploadLocks = scopedLocker(locker)
  const tus = createTusHandler({
    datastore,
    locker: uploadLocks,
    uploads,
    finishUpload,
    screenUpload,
    maxSize: config.uploads.maxSize,
    checksumTempDir: config.uploads.checksumTempDir,
    checksumBudget: new BufferBudget(config.uploads.checksumBuffer),
    checksumRateFloor: config.uploads.checksumRateFloor,
    publicUrl: config.http.publicUrlExplicit ? config.http.publicUrl : undefined,
    cors,
    logger,
    metrics,
  })
  const rufh = createRufhHandler({
    path: TUS_PATH,
    writer: datastore.writer,
    storage: datastore.storage,
    locker: uploadLocks,
    uploads,
    finishUpload,
    screenUpload,
    presentFile,
    maxSize: config.uploads.maxSize,
    expirationMs: config.uploads.expirationMs,
    publicUrl: config.http.publicUrlExplicit ? config.http.publicUrl : undefined,
    logger,
    metrics,
  })
  const authenticate = createAuthenticate(config.auth)
  const readiness = [
    { name: 'database', check: () => checkDatabase(knex) },
    { name: 'storage', check: () => datastore.storage.checkReady() },
  ]
  const app = createApp({
    // One scope per request on the upload endpoint: the store reads each upload's state once.
    tus: (request, principal) => withinRequest(request, () => tus(request, principal)),
    rufh: (request, principal, sendInterim) =>
      withinRequest(request, () => rufh(request, principal, sendInterim)),
    authenticate,
    demoPage: config.http.demoPage,
    hostNames: config.auth.mode === 'none' ? anonymousHostNames(config.http) : undefined,
    cors,
    uploads,
    batches: new BatchService({
      batches: batchRepository,
      uploads: uploadRepository,
      outbox: outboxRepository,
      jobs,
      transactions,
      publicUrl,
      maxOpenBatchesPerOwner: config.ownerLimits.maxOpenBatches,
    }),
    operations,
    readiness,
    metrics,
    logger,
  })
  const handlers: JobHandlers = {
    'outbox.deliver': outboxDeliverHandler({
      outbox: outboxRepository,
      topics: bossTopics(boss),
      policy: config.outbox,
      jobs,
      logger,
      metrics,
    }),
    'outbox.sweep': outboxSweepHandler({ outbox: outboxRepository, jobs, logger }),
    'uploads.purge': countPurges(
      uploadsPurgeHandler({
        uploads: uploadRepository,
        outbox: outboxRepository,
        jobs,
        storage: datastore.storage,
        transactions,
        batchSize: config.jobs.purgeBatchSize,
        failedRetentionMs: config.jobs.failedRetentionMs,
        logger,
      }),
      metrics,
    ),
    'uploads.repair': uploadsRepairHandler({
      uploads: uploadRepository,
      batches: batchRepository,
      outbox: outboxRepository,
      jobs,
      transactions,
      publicUrl,
      storage: datastore.storage,
      finishUpload,
      batchSize: config.jobs.purgeBatchSize,
      logger,
    }),
  }
  return {
    database,
    boss,
    app,
    workerApp: createWorkerApp({ authenticate, readiness, metrics, logger }),
    metrics,
    datastore,
    uploads,
    finishUpload,
    handlers,
    operations,
    startWorkers: () => startWorkers(boss, handlers, config.jobs, logger, metrics),
    async close() {
      try {
        await locker.close()
      } finally {
        // graceful: running jobs finish (a delivery in flight is recorded) before pg-boss closes.
        await boss.stop({ graceful: true, close: true, timeout: 30_000 })
      }
    },
  }
}
