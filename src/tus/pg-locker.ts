import { ERRORS, type Lock, type Locker, type RequestRelease } from '@tus/utils'
import pg from 'pg'
import { advisoryKey } from '../db/advisory-lock.ts'
import type { ConnectionSettings } from '../db/knex.ts'
import { type Logger, withoutLogContext } from '../lib/logger.ts'

/** NOTIFY channels (per database): a waiter asks the holder to let go; a holder says it did. */
const RELEASE_REQUESTED = 'tusbox_lock_release_requested'
const RELEASED = 'tusbox_lock_released'

/** MemoryLocker's default: how long a request waits for an upload before ERR_LOCK_TIMEOUT. */
const ACQUIRE_TIMEOUT_MS = 30_000

/**
 * How long a waiter waits without news before trying again (and asking again). Releases are
 * announced, so this only matters when an announcement cannot come: a holder whose process died
 * (Postgres drops its locks with its session), or a request that reached the holder while it was
 * still acquiring.
 */
const RETRY_INTERVAL_MS = 1_000

/** Lock queries take microseconds; one that hangs means the connection is gone. */
const QUERY_TIMEOUT_MS = 10_000
const CONNECT_TIMEOUT_MS = 10_000

export interface PgLockerOptions {
  readonly connection: ConnectionSettings
  readonly logger: Logger
  readonly acquireTimeoutMs?: number
  readonly retryIntervalMs?: number
  readonly watcher?: LockWatcher
}

/**
 * Told when a request on another instance may have changed an upload, for what this process
 * keeps about uploads in memory (the digests of their bytes). Every instance hears every release:
 * they all LISTEN for them to wake their waiters.
 */
export interface LockWatcher {
  /** A request on another instance held this upload and let it go. */
  releasedElsewhere(id: string): void
  /** The session that hears releases ended: some may have gone unheard. */
  mayHaveMissedReleases(): void
}

/** One upload id held, or being tried, by this process. */
interface Holding {
  /** Set once Postgres granted the lock; undefined while it is being tried. */
  session: Session | undefined
  requestRelease: RequestRelease | undefined
}

/**
 * The @tus/server Locker for several tusbox instances on one database: one request at a time per
 * upload, across processes. MemoryLocker only excludes requests inside one process, so two PATCHes
 * reaching two instances would write the same offset at once.
 *
 * - Exclusion: a session-level advisory lock on a 64-bit key derived from the upload id. All locks
 *   of a process live on ONE Postgres session, which also LISTENs: a session may hold any number
 *   of advisory locks, so the connection count stays constant however many uploads are in flight
 *   (a connection per request would cap concurrent uploads at the Postgres connection budget, and
 *   a slow mobile PATCH holds its lock for minutes). Advisory locks are re-entrant per session, so
 *   requests inside one process are first excluded by the in-memory map; only then is Postgres
 *   asked, so the shared session never "acquires" a lock it already holds.
 * - Release requests: tus-js-client resuming after a network drop must not wait for the server to
 *   notice the dead connection. A waiter calls the holder's requestRelease (in-process) or NOTIFYs
 *   the upload id (another process: its session hears it and calls the holder's requestRelease),
 *   which makes @tus/server end the holder's request after `lockDrainTimeout`; its unlock NOTIFYs
 *   the waiters. The same contract as tus-node-server's MemoryLocker (tus/tus-node-server#514) and
 *   the Redis lockers proposed upstream (tus/tus-node-server#846, tus/tusd#1129).
 * - Failure: any lock query that fails ends the session, so Postgres drops every lock it held and
 *   none can outlive a query whose outcome is unknown; the holders on that session are asked to
 *   stop, since they no longer exclude anyone. The next lock opens a new session.
 */
export class PgLocker implements Locker {
  readonly #config: pg.ClientConfig
  readonly #logger: Logger
  readonly #acquireTimeoutMs: number
  readonly #retryIntervalMs: number
  readonly #watcher: LockWatcher | undefined
  readonly #held = new Map<string, Holding>()
  readonly #wakers = new Map<string, Set<() => void>>()
  #session: Promise<Session> | undefined
  #closed = false

  constructor(options: PgLockerOptions) {
    this.#acquireTimeoutMs = options.acquireTimeoutMs ?? ACQUIRE_TIMEOUT_MS
    this.#retryIntervalMs = options.retryIntervalMs ?? RETRY_INTERVAL_MS
    this.#config = clientConfig(options.connection)
    this.#logger = options.logger
    this.#watcher = options.watcher
  }

