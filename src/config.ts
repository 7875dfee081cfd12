import { tmpdir } from 'node:os'
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

const nonNegativeInteger = z.coerce
  .number({ message: 'must be a number' })
  .int('must be a whole number')
  .min(0, 'must be 0 or more')
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

const urlList = z.string().transform((text, ctx) => {
  const urls = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
  const invalid = urls.filter((entry) => !/^https?:\/\/[^\s]+$/.test(entry) || !URL.canParse(entry))
  if (invalid.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be http(s) URLs separated by commas; not understood: ${invalid.join(', ')}`,
    })
    return z.NEVER
  }
  return [...new Set(urls)]
})

/** `*`, or exact origins (`https://app.example.com`): what a browser sends in its Origin header. */
const originList = z.string().transform((text, ctx) => {
  const origins = text
    .split(',')
    .map((entry) => entry.trim().replace(/\/+$/, ''))
    .filter((entry) => entry !== '')
  if (origins.includes('*')) return '*' as const
  const invalid = origins.filter(
    (entry) => !URL.canParse(entry) || new URL(entry).origin !== entry.toLowerCase(),
  )
  if (invalid.length > 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be * or origins such as https://app.example.com (scheme, host and port only), separated by commas; not understood: ${invalid.join(', ')}`,
    })
    return z.NEVER
  }
  return [...new Set(origins.map((entry) => entry.toLowerCase()))]
})

/** `name` (the claim must be true) or `name=value` (the claim equals, or lists, the value). */
const adminClaim = z
  .string()
  .regex(/^[^=\s]+(=[^=\s]+)?$/, 'must be a claim name, or name=value such as roles=admin')
  .transform((text) => {
    const [name = text, value] = text.split('=')
    return { name, value }
  })

/** Five fields, as pg-boss schedules take them (it runs a schedule at most once a minute). */
const cron = z
  .string()
  .regex(/^\S+( \S+){4}$/, 'must be a five-field cron expression such as "0 * * * *"')

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((text) => text === 'true' || text === '1' || text === 'yes')

const MiB = 1024 * 1024
/** S3's own bounds for a multipart part. */
const partSize = positiveInteger
  .min(5 * MiB, 'must be at least 5242880 (5 MiB), the S3 minimum part size')
  .max(5 * 1024 * MiB, 'must be at most 5 GiB, the S3 maximum part size')

/** docker compose passes `${VAR:-}` as an empty string: empty means unset, everywhere. */
function dropEmptyValues(env: unknown): unknown {
  if (typeof env !== 'object' || env === null) return env
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''))
}

const settingsSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
    .optional(),
  EMBEDDED_POSTGRES_DIR: z.string().default('./.data/postgres'),
  EMBEDDED_POSTGRES_PORT: port.default(0),
  PORT: port.default(1080),
  HOST: z.string().default('127.0.0.1'),
  PUBLIC_URL: url.optional(),
  DEMO_PAGE: boolean.optional(),
  SHUTDOWN_GRACE_PERIOD: duration.prefault('10s'),
  STORAGE_BACKEND: z.enum(['file', 's3'], { message: 'must be "file" or "s3"' }).default('file'),
  FILE_STORE_DIR: z.string().default('./.data/files'),
  AWS_STORAGE_BUCKET_NAME: z
    .string()
    .regex(
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      'must be a bucket name: 3-63 lowercase letters, digits, dots or hyphens',
    )
    .optional(),
  AWS_S3_ENDPOINT_URL: url.optional(),
  AWS_S3_REGION_NAME: z.string().default('us-east-1'),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_S3_FORCE_PATH_STYLE: boolean.prefault('false'),
  AWS_LOCATION: z.string().default(''),
  AWS_QUERYSTRING_AUTH: boolean.prefault('true'),
  AWS_QUERYSTRING_EXPIRE: positiveInteger
    .max(604_800, 'must be at most 604800 (7 days, the SigV4 limit)')
    .default(3600),
  S3_PART_SIZE: partSize.default(8 * MiB),
  S3_MIN_PART_SIZE: partSize.default(5 * MiB),
  S3_IDLE_TIMEOUT: duration.prefault('2m'),
  FILE_UPLOAD_MIN_SIZE: nonNegativeInteger.default(1),
  FILE_UPLOAD_MAX_SIZE: positiveInteger.default(52_428_800),
  FILE_UPLOAD_ALLOWED_TYPES: mimeList.prefault(DEFAULT_ALLOWED_TYPES.join(',')),
  UPLOAD_EXPIRATION: duration.prefault('24h'),
  FILE_UPLOAD_TTL: duration.optional(),
  CHECKSUM_TEMP_DIR: z.string().optional(),
  CHECKSUM_BUFFER_MAX_BYTES: positiveInteger.default(1024 * MiB),
  CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER: positiveInteger.default(256 * MiB),
  CHECKSUM_MIN_BYTES_PER_SECOND: positiveInteger.default(1024),
  CHECKSUM_RATE_WINDOW: duration.prefault('60s'),
  WEBHOOK_URLS: urlList.default([]),
  WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  WEBHOOK_TIMEOUT: duration.prefault('10s'),
  WEBHOOK_MAX_ATTEMPTS: positiveInteger.max(100, 'must be at most 100').default(10),
  WORKER_CONCURRENCY: positiveInteger.max(100, 'must be at most 100').default(4),
  PURGE_SCHEDULE: cron.default('0 * * * *'),
  PURGE_BATCH_SIZE: positiveInteger.max(10_000, 'must be at most 10000').default(500),
  FAILED_UPLOAD_RETENTION: duration.prefault('7d'),
  AUTH_MODE: z.enum(['none', 'jwt'], { message: 'must be "none" or "jwt"' }).default('none'),
  AUTH_JWT_SECRET: z.string().min(32, 'must be at least 32 characters (HS256 key)').optional(),
  AUTH_JWKS_URL: url.optional(),
  AUTH_ISSUER: z.string().optional(),
  AUTH_AUDIENCE: z.string().optional(),
  AUTH_MAX_TOKEN_AGE: duration.optional(),
  AUTH_ADMIN_CLAIM: adminClaim.prefault('tusbox_admin'),
  AUTH_ALLOW_ANONYMOUS: boolean.prefault('false'),
  CORS_ALLOWED_ORIGINS: originList.prefault(''),
  MAX_UNFINISHED_UPLOADS_PER_OWNER: positiveInteger.default(100),
  MAX_BYTES_IN_FLIGHT_PER_OWNER: positiveInteger.default(5 * 1024 * MiB),
  MAX_OPEN_BATCHES_PER_OWNER: positiveInteger.default(100),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['json', 'pretty'], { message: 'must be "json" or "pretty"' }).optional(),
  WORKER_METRICS_PORT: port.min(1, 'must be between 1 and 65535').optional(),
})

/** Every environment variable tusbox reads. */
export const SETTING_NAMES = Object.keys(settingsSchema.shape)

// `when`: cross-field checks run even when a single field is bad, so one message lists all.
const schema = settingsSchema.superRefine(checkCombinations, { when: () => true })

function checkCombinations(settings: Record<string, unknown>, ctx: z.RefinementCtx): void {
  const problem = (path: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: [path], message })
  if (settings.STORAGE_BACKEND === 's3' && !settings.AWS_STORAGE_BUCKET_NAME) {
    problem('AWS_STORAGE_BUCKET_NAME', 'is required when STORAGE_BACKEND=s3')
  }
  if (Boolean(settings.AWS_ACCESS_KEY_ID) !== Boolean(settings.AWS_SECRET_ACCESS_KEY)) {
    problem(
      settings.AWS_ACCESS_KEY_ID ? 'AWS_SECRET_ACCESS_KEY' : 'AWS_ACCESS_KEY_ID',
      'must be set together with its pair, or both left unset for the SDK credential chain',
    )
  }
  // Parsed, WEBHOOK_URLS is a list; when it did not parse, zod leaves a placeholder instead.
  const webhooks = settings.WEBHOOK_URLS
  const webhooksSet = Array.isArray(webhooks) ? webhooks.length > 0 : webhooks !== undefined
  if (webhooksSet && !settings.WEBHOOK_SECRET) {
    problem(
      'WEBHOOK_SECRET',
      'is required when WEBHOOK_URLS is set: every webhook is signed with it',
    )
  }
  checkAuth(settings, problem)
  const { MAX_BYTES_IN_FLIGHT_PER_OWNER: inFlight, FILE_UPLOAD_MAX_SIZE: maxSize } = settings
  if (typeof inFlight === 'number' && typeof maxSize === 'number' && inFlight < maxSize) {
    problem(
      'MAX_BYTES_IN_FLIGHT_PER_OWNER',
      `must be at least FILE_UPLOAD_MAX_SIZE (${maxSize}), or no file of the largest size could start`,
    )
  }
  const minSize = settings.FILE_UPLOAD_MIN_SIZE
  // A maxSize below 1 is reported on its own; comparing with it would report a second problem.
  if (
    typeof minSize === 'number' &&
    typeof maxSize === 'number' &&
    maxSize > 0 &&
    minSize > maxSize
  ) {
    problem('FILE_UPLOAD_MIN_SIZE', `must not exceed FILE_UPLOAD_MAX_SIZE (${maxSize})`)
  }
  const { CHECKSUM_BUFFER_MAX_BYTES: total, CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER: share } = settings
  if (typeof total === 'number' && typeof share === 'number' && share > total) {
    problem(
      'CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER',
      `must not exceed CHECKSUM_BUFFER_MAX_BYTES (${total})`,
    )
  }
  const { S3_MIN_PART_SIZE: min, S3_PART_SIZE: preferred } = settings
  if (typeof min === 'number' && typeof preferred === 'number' && min > preferred) {
    problem('S3_MIN_PART_SIZE', `must not exceed S3_PART_SIZE (${preferred})`)
  }
}

