import { parseArgs } from 'node:util'
import { apiBaseFor } from '../client/api.ts'
import {
  type CollectedFiles,
  collectFiles,
  type SkipReason,
  UnusablePathError,
} from '../client/local-files.ts'
import type { ProgressMode } from '../client/progress.ts'
import { configDirectory } from '../client/resume-store.ts'
import { formatBytes, parseByteSize } from '../client/units.ts'
import {
  FINAL_STATUSES,
  type FileOutcome,
  runUpload,
  type UploadRunResult,
} from '../client/upload-run.ts'

const DEFAULT_ENDPOINT = 'http://127.0.0.1:1080/files'
const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024
/** A bare "8" is surely meant as 8 MiB, not 8 bytes: sizes under this are refused. */
const MIN_CHUNK_SIZE = 1024
/** Two or three requests in flight use a link well; more mostly adds contention on the server. */
const DEFAULT_PARALLEL = 3
const MAX_PARALLEL = 16

export const UPLOAD_HELP = `Usage: tusbox upload [options] <file|dir>...

Uploads files to a tusbox server over tus, resuming interrupted uploads, and prints each file's
id, status and sha256 once the server has stored it.

Options:
  --endpoint URL     The tus endpoint (default: $TUSBOX_ENDPOINT, else
                     http://127.0.0.1:1080/files); the API is found beside it (…/api)
  --token TOKEN      Sent as "Authorization: Bearer TOKEN" with every request
                     (default: $TUSBOX_TOKEN, which keeps it out of the process list)
  --chunk-size SIZE  Bytes per PATCH request: 8MiB (default), 512KiB, 1GiB, 10MB
  --parallel N       Files sent at once, 1-${MAX_PARALLEL} (default ${DEFAULT_PARALLEL})
  --batch            Put every file in one batch, and complete the batch once all are sent
  --json             Print the results as one JSON document on stdout
  -q, --quiet        No progress on stderr
  -h, --help         Show this help

Directories are uploaded with their files, recursively; hidden entries and symlinks inside them
are skipped (name a file to upload it anyway). Interrupted uploads resume on the next run of the
same files; their state is kept in $TUSBOX_CONFIG_DIR, else $XDG_CONFIG_HOME/tusbox, else
~/.config/tusbox.

Exit status: 0 every file stored; 1 some file not stored, or the endpoint unreachable; 2 usage
error; 130 interrupted (Ctrl-C), 143 stopped by SIGTERM.
`

export const EXIT_NOT_ALL_STORED = 1
export const EXIT_USAGE = 2
const REACHABILITY_TIMEOUT_MS = 10_000
const EXIT_BY_SIGNAL: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 }

class UsageError extends Error {}

