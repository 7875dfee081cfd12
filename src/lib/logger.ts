import { AsyncLocalStorage } from 'node:async_hooks'
import { pino } from 'pino'
import { prettyLine } from './pretty-log.ts'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'
export type LogFormat = 'json' | 'pretty'

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
  /** A logger whose every line also carries `bindings`. */
  child(bindings: Record<string, unknown>): Logger
}

export interface LoggerOptions {
  /** Default: pretty when stderr is a terminal, JSON otherwise. */
  readonly format?: LogFormat
  /** Receives each line without its newline; default: stderr (in colour on a terminal). */
  readonly write?: (line: string) => void
}

/**
 * The fields of the work in progress (a request's id, its upload's id, a job's id), added to
 * every line logged while doing it, however deep the code that logs: repositories, tus hooks and
 * the finish step log without being handed a logger per request.
 */
const context = new AsyncLocalStorage<Record<string, unknown>>()

/** Runs `work` with `fields` (added to the current ones) on every line it logs. */
export function withLogContext<T>(fields: Record<string, unknown>, work: () => T): T {
  return context.run({ ...context.getStore(), ...fields }, work)
}

/** Adds fields to the current context, for the lines logged from now on; none outside one. */
export function addLogContext(fields: Record<string, unknown>): void {
  const store = context.getStore()
  if (store) Object.assign(store, fields)
}

/**
 * Runs `work` outside any context. For long-lived resources opened during a request (a
 * connection): their event callbacks would otherwise log with the fields of the request that
 * happened to open them, long after it ended.
 */
export function withoutLogContext<T>(work: () => T): T {
  return context.exit(work)
}

/** Pretty for people at a terminal, JSON lines for log shippers (a pipe, a file, a container). */
export function defaultLogFormat(stream: { readonly isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY ? 'pretty' : 'json'
}

/** One line per entry on stderr: JSON objects `{level, time, ...context, ...fields, message}`. */
export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
  const format = options.format ?? defaultLogFormat()
  const colour = !options.write && format === 'pretty' && colourWanted()
  const write = options.write ?? writeStderr
  const destination = {
    write(line: string) {
      const json = line.endsWith('\n') ? line.slice(0, -1) : line
      write(format === 'pretty' ? prettyLine(json, { colour }) : json)
    },
  }
  return wrap(
    pino(
      {
        level,
        // The key name tusbox logged with before pino: log queries and tests look for it.
        messageKey: 'message',
        // No pid or hostname: every line would repeat what the log shipper already records.
        base: undefined,
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        mixin: () => ({ ...context.getStore() }),
      },
      destination,
    ),
  )
}

function wrap(base: pino.Logger): Logger {
  const emit =
    (at: Exclude<LogLevel, 'silent'>) => (message: string, fields?: Record<string, unknown>) => {
      if (base.isLevelEnabled(at)) base[at](serialize(fields), message)
    }
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (bindings) => wrap(base.child(serialize(bindings))),
  }
}

/** Errors under any key, not only pino's `err`: JSON.stringify would turn them into `{}`. */
function serialize(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  if (!fields) return {}
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) {
    out[key] =
      value instanceof Error
        ? { name: value.name, message: value.message, stack: value.stack }
        : value
  }
  return out
}

/** https://no-color.org: any non-empty NO_COLOR turns colour off. */
function colourWanted(): boolean {
  return process.stderr.isTTY === true && !process.env.NO_COLOR
}

/**
 * Lines leave stderr in batches, at most LOG_FLUSH_MS after they were logged. Each write to
 * stderr is a system call, and on a pipe it also wakes the reader (a log shipper): one per line
 * was 3–8 % of the main thread's time in a creation (issue 15), and a flush per turn of the event
 * loop still wrote about one line at a time. What is pending when the process exits is written
 * then ('exit' listeners run synchronously, and so are writes to pipes, files and terminals on
 * Linux): only a kill -9 can lose lines, those of its last LOG_FLUSH_MS.
 */
const LOG_FLUSH_MS = 20
let pendingLines: string[] = []
process.on('exit', flushLogs)
// Before Node prints an uncaught error, so that the lines that led to it come first.
process.on('uncaughtExceptionMonitor', flushLogs)

function writeStderr(line: string): void {
  if (pendingLines.length === 0) setTimeout(flushLogs, LOG_FLUSH_MS).unref()
  pendingLines.push(line)
}

/** Writes the lines still pending now: before writing to stderr other than through a logger. */
export function flushLogs(): void {
  if (pendingLines.length === 0) return
  const text = `${pendingLines.join('\n')}\n`
  pendingLines = []
  process.stderr.write(text)
}
