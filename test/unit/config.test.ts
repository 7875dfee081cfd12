import { tmpdir } from 'node:os'
import { describe, expect, it } from 'vitest'
import {
  ConfigError,
  checkAnonymousServing,
  DEFAULT_ALLOWED_TYPES,
  loadConfig,
} from '../../src/config.ts'

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const config = loadConfig({})
    expect(config).toEqual({
      database: { kind: 'embedded', dir: './.data/postgres', port: 0 },
      http: {
        host: '127.0.0.1',
        port: 1080,
        publicUrl: 'http://127.0.0.1:1080',
        publicUrlExplicit: false,
        demoPage: true,
        shutdownGracePeriodMs: 10_000,
      },
      storage: { backend: 'file', directory: './.data/files' },
      uploads: {
        minSize: 1,
        maxSize: 52_428_800,
        allowedTypes: DEFAULT_ALLOWED_TYPES,
        expirationMs: 24 * 3_600_000,
        storedTtlMs: null,
        checksumTempDir: tmpdir(),
        checksumBuffer: { totalBytes: 1024 * 1024 * 1024, perOwnerBytes: 256 * 1024 * 1024 },
        checksumRateFloor: { minBytesPerSecond: 1024, windowMs: 60_000 },
      },
      outbox: {
        webhookUrls: [],
        webhookSecret: undefined,
        webhookTimeoutMs: 10_000,
        maxAttempts: 10,
      },
      jobs: {
        concurrency: 4,
        purgeSchedule: '0 * * * *',
        purgeBatchSize: 500,
        failedRetentionMs: 7 * 86_400_000,
      },
      auth: { mode: 'none', allowAnonymous: false },
      corsAllowedOrigins: [],
      ownerLimits: {
        maxUnfinishedUploads: 100,
        maxBytesInFlight: 5 * 1024 ** 3,
        maxOpenBatches: 100,
      },
      logLevel: 'info',
      logFormat: undefined,
      metrics: { workerPort: undefined },
    })
    expect(Object.isFrozen(config)).toBe(true)
  })

  it('uses DATABASE_URL, PUBLIC_URL without its trailing slash, durations and type lists', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://u:p@db:5432/tusbox',
      AUTH_ALLOW_ANONYMOUS: 'true',
      PUBLIC_URL: 'https://uploads.example.com/',
      UPLOAD_EXPIRATION: '90s',
      FILE_UPLOAD_TTL: '7d',
      FILE_UPLOAD_ALLOWED_TYPES: ' image/* , Application/PDF ',
      FILE_UPLOAD_MAX_SIZE: '1048576',
      FILE_UPLOAD_MIN_SIZE: '0',
      CHECKSUM_TEMP_DIR: '/var/tmp/tusbox',
    })
    expect(config.database).toEqual({ kind: 'external', url: 'postgres://u:p@db:5432/tusbox' })
    expect(config.http.publicUrl).toBe('https://uploads.example.com')
    expect(config.http.publicUrlExplicit).toBe(true)
    expect(config.http.demoPage).toBe(false)
    expect(config.uploads).toEqual({
      minSize: 0,
      maxSize: 1_048_576,
      allowedTypes: ['image/*', 'application/pdf'],
      expirationMs: 90_000,
      storedTtlMs: 7 * 86_400_000,
      checksumTempDir: '/var/tmp/tusbox',
      checksumBuffer: expect.any(Object),
      checksumRateFloor: expect.any(Object),
    })
  })

  it('treats empty values as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '', FILE_UPLOAD_TTL: '' }).database.kind).toBe(
      'embedded',
    )
  })

  it('reports every bad variable in one error', () => {
    let error: unknown
    try {
      loadConfig({
        PORT: '70000',
        FILE_UPLOAD_MAX_SIZE: '-5',
        UPLOAD_EXPIRATION: '1 day',
        FILE_UPLOAD_ALLOWED_TYPES: 'image/png,not a type',
        STORAGE_BACKEND: 'ftp',
        DATABASE_URL: 'mysql://x',
        AUTH_ALLOW_ANONYMOUS: 'true',
        PUBLIC_URL: 'uploads.example.com',
      })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ConfigError)
    const problems = (error as ConfigError).problems
    expect(problems.map((problem) => problem.split('=')[0])).toEqual(
      expect.arrayContaining([
        'PORT',
        'FILE_UPLOAD_MAX_SIZE',
        'UPLOAD_EXPIRATION',
        'FILE_UPLOAD_ALLOWED_TYPES',
        'STORAGE_BACKEND',
        'DATABASE_URL',
        'PUBLIC_URL',
      ]),
    )
    expect(problems).toHaveLength(7)
    expect((error as ConfigError).message).toContain(
      'UPLOAD_EXPIRATION="1 day": "1 day" is not a duration',
    )
    expect((error as ConfigError).message).toContain('not understood: not a type')
  })

  it('reads the checksum buffer bounds, and refuses an owner share above the total', () => {
    const config = loadConfig({
      CHECKSUM_BUFFER_MAX_BYTES: '2000',
      CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER: '500',
      CHECKSUM_MIN_BYTES_PER_SECOND: '10',
      CHECKSUM_RATE_WINDOW: '2m',
    })
    expect(config.uploads.checksumBuffer).toEqual({ totalBytes: 2000, perOwnerBytes: 500 })
    expect(config.uploads.checksumRateFloor).toEqual({ minBytesPerSecond: 10, windowMs: 120_000 })
    expect(() =>
      loadConfig({
        CHECKSUM_BUFFER_MAX_BYTES: '2000',
        CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER: '2001',
      }),
    ).toThrow(
      /CHECKSUM_BUFFER_MAX_BYTES_PER_OWNER="2001": must not exceed CHECKSUM_BUFFER_MAX_BYTES \(2000\)/,
    )
  })

  it('reads the S3 settings, with AWS_LOCATION as a prefix ending in one slash', () => {
    const config = loadConfig({
      STORAGE_BACKEND: 's3',
      AWS_STORAGE_BUCKET_NAME: 'uploads',
      AWS_S3_ENDPOINT_URL: 'http://minio:9000',
      AWS_ACCESS_KEY_ID: 'key',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_S3_FORCE_PATH_STYLE: 'true',
      AWS_LOCATION: '/media/',
      AWS_QUERYSTRING_AUTH: 'false',
      S3_PART_SIZE: '8388608',
      S3_MIN_PART_SIZE: '8388608',
      S3_IDLE_TIMEOUT: '90s',
    })
    expect(config.storage).toEqual({
      backend: 's3',
      bucket: 'uploads',
      endpoint: 'http://minio:9000',
      region: 'us-east-1',
      credentials: { accessKeyId: 'key', secretAccessKey: 'secret' },
      forcePathStyle: true,
      keyPrefix: 'media/',
      presignedDownloads: false,
      presignExpiresSeconds: 3600,
      partSize: 8_388_608,
      minPartSize: 8_388_608,
      idleTimeoutMs: 90_000,
    })
  })

  it('leaves credentials to the SDK chain when no key is set', () => {
    const config = loadConfig({ STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'uploads' })
    expect(config.storage).toMatchObject({
      credentials: undefined,
      endpoint: undefined,
      keyPrefix: '',
    })
  })

  it('refuses an S3_IDLE_TIMEOUT that is not a duration of at least a second', () => {
    for (const value of ['500ms', '0s', 'never', '-1m']) {
      expect(() =>
        loadConfig({ STORAGE_BACKEND: 's3', AWS_STORAGE_BUCKET_NAME: 'b', S3_IDLE_TIMEOUT: value }),
      ).toThrow(`S3_IDLE_TIMEOUT="${value}": "${value}" is not a duration such as 90s`)
    }
  })

  it('stops STORAGE_BACKEND=s3 without a bucket, together with every other problem', () => {
    expect(() =>
      loadConfig({
        STORAGE_BACKEND: 's3',
        PORT: 'x',
        AWS_ACCESS_KEY_ID: 'only-half',
        S3_PART_SIZE: '6000000',
        S3_MIN_PART_SIZE: '7000000',
        AWS_QUERYSTRING_AUTH: 'maybe',
      }),
    ).toThrow(
      expect.objectContaining({
        problems: [
          'PORT="x": must be a number',
          'AWS_QUERYSTRING_AUTH="maybe": must be true or false',
          'AWS_STORAGE_BUCKET_NAME=(unset): is required when STORAGE_BACKEND=s3',
          'AWS_SECRET_ACCESS_KEY=(unset): must be set together with its pair, or both left unset for the SDK credential chain',
          'S3_MIN_PART_SIZE="7000000": must not exceed S3_PART_SIZE (6000000)',
        ],
      }),
    )
  })

  it('refuses a FILE_UPLOAD_MIN_SIZE below 0 or over FILE_UPLOAD_MAX_SIZE', () => {
    expect(() => loadConfig({ FILE_UPLOAD_MIN_SIZE: '-1' })).toThrow(
      expect.objectContaining({ problems: ['FILE_UPLOAD_MIN_SIZE="-1": must be 0 or more'] }),
    )
    expect(() => loadConfig({ FILE_UPLOAD_MIN_SIZE: '11', FILE_UPLOAD_MAX_SIZE: '10' })).toThrow(
      expect.objectContaining({
        problems: ['FILE_UPLOAD_MIN_SIZE="11": must not exceed FILE_UPLOAD_MAX_SIZE (10)'],
      }),
    )
  })

  it('refuses part sizes outside what S3 accepts', () => {
    expect(() => loadConfig({ S3_PART_SIZE: '1048576' })).toThrow(
      /S3_PART_SIZE="1048576": must be at least 5242880/,
    )
  })

  it('requires WEBHOOK_SECRET with WEBHOOK_URLS and refuses URLs that are not http(s)', () => {
    expect(() => loadConfig({ WEBHOOK_URLS: 'https://a.example/hook, ftp://b.example' })).toThrow(
      expect.objectContaining({
        problems: [
          'WEBHOOK_URLS="https://a.example/hook, ftp://b.example": must be http(s) URLs separated by commas; not understood: ftp://b.example',
          'WEBHOOK_SECRET=(unset): is required when WEBHOOK_URLS is set: every webhook is signed with it',
        ],
      }),
    )
    const config = loadConfig({
      WEBHOOK_URLS: 'https://a.example/hook,https://b.example/hook,https://a.example/hook',
      WEBHOOK_SECRET: 'a-secret-of-sixteen',
      PURGE_SCHEDULE: '*/15 * * * *',
    })
    expect(config.outbox.webhookUrls).toEqual(['https://a.example/hook', 'https://b.example/hook'])
    expect(config.jobs.purgeSchedule).toBe('*/15 * * * *')
  })

  it('takes a JWT secret or a JWKS URL, issuer, audience and an admin claim with a value', () => {
    const config = loadConfig({
      AUTH_MODE: 'jwt',
      AUTH_JWKS_URL: 'https://id.example.com/.well-known/jwks.json',
      AUTH_ISSUER: 'https://id.example.com/',
      AUTH_AUDIENCE: 'tusbox',
      AUTH_ADMIN_CLAIM: 'roles=admin',
      CORS_ALLOWED_ORIGINS: 'https://App.example.com, http://localhost:5173/',
    })
    expect(config.auth).toEqual({
      mode: 'jwt',
      key: { kind: 'jwks', url: 'https://id.example.com/.well-known/jwks.json' },
      issuer: 'https://id.example.com/',
      audience: 'tusbox',
      adminClaim: { name: 'roles', value: 'admin' },
    })
    expect(config.corsAllowedOrigins).toEqual(['https://app.example.com', 'http://localhost:5173'])
    expect(loadConfig({ CORS_ALLOWED_ORIGINS: '*' }).corsAllowedOrigins).toBe('*')
  })

  it('refuses to serve anonymous uploads from a shared database unless allowed, and half-configured authentication', () => {
    const shared = loadConfig({ DATABASE_URL: 'postgres://db/tusbox' })
    expect(() => checkAnonymousServing(shared, {})).toThrow(
      /AUTH_MODE=\(unset\): none with DATABASE_URL set lets anyone upload/,
    )
    const allowed = { DATABASE_URL: 'postgres://db/tusbox', AUTH_ALLOW_ANONYMOUS: 'true' }
    expect(() => checkAnonymousServing(loadConfig(allowed), allowed)).not.toThrow()
    expect(() => checkAnonymousServing(loadConfig({}), {})).not.toThrow()
    expect(() =>
      loadConfig({
        AUTH_MODE: 'jwt',
        AUTH_JWT_SECRET: 'short',
        CORS_ALLOWED_ORIGINS: 'https://app.example.com/path',
        MAX_BYTES_IN_FLIGHT_PER_OWNER: '1000',
      }),
    ).toThrow(
      expect.objectContaining({
        problems: [
          'AUTH_JWT_SECRET=(hidden): must be at least 32 characters (HS256 key)',
          'CORS_ALLOWED_ORIGINS="https://app.example.com/path": must be * or origins such as https://app.example.com (scheme, host and port only), separated by commas; not understood: https://app.example.com/path',
          'MAX_BYTES_IN_FLIGHT_PER_OWNER="1000": must be at least FILE_UPLOAD_MAX_SIZE (52428800), or no file of the largest size could start',
        ],
      }),
    )
    expect(() => loadConfig({ AUTH_JWT_SECRET: 'x'.repeat(32) })).toThrow(
      /AUTH_JWT_SECRET=\(hidden\): is set but AUTH_MODE=none ignores it/,
    )
  })

  it('names a bad secret setting and its rule but never prints its value', () => {
    const secrets = {
      AUTH_MODE: 'jwt',
      AUTH_JWT_SECRET: 'jwt-secret-too-short',
      WEBHOOK_URLS: 'https://hooks.example.com/in',
      WEBHOOK_SECRET: 'hook-short',
      AWS_SECRET_ACCESS_KEY: 'aws-secret-value',
      DATABASE_URL: 'mysql://admin:db-password@db/tusbox',
    }
    let message = ''
    try {
      loadConfig(secrets)
    } catch (error) {
      message = (error as ConfigError).message
    }
    expect(message).toContain('AUTH_JWT_SECRET=(hidden): must be at least 32 characters')
    expect(message).toContain('WEBHOOK_SECRET=(hidden): must be at least 16 characters')
    expect(message).toContain('DATABASE_URL=(hidden): must start with postgres://')
    expect(message).toContain('AWS_ACCESS_KEY_ID=(unset): must be set together with its pair')
    for (const value of ['jwt-secret-too-short', 'hook-short', 'aws-secret-value', 'db-password']) {
      expect(message).not.toContain(value)
    }
  })

  it('needs an audience and an https key URL (http on loopback only) with AUTH_JWKS_URL', () => {
    const jwks = { AUTH_MODE: 'jwt', AUTH_JWKS_URL: 'https://id.example.com/jwks.json' }
    expect(() => loadConfig(jwks)).toThrow(
      /AUTH_AUDIENCE=\(unset\): is required with AUTH_JWKS_URL/,
    )
    expect(() =>
      loadConfig({
        ...jwks,
        AUTH_AUDIENCE: 'tusbox',
        AUTH_JWKS_URL: 'http://id.example.com/jwks.json',
      }),
    ).toThrow(/AUTH_JWKS_URL="http:\/\/id.example.com\/jwks.json": must be an https:\/\/ URL/)
    for (const host of ['localhost:8080', '127.0.0.1:8080', '[::1]:8080']) {
      const config = loadConfig({
        ...jwks,
        AUTH_AUDIENCE: 'tusbox',
        AUTH_JWKS_URL: `http://${host}/jwks.json`,
      })
      expect(config.auth.mode).toBe('jwt')
    }
    const aged = loadConfig({ ...jwks, AUTH_AUDIENCE: 'tusbox', AUTH_MAX_TOKEN_AGE: '1h' })
    expect(aged.auth).toMatchObject({ maxTokenAgeSeconds: 3600 })
  })
})
