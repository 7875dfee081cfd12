import { z } from 'zod'
import { parseDuration } from './lib/duration.ts'

/** The set a new user gets: documents, photos (phones send HEIC), text, tables and archives. */
export const DEFAULT_ALLOWED_TYPES = [
  'application/pdf',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/heic',
  'text/plain',
  'text/csv',
  'application/json',
  'application/zip',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
]

const MIME_PATTERN = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/

const duration = z.string().transform((text, ctx) => {
  const ms = parseDuration(text)
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `"${text}" is not a duration such as 90s, 15m, 24h or 7d`,
    })
    return z.NEVER
  }
  return ms
})

const port = z.coerce
  .number({ message: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535')

const positiveInteger = z.coerce
  .number({ message: 'must be a number' })
  .int('must be a whole number')
  .positive('must be greater than 0')
  .max(Number.MAX_SAFE_INTEGER, 'is too large')

const mimeList = z.string().transform((text, ctx) => {
  const types = text
    .split(',')
    .map((type) => type.trim().toLowerCase())
    .filter((type) => type !== '')
  const invalid = types.filter((type) => !MIME_PATTERN.test(type))
  if (types.length === 0 || invalid.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be a comma-separated list of MIME types such as image/png or image/*${invalid.length > 0 ? `; not understood: ${invalid.join(', ')}` : ''}`,
    })
    return z.NEVER
  }
  return types
})

const url = z.url({ message: 'must be an absolute URL such as https://uploads.example.com' })

const emptyAsUndefined = (value: unknown) => (value === '' ? undefined : value)

const schema = z.object({
  DATABASE_URL: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
      .optional(),
  ),
  EMBEDDED_POSTGRES_DIR: z.string().min(1).default('./.data/postgres'),
  EMBEDDED_POSTGRES_PORT: z.preprocess(emptyAsUndefined, port.default(0)),
  PORT: z.preprocess(emptyAsUndefined, port.default(1080)),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: z.preprocess(emptyAsUndefined, url.optional()),
  STORAGE_BACKEND: z.preprocess(
    emptyAsUndefined,
    z.enum(['file'], { message: 'must be "file" (S3 support is not built yet)' }).default('file'),
  ),
  FILE_STORE_DIR: z.string().min(1).default('./.data/files'),
  FILE_UPLOAD_MAX_SIZE: z.preprocess(emptyAsUndefined, positiveInteger.default(52_428_800)),
  FILE_UPLOAD_ALLOWED_TYPES: z.preprocess(
    emptyAsUndefined,
    mimeList.prefault(DEFAULT_ALLOWED_TYPES.join(',')),
  ),
  UPLOAD_EXPIRATION: z.preprocess(emptyAsUndefined, duration.prefault('24h')),
  FILE_UPLOAD_TTL: z.preprocess(emptyAsUndefined, duration.optional()),
  LOG_LEVEL: z.preprocess(
    emptyAsUndefined,
    z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  ),
})

export interface Config {
  readonly database:
    | { readonly kind: 'external'; readonly url: string }
    | { readonly kind: 'embedded'; readonly dir: string; readonly port: number }
  readonly http: {
    readonly host: string
    readonly port: number
    /** Base of absolute URLs in events; PUBLIC_URL, or http://HOST:PORT. */
    readonly publicUrl: string
    /** True when PUBLIC_URL was set: tus Location headers use it instead of the Host header. */
    readonly publicUrlExplicit: boolean
  }
  readonly storage: { readonly backend: 'file'; readonly directory: string }
  readonly uploads: {
    readonly maxSize: number
    readonly allowedTypes: readonly string[]
    /** How long an unfinished upload may sit idle before it expires, in ms. */
    readonly expirationMs: number
    /** How long a STORED file is kept, in ms; null keeps it forever. */
    readonly storedTtlMs: number | null
  }
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent'
}

export class ConfigError extends Error {
  readonly problems: readonly string[]
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** Reads every setting at once and reports every bad one together, so one restart fixes them all. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env)
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment')
        const value = env[name]
        return `${name}=${value === undefined ? '(unset)' : JSON.stringify(value)}: ${issue.message}`
      }),
    )
  }
  const settings = parsed.data
  const publicUrl = (
    settings.PUBLIC_URL ?? `http://${hostForUrl(settings.HOST)}:${settings.PORT}`
  ).replace(/\/+$/, '')
  const config: Config = {
    database: settings.DATABASE_URL
      ? { kind: 'external', url: settings.DATABASE_URL }
      : {
          kind: 'embedded',
          dir: settings.EMBEDDED_POSTGRES_DIR,
          port: settings.EMBEDDED_POSTGRES_PORT,
        },
    http: {
      host: settings.HOST,
      port: settings.PORT,
      publicUrl,
      publicUrlExplicit: settings.PUBLIC_URL !== undefined,
    },
    storage: { backend: settings.STORAGE_BACKEND, directory: settings.FILE_STORE_DIR },
    uploads: {
      maxSize: settings.FILE_UPLOAD_MAX_SIZE,
      allowedTypes: settings.FILE_UPLOAD_ALLOWED_TYPES,
      expirationMs: settings.UPLOAD_EXPIRATION,
      storedTtlMs: settings.FILE_UPLOAD_TTL ?? null,
    },
    logLevel: settings.LOG_LEVEL,
  }
  return Object.freeze(config)
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
