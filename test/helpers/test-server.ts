import type { AddressInfo } from 'node:net'
import type { HttpBindings } from '@hono/node-server'
import type { Knex } from 'knex'
import { type Config, loadConfig } from '../../src/config.ts'
import { buildContainer, type Container, openDatabase } from '../../src/container.ts'
import { createHttpServer, type HttpLimits } from '../../src/http/server.ts'
import { createLogger, type Logger } from '../../src/lib/logger.ts'
import { createTestDatabase } from './database.ts'
import { TEST_STORES, type TestStore } from './stores.ts'

export interface TestServer {
  /** Base URL, e.g. http://127.0.0.1:39211 */
  readonly url: string
  readonly tusEndpoint: string
  readonly config: Config
  /** The settings it runs with: what another tusbox process needs to share its database and store. */
  readonly settings: Record<string, string>
  readonly container: Container
  readonly knex: Knex
  /** Everything in the store (see OpenedStore.contents). */
  storedFiles(): Promise<string[]>
  close(): Promise<void>
}

export interface TestServerOptions {
  readonly workers?: boolean
  readonly httpLimits?: HttpLimits
  /**
   * Another instance on this server's database and store, as a second `tusbox serve` would be:
   * a container of its own (locker session, in-memory state), closed without removing either.
   */
  readonly sharing?: TestServer
  readonly logger?: Logger
}

/**
 * The real server (Postgres, pg-boss, the store, Hono on the node:http server `tusbox serve`
 * uses, with its limits) on 127.0.0.1 and a free port, with a database and a store of its own.
 * `httpLimits` replaces those limits, so that timeouts can be tested in milliseconds; `logger`
 * receives its log instead of the silent default.
 */
export async function startTestServer(
  env: Record<string, string> = {},
  store: TestStore = TEST_STORES[0] as TestStore,
  options: TestServerOptions = {},
): Promise<TestServer> {
  // The HTTP server needs its logger before the config can name the port: same level, read early.
  const logger =
    options.logger ?? createLogger(loadConfig({ LOG_LEVEL: 'silent', ...env }).logLevel)
  // Listen first, so PUBLIC_URL (used in Location and in events) can name the real port.
  let fetchHandler: (request: Request, env: HttpBindings) => Response | Promise<Response> = () =>
    new Response('starting', { status: 503 })
  const server = createHttpServer((request, env) => fetchHandler(request, env), {
    hostname: '127.0.0.1',
    logger,
    ...(options.httpLimits ? { limits: options.httpLimits } : {}),
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const origin = options.sharing
    ? borrowedFrom(options.sharing)
    : await openDatabaseAndStore(store, env)
  const settings = { ...origin.settings, ...env }
  const config = loadConfig({ PUBLIC_URL: url, LOG_LEVEL: 'silent', ...settings })
  const databaseConnection = await openDatabase(config, logger)
  const container = await buildContainer(config, logger, databaseConnection)
  fetchHandler = container.app.fetch
  if (options.workers) await container.startWorkers()
  return {
    url,
    tusEndpoint: `${url}/files`,
    config,
    settings,
    container,
    knex: databaseConnection.knex,
    storedFiles: () => origin.storedFiles(),
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      await container.close()
      await databaseConnection.close()
      await origin.release()
    },
  }
}

/** Where a test server's database and store come from, and what closing it leaves of them. */
interface Origin {
  readonly settings: Record<string, string>
  storedFiles(): Promise<string[]>
  release(): Promise<void>
}

/** A database and a store of the test server's own, removed when it closes. */
async function openDatabaseAndStore(
  store: TestStore,
  env: Record<string, string>,
): Promise<Origin> {
  const database = await createTestDatabase()
  const opened = await store.open(env)
  return {
    // A test database is a DATABASE_URL, where AUTH_MODE=none must be allowed explicitly.
    settings: { DATABASE_URL: database.url, AUTH_ALLOW_ANONYMOUS: 'true', ...opened.env },
    storedFiles: () => opened.contents(),
    async release() {
      await database.drop()
      await opened.close()
    },
  }
}

/** Another server's database and store, left to it. */
function borrowedFrom(server: TestServer): Origin {
  return {
    settings: server.settings,
    storedFiles: () => server.storedFiles(),
    release: async () => undefined,
  }
}
