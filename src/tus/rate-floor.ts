/**
 * The slowest a buffered body may arrive: at least `minBytesPerSecond` on average over each
 * window of `windowMs`. A body that trickles below it holds its temporary file and its share of
 * the buffer budget for nothing; the idle timeout never fires while one byte arrives now and then
 * (security review M1: one byte every 45 s kept 21 MB on disk for minutes). Whole windows, not a
 * per-read check, so that a real link that stalls for a few seconds (a tunnel, a cell handover)
 * catches up within its window. docs/security.md explains the defaults.
 */
export interface RateFloorOptions {
  readonly minBytesPerSecond: number
  readonly windowMs: number
}

export interface RateFloorWatch {
  /** Counts bytes as they arrive. */
  received(bytes: number): void
  /** True once a window closed below the floor. */
  readonly tripped: boolean
  stop(): void
}

/** Calls `onTooSlow` once, at the end of the first window whose bytes fall short of the floor. */
export function watchRateFloor(options: RateFloorOptions, onTooSlow: () => void): RateFloorWatch {
  const windowFloor = (options.minBytesPerSecond * options.windowMs) / 1000
  let inWindow = 0
  let tripped = false
  const timer = setInterval(() => {
    if (inWindow >= windowFloor) {
      inWindow = 0
      return
    }
    tripped = true
    clearInterval(timer)
    onTooSlow()
  }, options.windowMs)
  // A body in flight must not keep a stopping process alive.
  timer.unref()
  return {
    received: (bytes) => {
      inWindow += bytes
    },
    get tripped() {
      return tripped
    },
    stop: () => clearInterval(timer),
  }
}
