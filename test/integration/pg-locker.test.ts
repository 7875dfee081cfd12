import { ERRORS, type Lock } from '@tus/utils'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/lib/logger.ts'
import { PgLocker, type PgLockerOptions } from '../../src/tus/pg-locker.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts'
import { waitUntil } from '../helpers/wait.ts'

/** A lock as @tus/server holds it: with a requestRelease that records being asked to let go. */
interface Held {
  readonly lock: Lock
  /** Resolves the first time another request asks this holder to release. */
  readonly releaseRequested: Promise<void>
}

describe('PgLocker: upload locks in Postgres', () => {
  let database: TestDatabase
  let admin: pg.Pool
  const lockers: PgLocker[] = []

  beforeAll(async () => {
    database = await createTestDatabase()
    admin = new pg.Pool({ connectionString: database.url, max: 2 })
  })

  afterEach(async () => {
    await Promise.all(lockers.splice(0).map((locker) => locker.close()))
  })

  afterAll(async () => {
    await admin?.end()
    await database?.drop()
  })

  /** A locker of its own: what one tusbox process has. */
  function newLocker(options: Partial<PgLockerOptions> = {}): PgLocker {
    const locker = new PgLocker({
      connection: database.url,
      logger: createLogger('silent'),
      ...options,
    })
    lockers.push(locker)
    return locker
  }

  async function hold(
    locker: PgLocker,
    id: string,
    signal: AbortSignal = new AbortController().signal,
  ): Promise<Held> {
    const { promise, resolve } = Promise.withResolvers<void>()
    const lock = locker.newLock(id)
    await lock.lock(signal, resolve)
    return { lock, releaseRequested: promise }
  }

  /** Settles `promise` into a flag the test can read synchronously. */
  function track<T>(promise: Promise<T>): { settled: boolean; promise: Promise<T> } {
    const state = { settled: false, promise }
    promise.then(
      () => {
        state.settled = true
      },
      () => {
        state.settled = true
      },
    )
    return state
  }

  async function lockerSessions(): Promise<number[]> {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'tusbox-locker'`,
    )
    return rows.map((row) => row.pid)
  }

  async function advisoryLocksHeld(): Promise<number> {
    const { rows } = await admin.query<{ count: string }>(
      `SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    )
    return Number(rows[0]?.count)
  }

  /** The backends holding advisory locks in this database. */
  async function advisoryLockOwners(): Promise<number[]> {
    const { rows } = await admin.query<{ pid: number }>(
      `SELECT pid FROM pg_locks
        WHERE locktype = 'advisory' AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY pid`,
    )
    return rows.map((row) => row.pid)
  }

  it('grants a lock, holds it in Postgres, and releases it on unlock', async () => {
    const locker = newLocker()
    const first = await hold(locker, 'uploads/2026/01/a')
    expect(await advisoryLocksHeld()).toBe(1)

    await first.lock.unlock()

    expect(await advisoryLocksHeld()).toBe(0)
    const again = await hold(locker, 'uploads/2026/01/a')
    await again.lock.unlock()
  })

  it('makes a second request for the same upload ask the holder to release, and wait until it unlocks', async () => {
    const locker = newLocker()
    const first = await hold(locker, 'uploads/2026/01/b')

    const second = track(hold(locker, 'uploads/2026/01/b'))
    await first.releaseRequested
    expect(second.settled).toBe(false)

    await first.lock.unlock()
    const held = await second.promise
    expect(await advisoryLocksHeld()).toBe(1)
    await held.lock.unlock()
  })

  it('asks a holder in another process to release through NOTIFY, then takes the lock when it does', async () => {
    const holderProcess = newLocker()
    const waiterProcess = newLocker()
    const first = await hold(holderProcess, 'uploads/2026/01/c')
    const [holderSession] = await advisoryLockOwners()

    const second = track(hold(waiterProcess, 'uploads/2026/01/c'))
    await first.releaseRequested
    expect(second.settled).toBe(false)

    await first.lock.unlock()
    const held = await second.promise
    const owners = await advisoryLockOwners()
    expect(owners).toHaveLength(1)
    expect(owners).not.toContain(holderSession)
    await held.lock.unlock()
  })

  it('never lets two requests hold one upload at once, within and across processes', async () => {
    const processes = [newLocker(), newLocker(), newLocker()]
    let inside = 0
    let mostInside = 0
    const requests = Array.from({ length: 30 }, async (_, index) => {
      const locker = processes[index % processes.length] as PgLocker
      const lock = locker.newLock('uploads/2026/01/shared')
      await lock.lock(new AbortController().signal, () => undefined)
      inside++
      mostInside = Math.max(mostInside, inside)
      // A round trip to Postgres while holding: the others get every chance to slip in.
      await admin.query('SELECT 1')
      inside--
      await lock.unlock()
    })

    await Promise.all(requests)

    expect(mostInside).toBe(1)
    expect(await advisoryLocksHeld()).toBe(0)
  })

  it('does not make different uploads wait for each other', async () => {
    const one = newLocker()
    const other = newLocker()
    const held = await Promise.all([
      hold(one, 'uploads/2026/01/d1'),
      hold(one, 'uploads/2026/01/d2'),
      hold(other, 'uploads/2026/01/d3'),
    ])

    expect(await advisoryLocksHeld()).toBe(3)
    await Promise.all(held.map(({ lock }) => lock.unlock()))
    expect(await advisoryLocksHeld()).toBe(0)
  })

  it('fails with ERR_LOCK_TIMEOUT when the holder does not release in time', async () => {
    const holderProcess = newLocker()
    const waiterProcess = newLocker({ acquireTimeoutMs: 300, retryIntervalMs: 100 })
    const first = await hold(holderProcess, 'uploads/2026/01/e')

    const waiting = hold(waiterProcess, 'uploads/2026/01/e')

    await expect(waiting).rejects.toBe(ERRORS.ERR_LOCK_TIMEOUT)
    await first.releaseRequested
    await first.lock.unlock()
    const next = await hold(waiterProcess, 'uploads/2026/01/e')
    await next.lock.unlock()
  })

  it('stops waiting with the stop signal’s reason when the waiting request is aborted', async () => {
    const locker = newLocker()
    const first = await hold(locker, 'uploads/2026/01/f')
    const controller = new AbortController()
    const reason = new Error('the client went away')

    const waiting = hold(newLocker(), 'uploads/2026/01/f', controller.signal)
    await first.releaseRequested
    controller.abort(reason)

    await expect(waiting).rejects.toBe(reason)
    expect(await advisoryLocksHeld()).toBe(1)
    await first.lock.unlock()
    const next = await hold(locker, 'uploads/2026/01/f')
    await next.lock.unlock()
  })

  it('asks its holders to stop when its session is lost, and lets another process take over', async () => {
    const crashing = newLocker()
    const survivor = newLocker({ retryIntervalMs: 100 })
    const first = await hold(crashing, 'uploads/2026/01/g')
    const [crashingSession] = await advisoryLockOwners()
    const waiting = hold(survivor, 'uploads/2026/01/g')

    await admin.query('SELECT pg_terminate_backend($1)', [crashingSession])

    await first.releaseRequested
    const taken = await waiting
    // Unlocking a lock its lost session already dropped is not an error.
    await first.lock.unlock()
    expect(await advisoryLocksHeld()).toBe(1)
    await taken.lock.unlock()
    const again = await hold(crashing, 'uploads/2026/01/g')
    await again.lock.unlock()
  })

  it('keeps one session however many locks it takes, and leaves no lock or session after close', async () => {
    await waitUntil('the sessions of earlier tests have ended', async () => {
      return (await lockerSessions()).length === 0
    })
    const locker = newLocker()
    const other = newLocker()
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 20 }, async (_, index) => {
          const held = await hold(index % 2 ? locker : other, `uploads/2026/01/h${index % 5}`)
          await held.lock.unlock()
        }),
      )
    }

    expect(await advisoryLocksHeld()).toBe(0)
    expect(await lockerSessions()).toHaveLength(2)

    const lastHeld = await hold(locker, 'uploads/2026/01/h-last')
    await Promise.all([locker.close(), other.close()])
    await waitUntil('the locker sessions have ended', async () => {
      return (await lockerSessions()).length === 0
    })
    expect(await advisoryLocksHeld()).toBe(0)
    await expect(hold(locker, 'uploads/2026/01/h-other')).rejects.toThrow('closed')
    await lastHeld.lock.unlock()
  })

  /** A LockWatcher that records what it is told. */
  function recordingWatcher() {
    const heard = { releasedElsewhere: [] as string[], missed: 0 }
    return {
      heard,
      watcher: {
        releasedElsewhere: (id: string) => heard.releasedElsewhere.push(id),
        mayHaveMissedReleases: () => {
          heard.missed++
        },
      },
    }
  }

  it('has told its watcher of a release by another process by the time it holds the upload again, and never of its own', async () => {
    const here = recordingWatcher()
    const there = recordingWatcher()
    const thisProcess = newLocker({ watcher: here.watcher })
    const otherProcess = newLocker({ watcher: there.watcher })
    const own = await hold(thisProcess, 'uploads/2026/01/w')
    await own.lock.unlock()
    const elsewhere = await hold(otherProcess, 'uploads/2026/01/w')
    await elsewhere.lock.unlock()

    const again = await hold(thisProcess, 'uploads/2026/01/w')

    expect(here.heard.releasedElsewhere).toEqual(['uploads/2026/01/w'])
    await again.lock.unlock()
    const otherAgain = await hold(otherProcess, 'uploads/2026/01/w')
    expect(there.heard.releasedElsewhere).toEqual(['uploads/2026/01/w'])
    expect(here.heard.releasedElsewhere).toEqual(['uploads/2026/01/w'])
    await otherAgain.lock.unlock()
  })

  it('tells its watcher that releases may have gone unheard when its session is lost', async () => {
    const { heard, watcher } = recordingWatcher()
    const locker = newLocker({ watcher })
    const held = await hold(locker, 'uploads/2026/01/x')
    const [session] = await advisoryLockOwners()
    expect(heard.missed).toBe(0)

    await admin.query('SELECT pg_terminate_backend($1)', [session])

    // The locker tells its watcher, then asks its holders to stop.
    await held.releaseRequested
    expect(heard.missed).toBe(1)
    await held.lock.unlock()
  })

  it('refuses to unlock a lock it does not hold', async () => {
    const lock = newLocker().newLock('uploads/2026/01/i')
    await expect(lock.unlock()).rejects.toThrow('Releasing an unlocked lock!')
  })
})
