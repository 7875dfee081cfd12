import type { Logger } from './logger.ts'

/**
 * A terminal's Ctrl-C reaches every process of its foreground group, and npm forwards the one it
 * got as well, so tusbox under `npm start` sees two SIGINTs a few milliseconds apart (systemd and
 * `docker stop` on a group do the same with SIGTERM). A repeat within this window is that same
 * keystroke; a person pressing Ctrl-C again to force the exit takes longer.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 1_000

interface Stoppable {
  readonly name: string
  readonly stop: () => Promise<void>
}

/**
 * What a command has started, stopped in reverse order: the HTTP server before the jobs, the
 * jobs before the pool, the pool before the database. Start-up failures and signals both go
 * through stop(), so nothing is left running (such as the embedded PostgreSQL) on any path.
 */
export class Lifecycle {
  readonly #logger: Logger
  readonly #started: Stoppable[] = []
  #stopping: Promise<boolean> | undefined

  constructor(logger: Logger) {
    this.#logger = logger
  }

  /** Records how to stop what just started; after stop() began, stops it at once. */
  async started(name: string, stop: () => Promise<void>): Promise<void> {
    this.#started.push({ name, stop })
    if (this.#stopping) await this.stop()
  }

  /** Resolves true when every step stopped cleanly. Safe to call more than once. */
  stop(): Promise<boolean> {
    const previous = this.#stopping ?? Promise.resolve(true)
    const stopping = previous.then(async (cleanSoFar) => (await this.#stopAll()) && cleanSoFar)
    this.#stopping = stopping
    return stopping
  }

  /**
   * The first SIGINT or SIGTERM stops everything and exits; a second one exits at once, unless it
   * came within REPEATED_SIGNAL_WINDOW_MS of the first (the same Ctrl-C delivered twice).
   */
  exitOnSignals(): void {
    let firstSignalAt: number | undefined
    const handle = (signal: NodeJS.Signals) => {
      const now = performance.now()
      if (firstSignalAt !== undefined) {
        if (now - firstSignalAt < REPEATED_SIGNAL_WINDOW_MS) {
          this.#logger.info('ignored a repeated signal: already shutting down', { signal })
          return
        }
        this.#logger.warn('second signal: exiting without a clean shutdown', { signal })
        process.exit(1)
      }
      firstSignalAt = now
      this.#logger.info('shutting down', { signal })
      void this.stop().then((clean) => {
        this.#logger.info(clean ? 'stopped' : 'stopped with errors')
        process.exit(clean ? 0 : 1)
      })
    }
    process.on('SIGINT', handle)
    process.on('SIGTERM', handle)
  }

  async #stopAll(): Promise<boolean> {
    let clean = true
    for (let next = this.#started.pop(); next; next = this.#started.pop()) {
      try {
        await next.stop()
      } catch (error) {
        clean = false
        this.#logger.error(`could not stop ${next.name}`, { error })
      }
    }
    return clean
  }
}
