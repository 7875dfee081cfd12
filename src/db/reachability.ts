import pg from 'pg'
import { isConnectionFailure } from './errors.ts'

/** How long start-up waits for the database to answer before saying it cannot reach it. */
const CONNECT_TIMEOUT_MS = 10_000

/**
 * Connects once to DATABASE_URL before the pool, migrations and pg-boss do, so that a database
 * that is down, unknown or refusing the credentials stops start-up with one line naming where it
 * looked, the setting, and the cause: knex would log a warning with a stack for each attempt
 * first, and say neither "database" nor "DATABASE_URL".
 */
export async function checkDatabaseReachable(url: string): Promise<void> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  })
  // A connection that fails after connecting (the server goes away) must not crash the process.
  client.on('error', () => undefined)
  try {
    await client.connect()
  } catch (error) {
    throw new DatabaseUnreachableError(url, error)
  } finally {
    await client.end().catch(() => undefined)
  }
}

export class DatabaseUnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    super(
      `cannot connect to the database at ${hostAndPort(url)} (DATABASE_URL): ${describeCause(cause)}. ${advice(cause)}`,
      { cause },
    )
    this.name = 'DatabaseUnreachableError'
  }
}

function hostAndPort(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`
  } catch {
    return 'an address that is not a URL'
  }
}

function describeCause(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause)
  const { code } = cause as { code?: unknown }
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED): nothing listens there'
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `unknown host (${code})`
  if (/timeout/i.test(cause.message)) return `no answer within ${CONNECT_TIMEOUT_MS / 1000} s`
  return typeof code === 'string' ? `${cause.message} (${code})` : cause.message
}

function advice(cause: unknown): string {
  return isConnectionFailure(cause) || /timeout/i.test(String((cause as Error)?.message))
    ? 'Start PostgreSQL there, or correct DATABASE_URL (unset it to use the embedded PostgreSQL).'
    : 'Correct DATABASE_URL (user, password, database name).'
}
