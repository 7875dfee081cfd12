import type { Logger } from './logger.ts'

export type ShutdownStep = { readonly name: string; readonly run: () => Promise<void> }

/**
 * On the first SIGINT or SIGTERM, runs the steps in order (stop accepting, finish work, close
 * pools, stop the database); a second signal exits at once.
 */
export function onShutdownSignal(logger: Logger, steps: () => readonly ShutdownStep[]): void {
  let stopping = false
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn('second signal: exiting without a clean shutdown', { signal })
      process.exit(1)
    }
    stopping = true
    logger.info('shutting down', { signal })
    void runSteps(logger, steps()).then((clean) => process.exit(clean ? 0 : 1))
  }
  process.on('SIGINT', handle)
  process.on('SIGTERM', handle)
}

async function runSteps(logger: Logger, steps: readonly ShutdownStep[]): Promise<boolean> {
  let clean = true
  for (const step of steps) {
    try {
      await step.run()
    } catch (error) {
      clean = false
      logger.error(`shutdown step failed: ${step.name}`, { error })
    }
  }
  logger.info(clean ? 'stopped' : 'stopped with errors')
  return clean
}