function checkAuth(
  settings: Record<string, unknown>,
  problem: (path: string, message: string) => void,
): void {
  const { AUTH_MODE: mode, AUTH_JWT_SECRET: secret, AUTH_JWKS_URL: jwksUrl } = settings
  if (mode === 'jwt' && Boolean(secret) === Boolean(jwksUrl)) {
    problem(
      secret ? 'AUTH_JWKS_URL' : 'AUTH_JWT_SECRET',
      'AUTH_MODE=jwt needs exactly one of AUTH_JWT_SECRET (HS256) or AUTH_JWKS_URL (RS256/ES256)',
    )
  }
  if (mode === 'jwt' && jwksUrl && !settings.AUTH_AUDIENCE) {
    problem(
      'AUTH_AUDIENCE',
      'is required with AUTH_JWKS_URL: an identity provider signs tokens for every application it serves, and only the audience tells those meant for tusbox apart',
    )
  }
  if (typeof jwksUrl === 'string' && URL.canParse(jwksUrl) && !isSafeKeyUrl(new URL(jwksUrl))) {
    problem(
      'AUTH_JWKS_URL',
      'must be an https:// URL (http:// only on localhost, 127.0.0.1 or [::1]): keys fetched in clear text can be swapped on the way',
    )
  }
  if (mode === 'none' && (secret || jwksUrl)) {
    problem(
      secret ? 'AUTH_JWT_SECRET' : 'AUTH_JWKS_URL',
      'is set but AUTH_MODE=none ignores it: set AUTH_MODE=jwt',
    )
  }
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]'])

function isSafeKeyUrl(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname))
}

/**
 * Settings whose value must never be printed: a config error names them and the rule only
 * (security review). DATABASE_URL usually carries a password.
 */
const SECRET_SETTINGS = new Set([
  'AUTH_JWT_SECRET',
  'WEBHOOK_SECRET',
  'AWS_SECRET_ACCESS_KEY',
  'DATABASE_URL',
])

/** `NAME="value"` for a plain setting, `NAME=(hidden)` for a secret one. */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return '(unset)'
  return SECRET_SETTINGS.has(name) ? '(hidden)' : JSON.stringify(value)
}

/**
 * The embedded default is a local setup; a shared database means a deployment, where serving
 * anonymous uploads must be a decision, not an oversight. Checked by the commands that serve
 * HTTP (start, serve), not by one-shot ops commands, which serve nothing.
 */
export function checkAnonymousServing(config: Config, env: NodeJS.ProcessEnv = process.env): void {
  const { auth, database } = config
  if (auth.mode === 'none' && database.kind === 'external' && !auth.allowAnonymous) {
    const value = env.AUTH_MODE === undefined ? '(unset)' : JSON.stringify(env.AUTH_MODE)
    throw new ConfigError([
      `AUTH_MODE=${value}: none with DATABASE_URL set lets anyone upload and read every file: set AUTH_MODE=jwt, or AUTH_ALLOW_ANONYMOUS=true to allow it`,
    ])
  }
}