  newLock(id: string): Lock {
    let holding: Holding | undefined
    return {
      lock: async (stopSignal, requestRelease) => {
        holding = await this.#acquire(id, stopSignal, requestRelease)
      },
      unlock: async () => {
        const held = holding
        if (!held || this.#held.get(id) !== held) throw new Error('Releasing an unlocked lock!')
        holding = undefined
        await this.#release(id, held)
      },
    }
  }

  /** Ends the session, which releases every lock this process holds; waiting requests fail. */
  async close(): Promise<void> {
    this.#closed = true
    const session = this.#session
    this.#session = undefined
    for (const id of [...this.#wakers.keys()]) this.#wake(id)
    const opened = await session?.catch(() => undefined)
    await opened?.end()
  }

  async #acquire(
    id: string,
    stopSignal: AbortSignal,
    requestRelease: RequestRelease,
  ): Promise<Holding> {
    const key = advisoryKey(id)
    const deadline = Date.now() + this.#acquireTimeoutMs
    for (;;) {
      stopSignal.throwIfAborted()
      const left = deadline - Date.now()
      if (left <= 0) throw ERRORS.ERR_LOCK_TIMEOUT
      if (this.#closed) throw new Error('the upload lock service is closed')
      // Listen before trying, so a release between a failed try and the wait is not missed.
      const released = this.#nextRelease(id)
      try {
        const local = this.#held.get(id)
        if (local) {
          await this.#askToRelease(local)
        } else {
          const holding = await this.#tryAcquire(id, key, requestRelease, released.wake)
          if (holding) return holding
        }
        await firstOf(released.promise, Math.min(this.#retryIntervalMs, left), stopSignal)
      } finally {
        released.dispose()
      }
    }
  }

  /** Reserves the id in this process, then asks Postgres; undefined when another process has it. */
  async #tryAcquire(
    id: string,
    key: string,
    requestRelease: RequestRelease,
    ownWaker: () => void,
  ): Promise<Holding | undefined> {
    const holding: Holding = { session: undefined, requestRelease: undefined }
    this.#held.set(id, holding)
    let acquired = false
    try {
      const session = await this.#currentSession()
      acquired = await session.tryLock(key)
      if (acquired) {
        holding.session = session
        holding.requestRelease = requestRelease
        return holding
      }
      await session.notify(RELEASE_REQUESTED, id)
      return undefined
    } finally {
      if (!acquired) this.#held.delete(id)
      // Waiters in this process either try now or ask the new holder to release.
      this.#wake(id, ownWaker)
    }
  }

  async #release(id: string, holding: Holding): Promise<void> {
    try {
      // A session that ended took its locks with it: there is nothing left to release.
      if (holding.session?.open) await holding.session.unlock(advisoryKey(id), id)
    } catch (error) {
      this.#logger.warn('could not release an upload lock; its session was ended instead', {
        error,
      })
    } finally {
      this.#held.delete(id)
      this.#wake(id)
    }
  }

  #currentSession(): Promise<Session> {
    if (this.#closed) return Promise.reject(new Error('the upload lock service is closed'))
    if (!this.#session) {
      // Opened by whichever request locks first, the session outlives it: its events must not
      // log with that request's id.
      const opening: Promise<Session> = withoutLogContext(() =>
        Session.open(this.#config, {
          notification: (channel, id, fromItself) => this.#onNotification(channel, id, fromItself),
          ended: (session) => {
            if (this.#session === opening) this.#session = undefined
            this.#onSessionEnded(session)
          },
        }),
      )
      this.#session = opening
      opening.catch(() => {
        if (this.#session === opening) this.#session = undefined
      })
    }
    return this.#session
  }

  #onNotification(channel: string, id: string, fromItself: boolean): void {
    if (channel === RELEASED) {
      // A release is announced by the statement that makes it, and Postgres sends this session
      // the notifications committed before any later query of ours answers. So a request here
      // that took the upload after another instance let it go has heard of it by the time its
      // own unlock answers, which @tus/server awaits before it runs the finish.
      if (!fromItself) this.#watcher?.releasedElsewhere(id)
      this.#wake(id)
      return
    }
    const holding = this.#held.get(id)
    if (holding?.session) void this.#askToRelease(holding)
  }

  #onSessionEnded(session: Session): void {
    this.#watcher?.mayHaveMissedReleases()
    const lost = [...this.#held.values()].filter((holding) => holding.session === session)
    if (lost.length === 0) return
    if (!this.#closed) {
      this.#logger.warn('lost the Postgres session holding upload locks; their requests stop', {
        locks: lost.length,
      })
    }
    for (const holding of lost) void this.#askToRelease(holding)
  }

  /** Calls the holder's requestRelease, which @tus/server answers by ending its request. */
  async #askToRelease(holding: Holding): Promise<void> {
    try {
      await holding.requestRelease?.()
    } catch (error) {
      this.#logger.warn('asking an upload lock holder to release failed', { error })
    }
  }

  /** A promise that resolves when `id` may have become free. */
  #nextRelease(id: string): { promise: Promise<void>; wake: () => void; dispose(): void } {
    const { promise, resolve: wake } = Promise.withResolvers<void>()
    const wakers = this.#wakers.get(id) ?? new Set()
    wakers.add(wake)
    this.#wakers.set(id, wakers)
    return {
      promise,
      wake,
      dispose: () => {
        wakers.delete(wake)
        if (wakers.size === 0 && this.#wakers.get(id) === wakers) this.#wakers.delete(id)
      },
    }
  }

  #wake(id: string, except?: () => void): void {
    for (const wake of this.#wakers.get(id) ?? []) if (wake !== except) wake()
  }
}

