import { checkAnonymousServing, loadConfig } from '../config.ts'
import { openDatabase } from '../container.ts'
import type { Logger } from '../lib/logger.ts'
import { withContainer } from './run.ts'

/** Output for people and scripts alike: one JSON document on stdout. */
function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

export async function migrate(logger: Logger): Promise<number> {
  const database = await openDatabase(loadConfig(), logger)
  await database.close()
  logger.info('migrations are up to date')
  return 0
}

/**
 * Validates the settings as `tusbox serve` does, without starting anything: Docker Compose runs
 * it once before the server and the worker, so a configuration error stops the stack at once
 * with its message instead of restarting them in a loop.
 */
export function checkConfig(): Promise<number> {
  checkAnonymousServing(loadConfig())
  process.stdout.write('tusbox: the configuration is valid\n')
  return Promise.resolve(0)
}

export async function purgeNow(logger: Logger): Promise<number> {
  print(await withContainer(logger, (container) => container.handlers['uploads.purge']({})))
  return 0
}

export async function outboxStats(logger: Logger): Promise<number> {
  print((await withContainer(logger, (container) => container.operations.overview())).events)
  return 0
}

export async function jobStats(logger: Logger): Promise<number> {
  print((await withContainer(logger, (container) => container.operations.overview())).queues)
  return 0
}

export async function outboxRedrive(
  logger: Logger,
  target: { eventId: string } | { allDead: true },
): Promise<number> {
  const ids = await withContainer(logger, (container) => container.operations.redrive(target))
  print({ redriven: ids.length, eventIds: ids })
  return 0
}
