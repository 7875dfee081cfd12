import { AsyncLocalStorage } from 'node:async_hooks'
import type { Locker } from '@tus/utils'

/**
 * What one HTTP request on the upload endpoint lets a store remember while it runs: what it
 * learnt of each upload (so a PATCH reads an upload's state once, not once per step), and the
 * length of the request's body (so a store can stream it into parts of known length).
 *
 * What a store learnt holds only while the request holds the upload's lock (PgLocker orders
 * every request of an upload across instances): taking the lock forgets what was read before it
 * (another request may have written since), and letting it go forgets all but what no request
 * can change any more (a complete upload, for the finish that follows in the same request). A
 * request that creates an upload holds no lock (nobody else knows its id yet). Nothing outlives
 * the request: several instances serve one upload, without sticky sessions.
 */
export class RequestScope {
  readonly #remembered = new Map<string, { value: unknown; outlivesLock: boolean }>()
  #bodyLength: number | undefined

  constructor(bodyLength: number | undefined) {
    this.#bodyLength = bodyLength
  }

  /** The body's declared length, once: a second write in the same request streams unknown bytes. */
  takeBodyLength(): number | undefined {
    const length = this.#bodyLength
    this.#bodyLength = undefined
    return length
  }

  recall<T>(key: string): T | undefined {
    return this.#remembered.get(key)?.value as T | undefined
  }

  /** `outlivesLock`: no request can change it any more, so it holds once the lock is let go. */
  remember(key: string, value: unknown, outlivesLock: boolean): void {
    this.#remembered.set(key, { value, outlivesLock })
  }

  forget(key: string): void {
    this.#remembered.delete(key)
  }

  lockTaken(): void {
    this.#remembered.clear()
  }

  lockReleased(): void {
    for (const [key, { outlivesLock }] of this.#remembered) {
      if (!outlivesLock) this.#remembered.delete(key)
    }
  }
}

const scopes = new AsyncLocalStorage<RequestScope>()

/** Runs one request's work inside its own scope. */
export function withinRequest<T>(request: Request, work: () => Promise<T>): Promise<T> {
  return scopes.run(new RequestScope(declaredBodyLength(request)), work)
}

/** The upload locks `locker` gives, telling the current request's scope when it holds one. */
export function scopedLocker(locker: Locker): Locker {
  return {
    newLock(id) {
      const lock = locker.newLock(id)
      return {
        async lock(stopSignal, requestRelease) {
          await lock.lock(stopSignal, requestRelease)
          currentRequestScope()?.lockTaken()
        },
        async unlock() {
          currentRequestScope()?.lockReleased()
          await lock.unlock()
        },
      }
    },
  }
}

/** The scope of the request this code runs for; undefined outside one (jobs, start-up). */
export function currentRequestScope(): RequestScope | undefined {
  return scopes.getStore()
}

function declaredBodyLength(request: Request): number | undefined {
  const length = request.headers.get('content-length')
  return length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined
}
