import { type DeliverEventDeps, deliverEvent } from '../../outbox/deliver-event.ts'
import type { JobQueue } from '../boss.ts'

export interface DeliverJobResult {
  /** When the event's failed destinations are tried again; null once nothing is left to send. */
  readonly nextAttemptAt: string | null
}

/** Delivers what is due now, then queues the event again for its earliest pending retry. */
export function outboxDeliverHandler(deps: DeliverEventDeps & { readonly jobs: JobQueue }) {
  return async ({ eventId }: { eventId: string }): Promise<DeliverJobResult> => {
    const { retryAt } = await deliverEvent(deps, eventId)
    if (!retryAt) return { nextAttemptAt: null }
    await deps.jobs.enqueue(
      'outbox.deliver',
      { eventId },
      { singletonKey: eventId, startAfter: retryAt },
    )
    return { nextAttemptAt: retryAt.toISOString() }
  }
}
