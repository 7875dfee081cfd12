import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { serve } from '@hono/node-server'
import { ConfigError, loadConfig } from './config.ts'
import { buildContainer, openDatabase } from './container.ts'
import { createLogger, type Logger } from './lib/logger.ts'
import { onShutdownSignal } from './lib/shutdown.ts'

const HELP = `tusbox: a resumable upload server (tus 1.0.0) with Postgres records and outbox events

Usage: tusbox <command> [options]

Commands:
  serve      Start the HTTP server: tus at /files, the JSON API at /api
  migrate    Apply pending database migrations and exit
  help       Show this help

Options:
  -h, --help     Show this help
  --env-file F   Read settings from F (default: .env when it exists)

Settings come from the environment; see .env.example for every variable and its default.
Without DATABASE_URL, tusbox runs its own PostgreSQL with data in ./.data/postgres.
`

const COMMANDS: Record<string, (logger: Logger) => Promise<void>> = {
  serve: serveCommand,
  migrate: migrateCommand,
}

export async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: { help: { type: 'boolean', short: 'h' }, 'env-file': { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [command = 'help'] = positionals
  if (values.help || command === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  const run = COMMANDS[command]
  if (!run) {
    process.stderr.write(`Unknown command "${command}".\n\n${HELP}`)
    return 2
  }
  loadEnvFile(values['env-file'])
  const logger = createLogger(logLevelFromEnv())
  await run(logger)
  return 0
}

function loadEnvFile(explicit: string | undefined): void {
  const file = explicit ?? '.env'
  if (explicit !== undefined || existsSync(file)) process.loadEnvFile(file)
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
  const database = await openDatabase(config, logger)
  const container = await buildContainer(config, logger, database).catch(async (error) => {
    await database.close()
    throw error
  })
  const server = serve({
    fetch: container.app.fetch,
    hostname: config.http.host,
    port: config.http.port,
  })
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  logger.info('tusbox is listening', {
    url: `http://${config.http.host}:${port}`,
    tusEndpoint: `http://${config.http.host}:${port}/files`,
    database: config.database.kind,
  })
  onShutdownSignal(logger, () => [
    {
      name: 'http server',
      run: () =>
        new Promise<void>((resolve, reject) => {
          server.close((error) => (error ? reject(error) : resolve()))
          if ('closeIdleConnections' in server) server.closeIdleConnections()
        }),
    },
    { name: 'jobs', run: () => container.close() },
    { name: 'database', run: () => database.close() },
  ])
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
