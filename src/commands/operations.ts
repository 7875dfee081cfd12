import { loadConfig } from '../config.ts'
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
