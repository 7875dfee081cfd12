import { type Config, checkAnonymousServing, loadConfig } from '../config.ts'
import { buildContainer, type Container, type Database, openDatabase } from '../container.ts'
import type { ConnectionSettings } from '../db/knex.ts'
import { startHttpServer } from '../http/server.ts'
import type { Logger } from '../lib/logger.ts'
import { Lifecycle } from '../lib/shutdown.ts'

/** A scrape in flight at shutdown is short; the worker's jobs are what needs the time. */
const METRICS_GRACE_PERIOD_MS = 1_000

/** What a long-running command starts: the HTTP API, the workers, or both in one process. */
export interface Roles {
  readonly http: boolean
  readonly worker: boolean
}

/**
 * Starts the roles and stays up until SIGINT/SIGTERM. On any start-up failure, everything
 * already started is stopped again, the embedded PostgreSQL included.
 */
export async function runRoles(roles: Roles, logger: Logger): Promise<void> {
  const config = loadConfig()
  if (roles.http) checkAnonymousServing(config)
  const lifecycle = new Lifecycle(logger)
  lifecycle.exitOnSignals()
  try {
    const { database, container } = await startContainer(config, logger, lifecycle)
    if (roles.worker) {
      await container.startWorkers()
      logger.info('tusbox worker is running', { concurrency: config.jobs.concurrency })
    }
    // With the API in the same process, its /metrics already shows the worker's counters.
    if (roles.worker && !roles.http && config.metrics.workerPort !== undefined) {
      const server = await startHttpServer({
        fetch: container.workerApp.fetch,
        hostname: config.http.host,
        port: config.metrics.workerPort,
        portSetting: 'WORKER_METRICS_PORT',
        logger,
      })
      await lifecycle.started('metrics server', () => server.close(METRICS_GRACE_PERIOD_MS))
      logger.info('tusbox worker serves its metrics', {
        url: `http://${config.http.host}:${server.port}/metrics`,
      })
    }
    if (roles.http) {
      if (config.auth.mode === 'none') {
        logger.warn(
          'AUTH_MODE=none: no tokens are checked and every client can read and delete every upload; set AUTH_MODE=jwt for anything but local use',
        )
      }
      const server = await startHttpServer({
        fetch: container.app.fetch,
        hostname: config.http.host,
        port: config.http.port,
        logger,
      })
      await lifecycle.started('http server', () => server.close(config.http.shutdownGracePeriodMs))
      const { port } = server
      logger.info('tusbox is listening', {
        url: `http://${config.http.host}:${port}`,
        tusEndpoint: `http://${config.http.host}:${port}/files`,
        database: describeDatabase(database.connection),
      })
    }
  } catch (error) {
    await lifecycle.stop()
    throw error
  }
}

/** For one-shot commands: the container, handed to `work`, then everything stopped. */
export async function withContainer<T>(
  logger: Logger,
  work: (container: Container) => Promise<T>,
): Promise<T> {
  const lifecycle = new Lifecycle(logger)
  try {
    const { container } = await startContainer(loadConfig(), logger, lifecycle)
    return await work(container)
  } finally {
    await lifecycle.stop()
  }
}

async function startContainer(config: Config, logger: Logger, lifecycle: Lifecycle) {
  const database: Database = await openDatabase(config, logger)
  await lifecycle.started('database', () => database.close())
  const container = await buildContainer(config, logger, database)
  await lifecycle.started('jobs', () => container.close())
  return { database, container }
}

/** Where the data lives, without the password: enough to connect with psql. */
function describeDatabase(connection: ConnectionSettings): string {
  if (typeof connection === 'string') {
    const url = new URL(connection)
    url.password = ''
    return url.toString()
  }
  return `postgres://${connection.user}@${connection.host}:${connection.port}/${connection.database} (embedded; password in EMBEDDED_POSTGRES_DIR/tusbox-password)`
}
