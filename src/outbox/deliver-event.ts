import type { Logger } from '../lib/logger.ts'
import type { EventEnvelope } from './events.ts'
import type { OutboxEvent, OutboxRepository } from './outbox.repository.ts'
import { postWebhook } from './webhook.ts'

/** Publishes an event to the pg-boss topic named by its type. */
export interface TopicPublisher {
  publish(envelope: EventEnvelope): Promise<void>
}

export type DeliveryDestinationKind = 'webhook' | 'topic'

/**
 * `failed`: the attempt failed and will be retried; `dead`: it was the last attempt allowed.
 */
export type DeliveryAttemptOutcome = 'delivered' | 'failed' | 'dead'

/** Where delivery attempts are counted (metrics); the container wires it. */
export interface DeliveryMetrics {
  deliveryAttempted(destination: DeliveryDestinationKind, outcome: DeliveryAttemptOutcome): void
}

export interface DeliveryPolicy {
  readonly webhookUrls: readonly string[]
  readonly webhookSecret: string | undefined
  readonly webhookTimeoutMs: number
  readonly maxAttempts: number
}

export interface DeliverEventDeps {
  readonly outbox: OutboxRepository
  readonly topics: TopicPublisher
  readonly policy: DeliveryPolicy
  readonly logger: Logger
  readonly metrics: DeliveryMetrics
  readonly now?: () => number
  readonly random?: () => number
}

export interface DeliveryOutcome {
  readonly event: OutboxEvent | undefined
  /** When the next attempt is due; undefined when nothing is left to retry. */
  readonly retryAt: Date | undefined
}

export const TOPIC_DESTINATION = 'pg-boss-topic'
const WEBHOOK_PREFIX = 'webhook:'

/**
 * Retries after about 10 s, doubling up to an hour, each delay jittered between half and all of
 * itself so that endpoints coming back are not hit by every event at once.
 */
const BASE_DELAY_MS = 10_000
const MAX_DELAY_MS = 3_600_000

/**
 * Delivers an event to every destination that still needs it: each webhook URL and the pg-boss
 * topic. Destinations are independent: one failing endpoint is retried alone, the others are
 * never sent the event again. At least once: a crash after a POST and before its record means
 * the POST is repeated, so receivers dedupe by event id.
 */
export async function deliverEvent(
  deps: DeliverEventDeps,
  eventId: string,
): Promise<DeliveryOutcome> {
  const event = await deps.outbox.find(eventId)
  if (event?.status !== 'pending') return { event, retryAt: undefined }
  await deps.outbox.ensureDeliveries(eventId, destinationsOf(deps.policy))
  const now = deps.now?.() ?? Date.now()
  for (const delivery of await deps.outbox.deliveries(eventId)) {
    if (delivery.status !== 'pending' || delivery.nextAttemptAt.getTime() > now) continue
    await attempt(deps, event, delivery.destination, delivery.attempts + 1)
  }
  const refreshed = await deps.outbox.refreshEventStatus(eventId)
  const waiting = (await deps.outbox.deliveries(eventId)).filter(
    (delivery) => delivery.status === 'pending',
  )
  const retryAt =
    waiting.length === 0
      ? undefined
      : new Date(Math.min(...waiting.map((d) => d.nextAttemptAt.getTime())))
  return { event: refreshed, retryAt }
}

function destinationsOf(policy: DeliveryPolicy): string[] {
  return [TOPIC_DESTINATION, ...policy.webhookUrls.map((url) => `${WEBHOOK_PREFIX}${url}`)]
}

async function attempt(
  deps: DeliverEventDeps,
  event: OutboxEvent,
  destination: string,
  attemptNumber: number,
) {
  const { envelope } = event
  const kind: DeliveryDestinationKind = destination === TOPIC_DESTINATION ? 'topic' : 'webhook'
  try {
    await send(deps, envelope, destination)
    await deps.outbox.markDelivered(envelope.id, destination)
    deps.metrics.deliveryAttempted(kind, 'delivered')
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    const retryAt =
      attemptNumber < deps.policy.maxAttempts ? nextAttemptAt(deps, attemptNumber) : undefined
    await deps.outbox.markFailed(envelope.id, destination, { error: reason, retryAt })
    deps.metrics.deliveryAttempted(kind, retryAt ? 'failed' : 'dead')
    deps.logger.warn(
      retryAt ? 'event delivery failed; will retry' : 'event delivery failed for good',
      {
        eventId: envelope.id,
        destination,
        attempt: attemptNumber,
        error: reason,
        retryAt: retryAt?.toISOString(),
      },
    )
  }
}

async function send(
  deps: DeliverEventDeps,
  envelope: EventEnvelope,
  destination: string,
): Promise<void> {
  if (destination === TOPIC_DESTINATION) return deps.topics.publish(envelope)
  const { webhookSecret, webhookTimeoutMs } = deps.policy
  if (!webhookSecret) throw new Error('WEBHOOK_SECRET is not set')
  await postWebhook({
    url: destination.slice(WEBHOOK_PREFIX.length),
    eventId: envelope.id,
    eventType: envelope.type,
    body: JSON.stringify(envelope),
    secret: webhookSecret,
    timeoutMs: webhookTimeoutMs,
  })
}

function nextAttemptAt(deps: DeliverEventDeps, attemptNumber: number): Date {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (attemptNumber - 1))
  const delay = ceiling / 2 + (deps.random?.() ?? Math.random()) * (ceiling / 2)
  return new Date((deps.now?.() ?? Date.now()) + delay)
}
