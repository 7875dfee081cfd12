import type { Logger } from './logger.ts'

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

  /** The first SIGINT or SIGTERM stops everything and exits; a second one exits at once. */
  exitOnSignals(): void {
    let signalled = false
    const handle = (signal: NodeJS.Signals) => {
      if (signalled) {
        this.#logger.warn('second signal: exiting without a clean shutdown', { signal })
        process.exit(1)
      }
      signalled = true
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