/** `tusbox upload …`: returns the exit status. */
export async function uploadCommand(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let settings: Settings
  let collected: CollectedFiles
  try {
    const parsed = parseSettings(argv, env)
    if (parsed === 'help') {
      process.stdout.write(UPLOAD_HELP)
      return 0
    }
    settings = parsed
    collected = await collectFiles(settings.paths)
    if (collected.files.length === 0) {
      throw new UsageError(`No files to upload in ${settings.paths.join(', ')}.`)
    }
  } catch (error) {
    if (!(error instanceof UsageError || error instanceof UnusablePathError)) throw error
    process.stderr.write(
      `tusbox upload: ${error.message}\nRun "tusbox upload --help" for the options.\n`,
    )
    return EXIT_USAGE
  }

  if (settings.progress !== 'quiet') {
    for (const line of skippedLines(collected.skipped)) process.stderr.write(`${line}\n`)
  }

  const unreachable = await reachabilityProblem(settings.endpoint)
  if (unreachable) {
    process.stderr.write(
      `tusbox upload: cannot reach ${settings.endpoint} (${unreachable}); is tusbox running there? Another address: --endpoint URL or TUSBOX_ENDPOINT. Nothing was sent.\n`,
    )
    return EXIT_NOT_ALL_STORED
  }

  const interrupt = new AbortController()
  let signalName = ''
  const onSignal = (name: NodeJS.Signals) => {
    // A second Ctrl-C does not wait for the uploads to wind down.
    if (interrupt.signal.aborted) process.exit(EXIT_BY_SIGNAL[name] ?? 1)
    signalName = name
    interrupt.abort()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  let result: UploadRunResult
  try {
    result = await runUpload(
      {
        files: collected.files,
        endpoint: settings.endpoint,
        apiBase: apiBaseFor(settings.endpoint),
        token: settings.token,
        chunkSize: settings.chunkSize,
        parallel: settings.parallel,
        batch: settings.batch,
        configDir: configDirectory(env),
        progress: settings.progress,
      },
      { stderr: process.stderr, interrupted: interrupt.signal },
    )
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }

  process.stdout.write(
    settings.json
      ? `${JSON.stringify({ endpoint: settings.endpoint, ...result }, null, 2)}\n`
      : formatResults(result),
  )
  // The text results end with these lines already; next to JSON, they go to the person.
  if (settings.json) for (const line of whatToRunAgain(result)) process.stderr.write(`${line}\n`)
  if (result.interrupted) return EXIT_BY_SIGNAL[signalName] ?? EXIT_BY_SIGNAL.SIGINT ?? 130
  return result.files.every((file) => file.status === 'STORED') ? 0 : EXIT_NOT_ALL_STORED
}

interface Settings {
  readonly paths: readonly string[]
  readonly endpoint: string
  readonly token: string | undefined
  readonly chunkSize: number
  readonly parallel: number
  readonly batch: boolean
  readonly json: boolean
  readonly progress: ProgressMode
}

function parseSettings(argv: readonly string[], env: NodeJS.ProcessEnv): Settings | 'help' {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    // parseArgs reports unknown options and missing values as TypeErrors with a usable message.
    throw new UsageError((error as Error).message)
  }
  const { values, positionals } = parsed
  if (values.help) return 'help'
  if (positionals.length === 0) throw new UsageError('Name at least one file or directory.')

  const endpoint = values.endpoint ?? env.TUSBOX_ENDPOINT ?? DEFAULT_ENDPOINT
  if (!isHttpUrl(endpoint)) throw new UsageError(`--endpoint ${endpoint}: not an http(s) URL.`)

  const chunkSize =
    values['chunk-size'] === undefined ? DEFAULT_CHUNK_SIZE : parseByteSize(values['chunk-size'])
  if (chunkSize === undefined || chunkSize < MIN_CHUNK_SIZE) {
    throw new UsageError(
      `--chunk-size ${values['chunk-size']}: give a size of at least 1KiB, such as 8MiB or 512KiB.`,
    )
  }

  const parallel = values.parallel === undefined ? DEFAULT_PARALLEL : Number(values.parallel)
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > MAX_PARALLEL) {
    throw new UsageError(
      `--parallel ${values.parallel}: give a whole number from 1 to ${MAX_PARALLEL}.`,
    )
  }

  return {
    paths: positionals,
    endpoint,
    token: values.token || env.TUSBOX_TOKEN || undefined,
    chunkSize,
    parallel,
    batch: values.batch ?? false,
    json: values.json ?? false,
    progress: values.quiet
      ? 'quiet'
      : process.stderr.isTTY && env.TERM !== 'dumb'
        ? 'tty'
        : 'plain',
  }
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    options: {
      endpoint: { type: 'string' },
      token: { type: 'string' },
      'chunk-size': { type: 'string' },
      parallel: { type: 'string' },
      batch: { type: 'boolean' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
    strict: true,
  })
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text)
    return protocol === 'http:' || protocol === 'https:'
  } catch {
    return false
  }
}

const SKIP_EXPLANATIONS: Readonly<Record<SkipReason, string>> = {
  hidden: 'hidden',
  symlink: 'symlinks, not followed inside directories',
  'not a regular file': 'not regular files',
}
const NAMES_SHOWN = 5

