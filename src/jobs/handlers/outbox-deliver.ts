import { type DeliverEventDeps, deliverEvent } from '../../outbox/deliver-event.ts'
import type { JobQueue } from '../boss.ts'

/** Delivers what is due now, then queues the event again for its earliest pending retry. */
export function outboxDeliverHandler(deps: DeliverEventDeps & { readonly jobs: JobQueue }) {
  return async ({ eventId }: { eventId: string }): Promise<void> => {
    const { retryAt } = await deliverEvent(deps, eventId)
    if (retryAt)
      await deps.jobs.enqueue(
        'outbox.deliver',
        { eventId },
        { singletonKey: eventId, startAfter: retryAt },
      )
  }
}