export type AuthConfig =
  | { readonly mode: 'none'; readonly allowAnonymous: boolean }
  | {
      readonly mode: 'jwt'
      readonly key:
        | { readonly kind: 'secret'; readonly secret: string }
        | { readonly kind: 'jwks'; readonly url: string }
      readonly issuer: string | undefined
      readonly audience: string | undefined
      /** Tokens issued (iat) longer ago than this are refused, whatever their exp. */
      readonly maxTokenAgeSeconds: number | undefined
      readonly adminClaim: { readonly name: string; readonly value: string | undefined }
    }

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
    /** The demo page at /: DEMO_PAGE, or on with the embedded PostgreSQL and off otherwise. */
    readonly demoPage: boolean
    /** How long requests in flight may run on after a stop signal before their connections close. */
    readonly shutdownGracePeriodMs: number
  }
  readonly storage: FileStorageConfig | S3StorageConfig
  readonly uploads: {
    /** The smallest file accepted, in bytes: 1 refuses empty files, 0 accepts them. */
    readonly minSize: number
    readonly maxSize: number
    readonly allowedTypes: readonly string[]
    /** How long an unfinished upload may sit idle before it expires, in ms. */
    readonly expirationMs: number
    /** How long a STORED file is kept, in ms; null keeps it forever. */
    readonly storedTtlMs: number | null
    /** Where PATCH bodies that carry Upload-Checksum wait while their digest is verified. */
    readonly checksumTempDir: string
    /** What those bodies may hold on disk at once in this process: in all, and per owner. */
    readonly checksumBuffer: { readonly totalBytes: number; readonly perOwnerBytes: number }
    /** Those bodies must arrive at least this fast on average over each window. */
    readonly checksumRateFloor: { readonly minBytesPerSecond: number; readonly windowMs: number }
  }
  readonly outbox: {
    readonly webhookUrls: readonly string[]
    /** Set whenever webhookUrls is not empty. */
    readonly webhookSecret: string | undefined
    readonly webhookTimeoutMs: number
    readonly maxAttempts: number
  }
  readonly jobs: {
    readonly concurrency: number
    readonly purgeSchedule: string
    readonly purgeBatchSize: number
    readonly failedRetentionMs: number
  }
  readonly auth: AuthConfig
  /** Origins browsers may call from: `*`, or a list (empty: same origin only). */
  readonly corsAllowedOrigins: '*' | readonly string[]
  /** Per owner, checked when an upload is created; anonymous uploads have no owner to count. */
  readonly ownerLimits: {
    readonly maxUnfinishedUploads: number
    readonly maxBytesInFlight: number
    /** Batches neither declared complete nor completed. */
    readonly maxOpenBatches: number
  }
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent'
  /** LOG_FORMAT; undefined: pretty when stderr is a terminal, JSON otherwise. */
  readonly logFormat: 'json' | 'pretty' | undefined
  readonly metrics: {
    /** Where `tusbox worker` serves /metrics and /healthz; undefined: it serves nothing. */
    readonly workerPort: number | undefined
  }
}

export interface FileStorageConfig {
  readonly backend: 'file'
  readonly directory: string
}

