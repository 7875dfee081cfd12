import type { Logger } from '../../lib/logger.ts'
import type { OutboxRepository } from '../../outbox/outbox.repository.ts'
import type { JobQueue } from '../boss.ts'

/** Events pending longer than this may have lost their job (a crash between commit and fetch). */
export const SWEEP_AFTER_MS = 60_000
const SWEEP_LIMIT = 1000

/**
 * Queues a delivery job for every event pending over a minute. The deliver queue keeps one queued
 * job per event, so an event whose job (or retry) is already waiting is left as it is.
 */
export function outboxSweepHandler(deps: {
  outbox: OutboxRepository
  jobs: JobQueue
  logger: Logger
}) {
  return async (): Promise<number> => {
    const ids = await deps.outbox.stalePendingEventIds(
      new Date(Date.now() - SWEEP_AFTER_MS),
      SWEEP_LIMIT,
    )
    let queued = 0
    for (const eventId of ids) {
      if (await deps.jobs.enqueue('outbox.deliver', { eventId }, { singletonKey: eventId }))
        queued++
    }
    if (queued > 0) deps.logger.info('re-queued stranded events', { queued })
    return queued
  }
}
