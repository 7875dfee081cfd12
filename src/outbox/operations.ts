import type { JobQueue, QueueStats } from '../jobs/boss.ts'
import { AppError } from '../lib/errors.ts'
import type { OutboxRepository, OutboxStats } from './outbox.repository.ts'

export interface OutboxOverview {
  readonly events: OutboxStats
  readonly queues: readonly QueueStats[]
}

/** What ops look at and do: `tusbox outbox …`, `tusbox jobs` and GET /api/admin/outbox. */
export class OutboxOperations {
  readonly #outbox: OutboxRepository
  readonly #jobs: JobQueue
  readonly #queueStats: () => Promise<QueueStats[]>

  constructor(outbox: OutboxRepository, jobs: JobQueue, queueStats: () => Promise<QueueStats[]>) {
    this.#outbox = outbox
    this.#jobs = jobs
    this.#queueStats = queueStats
  }

  async overview(): Promise<OutboxOverview> {
    return { events: await this.#outbox.stats(), queues: await this.#queueStats() }
  }

  /** Dead events get their attempts back and are queued again; returns their ids. */
  async redrive(
    target: { readonly eventId: string } | { readonly allDead: true },
  ): Promise<string[]> {
    if ('eventId' in target) {
      const event = await this.#outbox.find(target.eventId)
      if (!event)
        throw new AppError('not_found', 'event_not_found', `No event with id ${target.eventId}.`)
      if (event.status !== 'dead') {
        throw new AppError(
          'conflict',
          'event_not_dead',
          `Event ${target.eventId} is ${event.status}, not dead.`,
        )
      }
    }
    const ids = await this.#outbox.redrive(target)
    for (const eventId of ids)
      await this.#jobs.enqueue('outbox.deliver', { eventId }, { singletonKey: eventId })
    return ids
  }
}