export interface S3StorageConfig {
  readonly backend: 's3'
  readonly bucket: string
  /** Undefined: AWS itself. */
  readonly endpoint: string | undefined
  readonly region: string
  /** Undefined: the SDK's default credential chain. */
  readonly credentials:
    | { readonly accessKeyId: string; readonly secretAccessKey: string }
    | undefined
  readonly forcePathStyle: boolean
  /** AWS_LOCATION as a key prefix: empty, or ending in one slash. */
  readonly keyPrefix: string
  /** Downloads redirect to a presigned URL (true) or stream through tusbox (false). */
  readonly presignedDownloads: boolean
  readonly presignExpiresSeconds: number
  readonly partSize: number
  readonly minPartSize: number
  /** An S3 request that connects, sends and receives nothing for this long fails. */
  readonly idleTimeoutMs: number
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
  const parsed = z.preprocess(dropEmptyValues, schema).safeParse(env)
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment')
        return `${name}=${shownValue(name, env[name])}: ${issue.message}`
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
      demoPage: settings.DEMO_PAGE ?? settings.DATABASE_URL === undefined,
      shutdownGracePeriodMs: settings.SHUTDOWN_GRACE_PERIOD,
    },
    storage: storageConfig(settings),
    uploads: {
      minSize: settings.FILE_UPLOAD_MIN_SIZE,
      maxSize: settings.FILE_UPLOAD_MAX_SIZE,
      allowedTypes: settings.FILE_UPLOAD_ALLOWED_TYPES,
      expirationMs: settings.UPLOAD_EXPIRATION,
      storedTtlMs: settings.FILE_UPLOAD_TTL ?? null,
      checksumTempDir: settings.CHECKSUM_TEMP_DIR ?? tmpdir(),
      checksumBuffer: {
        totalBytes: settings.CHECKSUM_BUFFER_MAX_BYTES,
        perOwnerBytes: settings.CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER,
      },
      checksumRateFloor: {
        minBytesPerSecond: settings.CHECKSUM_MIN_BYTES_PER_SECOND,
        windowMs: settings.CHECKSUM_RATE_WINDOW,
      },
    },
    outbox: {
      webhookUrls: settings.WEBHOOK_URLS,
      webhookSecret: settings.WEBHOOK_SECRET,
      webhookTimeoutMs: settings.WEBHOOK_TIMEOUT,
      maxAttempts: settings.WEBHOOK_MAX_ATTEMPTS,
    },
    jobs: {
      concurrency: settings.WORKER_CONCURRENCY,
      purgeSchedule: settings.PURGE_SCHEDULE,
      purgeBatchSize: settings.PURGE_BATCH_SIZE,
      failedRetentionMs: settings.FAILED_UPLOAD_RETENTION,
    },
    auth: authConfig(settings),
    corsAllowedOrigins: settings.CORS_ALLOWED_ORIGINS,
    ownerLimits: {
      maxUnfinishedUploads: settings.MAX_UNFINISHED_UPLOADS_PER_OWNER,
      maxBytesInFlight: settings.MAX_BYTES_IN_FLIGHT_PER_OWNER,
      maxOpenBatches: settings.MAX_OPEN_BATCHES_PER_OWNER,
    },
    logLevel: settings.LOG_LEVEL,
    logFormat: settings.LOG_FORMAT,
    metrics: { workerPort: settings.WORKER_METRICS_PORT },
  }
  return Object.freeze(config)
}

function storageConfig(settings: z.infer<typeof schema>): Config['storage'] {
  if (settings.STORAGE_BACKEND === 'file')
    return { backend: 'file', directory: settings.FILE_STORE_DIR }
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey } = settings
  const location = settings.AWS_LOCATION.replace(/^\/+|\/+$/g, '')
  return {
    backend: 's3',
    bucket: settings.AWS_STORAGE_BUCKET_NAME as string,
    endpoint: settings.AWS_S3_ENDPOINT_URL,
    region: settings.AWS_S3_REGION_NAME,
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    forcePathStyle: settings.AWS_S3_FORCE_PATH_STYLE,
    keyPrefix: location === '' ? '' : `${location}/`,
    presignedDownloads: settings.AWS_QUERYSTRING_AUTH,
    presignExpiresSeconds: settings.AWS_QUERYSTRING_EXPIRE,
    partSize: settings.S3_PART_SIZE,
    minPartSize: settings.S3_MIN_PART_SIZE,
    idleTimeoutMs: settings.S3_IDLE_TIMEOUT,
  }
}

function authConfig(settings: z.infer<typeof schema>): AuthConfig {
  if (settings.AUTH_MODE === 'none') {
    return { mode: 'none', allowAnonymous: settings.AUTH_ALLOW_ANONYMOUS }
  }
  const { AUTH_JWT_SECRET: secret, AUTH_JWKS_URL: jwksUrl } = settings
  return {
    mode: 'jwt',
    key: secret ? { kind: 'secret', secret } : { kind: 'jwks', url: jwksUrl as string },
    issuer: settings.AUTH_ISSUER,
    audience: settings.AUTH_AUDIENCE,
    maxTokenAgeSeconds:
      settings.AUTH_MAX_TOKEN_AGE === undefined ? undefined : settings.AUTH_MAX_TOKEN_AGE / 1000,
    adminClaim: settings.AUTH_ADMIN_CLAIM,
  }
}

function hostForUrl(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
