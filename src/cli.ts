import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import {
  checkConfig,
  jobStats,
  migrate,
  outboxRedrive,
  outboxStats,
  purgeNow,
} from './commands/operations.ts'
import { runRoles } from './commands/run.ts'
import { ConfigError } from './config.ts'
import { createLogger, flushLogs, type LogFormat, type Logger } from './lib/logger.ts'
import { VERSION } from './lib/version.ts'

const HELP = `tusbox: a resumable upload server (tus 1.0.0 and RUFH) with Postgres records and outbox events

Usage: tusbox <command> [options]

Commands:
  start                      The HTTP server and a worker in one process (npm start)
  serve                      The HTTP server only: tus and RUFH at /files, the JSON API at /api
  worker                     A background worker: event delivery, purge, repair; run any
                             number of them, on any machine
  purge                      Purge expired uploads, outlived files and old failures now
  outbox stats               Pending, delivered and dead events; age of the oldest pending
  outbox redrive --dead      Deliver every dead event again
  outbox redrive <event id>  Deliver one dead event again
  jobs                       Queue sizes and failures of the background jobs
  migrate                    Apply pending database migrations and exit
  check-config               Validate the settings as serve does, start nothing, and exit
  upload <file|dir>...       Upload files to a tusbox server (a client: resumes, shows
                             progress, prints each file's id, status and sha256);
                             "tusbox upload --help" lists its options:
                             --endpoint URL, --token TOKEN, --chunk-size SIZE,
                             --parallel N, --batch, --json, --quiet
  help                       Show this help

Options:
  -h, --help     Show this help
  -v, --version  Show the version
  --env F        Read settings from F (default: .env when it exists)

Settings come from the environment; see .env.example for every variable and its default.
Without DATABASE_URL, tusbox runs its own PostgreSQL with data in ./.data/postgres.
`

type Command = (logger: Logger, args: { positionals: string[]; dead: boolean }) => Promise<number>

const COMMANDS: Record<string, Command> = {
  start: (logger) => runRoles({ http: true, worker: true }, logger).then(() => 0),
  serve: (logger) => runRoles({ http: true, worker: false }, logger).then(() => 0),
  worker: (logger) => runRoles({ http: false, worker: true }, logger).then(() => 0),
  purge: (logger) => purgeNow(logger),
  jobs: (logger) => jobStats(logger),
  migrate: (logger) => migrate(logger),
  'check-config': () => checkConfig(),
  outbox: (logger, { positionals, dead }) => {
    const [action, eventId] = positionals
    if (action === 'stats') return outboxStats(logger)
    if (action === 'redrive' && dead && !eventId) return outboxRedrive(logger, { allDead: true })
    if (action === 'redrive' && !dead && eventId) return outboxRedrive(logger, { eventId })
    throw new UsageError(
      'Use "tusbox outbox stats", "tusbox outbox redrive --dead" or "tusbox outbox redrive <event id>".',
    )
  },
}

class UsageError extends Error {}

export async function main(argv: readonly string[]): Promise<number> {
  // A client, not a server command: its own options, and no server settings (.env) to load.
  // Loaded only here, so that servers never hold tus-js-client in memory.
  if (argv[0] === 'upload') {
    const { uploadCommand } = await import('./commands/upload.ts')
    return uploadCommand(argv.slice(1))
  }
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
      dead: { type: 'boolean' },
      // Not --env-file: Node itself claims that flag anywhere on the command line.
      env: { type: 'string' },
    },
    allowPositionals: true,
    strict: true,
  })
  const [command = 'help', ...rest] = positionals
  if (values.version) {
    process.stdout.write(`tusbox ${VERSION}\n`)
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
  const logger = createLogger(logLevelFromEnv(), { format: logFormatFromEnv() })
  try {
    return await run(logger, { positionals: rest, dead: values.dead ?? false })
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    flushLogs()
    process.stderr.write(`${error.message}\n`)
    return 2
  }
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

/** LOG_FORMAT when it is valid; the config reports it otherwise. */
function logFormatFromEnv(): LogFormat | undefined {
  const format = process.env.LOG_FORMAT
  return format === 'json' || format === 'pretty' ? format : undefined
}

export function reportFatal(error: unknown): void {
  flushLogs()
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`)
  } else if (error instanceof Error) {
    process.stderr.write(`tusbox: ${error.message}\n`)
    if (process.env.LOG_LEVEL === 'debug') process.stderr.write(`${error.stack}\n`)
  } else {
    process.stderr.write(`tusbox: ${String(error)}\n`)
  }
}
