import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { serve } from '@hono/node-server'
import { ConfigError, loadConfig } from './config.ts'
import { buildContainer, openDatabase } from './container.ts'
import type { ConnectionSettings } from './db/knex.ts'
import { createBoss, startBoss } from './jobs/boss.ts'
import { createLogger, type Logger } from './lib/logger.ts'
import { Lifecycle } from './lib/shutdown.ts'

const HELP = `tusbox: a resumable upload server (tus 1.0.0) with Postgres records and outbox events

Usage: tusbox <command> [options]

Commands:
  serve      Start the HTTP server: tus at /files, the JSON API at /api
  worker     Start a background worker (pg-boss); run any number, on any machine
  migrate    Apply pending database migrations and exit
  help       Show this help

Options:
  -h, --help     Show this help
  -v, --version  Show the version
  --env F        Read settings from F (default: .env when it exists)

Settings come from the environment; see .env.example for every variable and its default.
Without DATABASE_URL, tusbox runs its own PostgreSQL with data in ./.data/postgres.
`

const COMMANDS: Record<string, (logger: Logger) => Promise<void>> = {
  serve: serveCommand,
  worker: workerCommand,
  migrate: migrateCommand,
}

export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      // Not --env-file: Node itself claims that flag anywhere on the command line.
      env: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  })
  const [command = 'help'] = positionals
  if (values.version) {
    process.stdout.write(`tusbox ${await packageVersion()}\n`)
    return 0
  }
  if (values.help || command === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  const run = COMMANDS[command]
  if (!run) {
    process.stderr.write(`Unknown command "${command}".\n\n${HELP}`)
    return 2
  }
  loadEnvFile(values.env)
  const logger = createLogger(logLevelFromEnv())
  await run(logger)
  return 0
}

async function packageVersion(): Promise<string> {
  const manifest = await readFile(new URL('../package.json', import.meta.url), 'utf8')
  return (JSON.parse(manifest) as { version: string }).version
}

function loadEnvFile(explicit: string | undefined): void {
  if (explicit !== undefined && !existsSync(explicit)) {
    throw new Error(`--env ${explicit}: no such file.`)
  }
  const file = explicit ?? '.env'
  if (existsSync(file)) process.loadEnvFile(file)
}

/** The logger exists before the config is validated, so a bad LOG_LEVEL still gets reported. */
function logLevelFromEnv() {
  const level = process.env.LOG_LEVEL
  return level === 'debug' || level === 'warn' || level === 'error' || level === 'silent'
    ? level
    : 'info'
}

async function serveCommand(logger: Logger): Promise<void> {
  const config = loadConfig()
  const lifecycle = new Lifecycle(logger)
  lifecycle.exitOnSignals()
  try {
    const database = await openDatabase(config, logger)
    await lifecycle.started('database', () => database.close())
    const container = await buildContainer(config, logger, database)
    await lifecycle.started('jobs', () => container.close())
    const server = await listen(container.app.fetch, config.http.host, config.http.port)
    await lifecycle.started('http server', () => closeServer(server))
    const { port } = server.address() as AddressInfo
    logger.info('tusbox is listening', {
      url: `http://${config.http.host}:${port}`,
      tusEndpoint: `http://${config.http.host}:${port}/files`,
      database: describeDatabase(database.connection),
    })
  } catch (error) {
    await lifecycle.stop()
    throw error
  }
}

type Server = ReturnType<typeof serve>

async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  hostname: string,
  port: number,
) {
  const server = serve({ fetch, hostname, port })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new Error(
              `${hostname}:${port} is already in use: stop what listens there, or set PORT.`,
            )
          : error,
      ),
    )
  })
  return server
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    if ('closeIdleConnections' in server) server.closeIdleConnections()
  })
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

/**
 * Connects pg-boss and creates its queues. The job handlers (outbox delivery, purge, repair)
 * register here as they are built; until then a worker only keeps pg-boss maintained.
 */
async function workerCommand(logger: Logger): Promise<void> {
  const config = loadConfig()
  const lifecycle = new Lifecycle(logger)
  lifecycle.exitOnSignals()
  try {
    const database = await openDatabase(config, logger)
    await lifecycle.started('database', () => database.close())
    const boss = createBoss(database.connection, logger)
    await startBoss(boss)
    await lifecycle.started('jobs', () => boss.stop({ graceful: true, close: true }))
    logger.info('tusbox worker is running', { database: describeDatabase(database.connection) })
  } catch (error) {
    await lifecycle.stop()
    throw error
  }
}

async function migrateCommand(logger: Logger): Promise<void> {
  const config = loadConfig()
  const database = await openDatabase(config, logger)
  await database.close()
  logger.info('migrations are up to date')
}

export function reportFatal(error: unknown): void {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
  } else if (error instanceof Error) {
    process.stderr.write(`tusbox: ${error.message}\n`)
    if (process.env.LOG_LEVEL === 'debug') process.stderr.write(`${error.stack}\n`)
  } else {
    process.stderr.write(`tusbox: ${String(error)}\n`)
  }
}
