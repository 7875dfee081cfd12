import { inspect } from 'node:util'

const LEVEL_COLOURS: Readonly<Record<string, string>> = {
  debug: '\x1b[90m',
  info: '\x1b[32m',
  warn: '\x1b[33m',
  error: '\x1b[31m',
}
const DIM = '\x1b[2m'
const RESET = '\x1b[0m'

interface LoggedError {
  readonly name?: unknown
  readonly message?: unknown
  readonly stack?: unknown
}

/**
 * One JSON log line as a person reads it at a terminal:
 * `14:03:07.123 INFO  upload stored uploadId=… size=2000`, then the stacks of logged errors.
 */
export function prettyLine(json: string, options: { readonly colour: boolean }): string {
  let entry: Record<string, unknown>
  try {
    entry = JSON.parse(json) as Record<string, unknown>
  } catch {
    return json
  }
  const { time, level, message, ...fields } = entry
  const paint = (code: string, text: string) => (options.colour ? `${code}${text}${RESET}` : text)
  const label = String(level ?? '').toUpperCase()
  const parts = [
    paint(DIM, clockTime(time)),
    paint(LEVEL_COLOURS[String(level)] ?? '', label.padEnd(5)),
    String(message ?? ''),
  ]
  const stacks: string[] = []
  for (const [key, value] of Object.entries(fields)) {
    if (isLoggedError(value)) {
      parts.push(`${paint(DIM, `${key}=`)}${quoted(`${value.name}: ${value.message}`)}`)
      if (typeof value.stack === 'string') stacks.push(...frames(value.stack))
    } else {
      parts.push(`${paint(DIM, `${key}=`)}${quoted(value)}`)
    }
  }
  return [parts.join(' '), ...stacks].join('\n')
}

function clockTime(time: unknown): string {
  const date = new Date(String(time))
  if (Number.isNaN(date.getTime())) return String(time)
  const pad = (value: number, width = 2) => String(value).padStart(width, '0')
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
}

/** Bare words stay bare; anything a reader could split wrongly is quoted or shown as JSON. */
function quoted(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)
  if (typeof value === 'object' && value !== null) {
    return inspect(value, { breakLength: Number.POSITIVE_INFINITY, depth: 4 })
  }
  return String(value)
}

function isLoggedError(value: unknown): value is LoggedError {
  return (
    typeof value === 'object' &&
    value !== null &&
    'stack' in value &&
    'message' in value &&
    'name' in value
  )
}

/** The stack without its first line, which repeats the name and message shown already. */
function frames(stack: string): string[] {
  return stack
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .map((line) => `    ${line.trim()}`)
}
