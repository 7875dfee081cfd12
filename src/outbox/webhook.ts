import { createHmac } from 'node:crypto'

export const SIGNATURE_HEADER = 'Tusbox-Signature'

/**
 * `v1=<hex>`: HMAC-SHA256 over `<timestamp>.<body>`, as Stripe signs webhooks: the timestamp is
 * signed too, so a receiver can refuse old (replayed) deliveries.
 */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

export interface WebhookRequest {
  readonly url: string
  readonly eventId: string
  readonly eventType: string
  readonly body: string
  readonly secret: string
  readonly timeoutMs: number
}

/** POSTs one event; resolves when the endpoint answered 2xx, rejects with the reason otherwise. */
export async function postWebhook(request: WebhookRequest, now = Date.now()): Promise<void> {
  const timestamp = Math.floor(now / 1000)
  let response: Response
  try {
    response = await fetch(request.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Tusbox-Event-Id': request.eventId,
        'Tusbox-Event-Type': request.eventType,
        'Tusbox-Timestamp': String(timestamp),
        [SIGNATURE_HEADER]: signWebhook(request.secret, timestamp, request.body),
      },
      body: request.body,
      redirect: 'manual',
      signal: AbortSignal.timeout(request.timeoutMs),
    })
  } catch (error) {
    const reason =
      error instanceof Error && error.name === 'TimeoutError'
        ? `no answer within ${request.timeoutMs} ms`
        : errorText(error)
    throw new Error(reason)
  }
  // Read the body so the connection can be reused; its content does not matter.
  await response.arrayBuffer().catch(() => undefined)
  if (response.status < 200 || response.status > 299) {
    throw new Error(`answered HTTP ${response.status}`)
  }
}

function errorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ''
  return `${error.message}${cause}`
}