function skippedLines(skipped: CollectedFiles['skipped']): string[] {
  const lines: string[] = []
  for (const reason of Object.keys(SKIP_EXPLANATIONS) as SkipReason[]) {
    const paths = skipped.filter((entry) => entry.reason === reason).map((entry) => entry.path)
    if (paths.length === 0) continue
    const more = paths.length > NAMES_SHOWN ? `, and ${paths.length - NAMES_SHOWN} more` : ''
    lines.push(
      `Skipped ${paths.length} (${SKIP_EXPLANATIONS[reason]}): ${paths.slice(0, NAMES_SHOWN).join(', ')}${more}`,
    )
  }
  return lines
}

const BATCH_STATES = {
  completed: 'completed (batch.completed is recorded)',
  closed: 'declared complete, but not every file in it is STORED, so it will not complete',
  open: 'left open; running the same command again adds the rest and completes it',
} as const

/** One line per file, status first, then a summary; the file path is the only free-form field. */
export function formatResults(result: UploadRunResult): string {
  const width = Math.max(...result.files.map((file) => file.status.length))
  const lines = result.files.map((file) => `${file.status.padEnd(width)}  ${describe(file)}`)
  const counts = new Map<string, number>()
  for (const file of result.files) counts.set(file.status, (counts.get(file.status) ?? 0) + 1)
  lines.push(
    '',
    [...counts]
      .map(([status, count]) => `${count} ${status.toLowerCase().replace('_', ' ')}`)
      .join(', '),
  )
  if (result.batch) lines.push(`Batch ${result.batch.id}: ${BATCH_STATES[result.batch.state]}`)
  lines.push(...whatToRunAgain(result))
  return `${lines.join('\n')}\n`
}

/**
 * Which files the same command, run again, continues: those the server has an upload of resume
 * it; those it has none of start.
 */
function whatToRunAgain(result: UploadRunResult): string[] {
  const pending = result.files.filter((file) => !FINAL_STATUSES.has(file.status))
  if (pending.length === 0) return []
  const resumable = pending.filter((file) => file.id !== null).map((file) => file.path)
  const unstarted = pending.filter((file) => file.id === null).map((file) => file.path)
  return [
    ...(resumable.length > 0 ? [`Resumable on the next run: ${resumable.join(', ')}`] : []),
    ...(unstarted.length > 0 ? [`Not on the server yet: ${unstarted.join(', ')}`] : []),
    'Run the same command again to continue.',
  ]
}

function describe(file: FileOutcome): string {
  const parts = [file.path]
  if (file.id) parts.push(`id ${file.id}`)
  if (file.sha256) parts.push(`sha256 ${file.sha256}`)
  if (file.resumedFrom >= file.size) parts.push('nothing sent: already on the server')
  else if (file.resumedFrom > 0) parts.push(`resumed at ${formatBytes(file.resumedFrom)}`)
  if (file.status === 'INTERRUPTED') {
    parts.push(`${formatBytes(file.bytesAcknowledged)} of ${formatBytes(file.size)} acknowledged`)
  }
  if (file.error) parts.push(`${file.error.code}: ${file.error.message}`)
  return parts.join('  ')
}

/**
 * One OPTIONS request before anything else: tus-js-client would retry a refused connection for
 * every file through all its retry delays (40 s) before saying so. Any HTTP answer will do; only
 * a connection that cannot be made, or no answer within 10 s, counts as unreachable.
 */
async function reachabilityProblem(endpoint: string): Promise<string | undefined> {
  try {
    const response = await fetch(endpoint, {
      method: 'OPTIONS',
      signal: AbortSignal.timeout(REACHABILITY_TIMEOUT_MS),
    })
    await response.arrayBuffer()
    return undefined
  } catch (error) {
    if (error instanceof Error && error.name === 'TimeoutError') {
      return `no answer within ${REACHABILITY_TIMEOUT_MS / 1000} s`
    }
    const cause = error instanceof Error ? error.cause : undefined
    const code = (cause as { code?: unknown } | undefined)?.code
    return typeof code === 'string' ? code : error instanceof Error ? error.message : String(error)
  }
}
