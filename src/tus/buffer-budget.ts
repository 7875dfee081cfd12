/**
 * How many bytes of checksummed bodies this process may hold on disk (CHECKSUM_TEMP_DIR) at
 * once, in total and per owner. A body reserves its bound before its first byte is buffered and
 * gives it back once @tus/server has answered, so the directory never holds more than the total,
 * however many clients send at once (security review M1).
 */
export interface BufferBudgetLimits {
  readonly totalBytes: number
  /** An owner's share of the total; anonymous uploads (AUTH_MODE=none) have no owner to count. */
  readonly perOwnerBytes: number
}

export interface BufferReservation {
  readonly bytes: number
  release(): void
}

/** `total`: the process is full (503). `owner`: this owner holds its share (429). */
export type ReservationRefusal = 'total' | 'owner'

export class BufferBudget {
  readonly limits: BufferBudgetLimits
  #used = 0
  readonly #usedByOwner = new Map<string, number>()

  constructor(limits: BufferBudgetLimits) {
    this.limits = limits
  }

  /** The most one body may reserve: more could never fit, however long the client waits. */
  largestBody(owner: string | null): number {
    return owner === null
      ? this.limits.totalBytes
      : Math.min(this.limits.totalBytes, this.limits.perOwnerBytes)
  }

  get usedBytes(): number {
    return this.#used
  }

  reserve(owner: string | null, bytes: number): BufferReservation | ReservationRefusal {
    const ownerUsed = owner === null ? 0 : (this.#usedByOwner.get(owner) ?? 0)
    if (owner !== null && ownerUsed + bytes > this.limits.perOwnerBytes) return 'owner'
    if (this.#used + bytes > this.limits.totalBytes) return 'total'
    this.#used += bytes
    if (owner !== null) this.#usedByOwner.set(owner, ownerUsed + bytes)
    let released = false
    return {
      bytes,
      release: () => {
        if (released) return
        released = true
        this.#used -= bytes
        if (owner === null) return
        const left = (this.#usedByOwner.get(owner) ?? bytes) - bytes
        if (left > 0) this.#usedByOwner.set(owner, left)
        else this.#usedByOwner.delete(owner)
      },
    }
  }
}
