import { mkdtemp, readdir, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { serve } from '@hono/node-server'
import type { Knex } from 'knex'
import { type Config, loadConfig } from '../../src/config.ts'
import { buildContainer, type Container, openDatabase } from '../../src/container.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { createTestDatabase, type TestDatabase } from './database.ts'

export interface TestServer {
  /** Base URL, e.g. http://127.0.0.1:39211 */
  readonly url: string
  readonly tusEndpoint: string
  readonly config: Config
  readonly container: Container
  readonly knex: Knex
  readonly storageDir: string
  /** Every regular file under the store's directory, relative to it. */
  storedFiles(): Promise<string[]>
  close(): Promise<void>
}

/**
 * The real server (Postgres, pg-boss, the store, Hono on node:http) on 127.0.0.1 and a free
 * port, with a database and a store directory of its own.
 */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  // Listen first, so PUBLIC_URL (used in Location and in events) can name the real port.
  let fetchHandler: (request: Request) => Response | Promise<Response> = () =>
    new Response('starting', { status: 503 })
  const server = serve({
    fetch: (request) => fetchHandler(request),
    hostname: '127.0.0.1',
    port: 0,
  })
  await new Promise<void>((resolve) => server.once('listening', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const database = await createTestDatabase()
  const storageDir = await mkdtemp(path.join(tmpdir(), 'tusbox-test-files-'))
  const config = loadConfig({
    DATABASE_URL: database.url,
    FILE_STORE_DIR: storageDir,
    PUBLIC_URL: url,
    LOG_LEVEL: 'silent',
    ...env,
  })
  const logger = createLogger(config.logLevel)
  const opened = await openDatabase(config, logger)
  const container = await buildContainer(config, logger, opened)
  fetchHandler = container.app.fetch
  return {
    url,
    tusEndpoint: `${url}/files`,
    config,
    container,
    knex: opened.knex,
    storageDir,
    storedFiles: () => listFiles(storageDir),
    close: () => closeAll(server, container, opened.close, database, storageDir),
  }
}

async function closeAll(
  server: ReturnType<typeof serve>,
  container: Container,
  closeDatabase: () => Promise<void>,
  database: TestDatabase,
  storageDir: string,
): Promise<void> {
  await new Promise<void>((resolve) => {
    server.close(() => resolve())
    if ('closeAllConnections' in server) server.closeAllConnections()
  })
  await container.close()
  await closeDatabase()
  await database.drop()
  await rm(storageDir, { recursive: true, force: true })
}

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
    .sort()
}