interface SessionEvents {
  /** `fromItself`: this very session sent it (Postgres delivers a session its own notifications). */
  notification(channel: string, payload: string, fromItself: boolean): void
  ended(session: Session): void
}

/** The one connection a PgLocker holds its locks on and listens with. */
class Session {
  readonly #client: pg.Client
  readonly #events: SessionEvents
  /** pg 8 deprecates overlapping queries on one client (pg 9 refuses them): they run in turn. */
  #previous: Promise<unknown> = Promise.resolve()
  #open = true
  /** The backend's process id, which Postgres puts on each notification it sends. */
  #pid: number | undefined

  private constructor(client: pg.Client, events: SessionEvents) {
    this.#client = client
    this.#events = events
  }

  static async open(config: pg.ClientConfig, events: SessionEvents): Promise<Session> {
    const client = new pg.Client(config)
    const session = new Session(client, events)
    // An idle client reports a lost connection as an 'error' event; unhandled, it kills the process.
    client.on('error', () => void session.end())
    client.on('end', () => session.#ended())
    client.on('notification', ({ channel, payload, processId }) =>
      events.notification(channel, payload ?? '', processId === session.#pid),
    )
    try {
      await client.connect()
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')
      session.#pid = rows[0]?.pid
      await client.query(`LISTEN ${RELEASE_REQUESTED}; LISTEN ${RELEASED}`)
    } catch (error) {
      await session.end()
      throw error
    }
    return session
  }

  get open(): boolean {
    return this.#open
  }

  async tryLock(key: string): Promise<boolean> {
    const { rows } = await this.#query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS locked',
      [key],
    )
    return rows[0]?.locked === true
  }

  async unlock(key: string, id: string): Promise<void> {
    await this.#query('SELECT pg_advisory_unlock($1::bigint), pg_notify($2, $3)', [
      key,
      RELEASED,
      id,
    ])
  }

  async notify(channel: string, payload: string): Promise<void> {
    await this.#query('SELECT pg_notify($1, $2)', [channel, payload])
  }

  /** Postgres releases every advisory lock of a session when it ends. */
  async end(): Promise<void> {
    this.#ended()
    await this.#client.end().catch(() => undefined)
  }

  async #query<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const result = this.#previous.then(() => this.#client.query<R>(text, values))
    this.#previous = result.catch(() => undefined)
    try {
      return await result
    } catch (error) {
      // Whether a failed lock or unlock took effect is unknown: ending the session settles it.
      await this.end()
      throw error
    }
  }

  #ended(): void {
    if (!this.#open) return
    this.#open = false
    this.#events.ended(this)
  }
}

/** Resolves on the first of: `promise`, `ms` elapsed, `signal` aborted. */
function firstOf(promise: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve()
      return
    }
    const timer = setTimeout(finish, ms)
    function finish() {
      clearTimeout(timer)
      signal.removeEventListener('abort', finish)
      resolve()
    }
    signal.addEventListener('abort', finish, { once: true })
    void promise.then(finish)
  })
}

function clientConfig(connection: ConnectionSettings): pg.ClientConfig {
  const target =
    typeof connection === 'string'
      ? { connectionString: connection }
      : {
          host: connection.host,
          port: connection.port,
          user: connection.user,
          password: connection.password,
          database: connection.database,
        }
  return {
    ...target,
    application_name: 'tusbox-locker',
    keepAlive: true,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
  }
}
