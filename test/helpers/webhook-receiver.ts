import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * What the receiver does with the next requests: accept, accept after 50 ms (a slow endpoint,
 * which widens the window for overlapping deliveries), fail with 500, or never answer.
 */
export type ReceiverMode = 'accept' | 'slow' | 'fail' | 'hang'

const SLOW_ENDPOINT_MS = 50

export interface ReceivedWebhook {
  readonly eventId: string
  readonly eventType: string
  readonly timestamp: number
  readonly signatureValid: boolean
  readonly body: { id: string; type: string; data: Record<string, unknown> }
  readonly answeredWith: number | 'nothing'
}

/**
 * A real webhook endpoint on 127.0.0.1, deduping by event id as receivers are told to. It checks
 * each signature with the secret, and counts requests in flight per event, so a test can prove
 * that no event was delivered twice at the same time.
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = []
  /** Event ids accepted (answered 2xx) the first time they arrived. */
  readonly accepted = new Set<string>()
  mode: ReceiverMode = 'accept'
  maxInFlightPerEvent = 0
  readonly #secret: string
  readonly #inFlight = new Map<string, number>()
  readonly #hanging = new Set<ServerResponse>()
  readonly #waiters = new Set<() => void>()
  readonly #server = createServer((request, response) => void this.#handle(request, response))

  constructor(secret: string) {
    this.#secret = secret
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/hook`
  }

  async stop(): Promise<void> {
    for (const response of this.#hanging) response.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  /** Resolves once `condition` holds, re-checked after every request; rejects after `timeoutMs`. */
  waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
    if (condition()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return
        this.#waiters.delete(check)
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.#waiters.delete(check)
        reject(
          new Error(
            `the webhook receiver did not see what the test waited for (${this.received.length} requests)`,
          ),
        )
      }, timeoutMs)
      this.#waiters.add(check)
    })
  }

  countFor(eventId: string): number {
    return this.received.filter((webhook) => webhook.eventId === eventId).length
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of request) chunks.push(chunk as Buffer)
    const raw = Buffer.concat(chunks).toString('utf8')
    const eventId = String(request.headers['tusbox-event-id'])
    const timestamp = Number(request.headers['tusbox-timestamp'])
    const inFlight = (this.#inFlight.get(eventId) ?? 0) + 1
    this.#inFlight.set(eventId, inFlight)
    this.maxInFlightPerEvent = Math.max(this.maxInFlightPerEvent, inFlight)
    const mode = this.mode
    const answeredWith = mode === 'fail' ? 500 : mode === 'hang' ? 'nothing' : 200
    this.received.push({
      eventId,
      eventType: String(request.headers['tusbox-event-type']),
      timestamp,
      signatureValid: this.#verify(String(request.headers['tusbox-signature']), timestamp, raw),
      body: JSON.parse(raw),
      answeredWith,
    })
    if (answeredWith === 'nothing') {
      this.#hanging.add(response)
      response.on('close', () => this.#finish(eventId))
      this.#notify()
      return
    }
    if (mode === 'slow') await new Promise((resolve) => setTimeout(resolve, SLOW_ENDPOINT_MS))
    if (answeredWith === 200) this.accepted.add(eventId)
    response.writeHead(answeredWith).end()
    this.#finish(eventId)
    this.#notify()
  }

  #finish(eventId: string): void {
    this.#inFlight.set(eventId, (this.#inFlight.get(eventId) ?? 1) - 1)
  }

  /** The check a receiver makes: the signature over `<timestamp>.<body>`, and its age. */
  #verify(header: string, timestamp: number, body: string): boolean {
    const expected = `v1=${createHmac('sha256', this.#secret).update(`${timestamp}.${body}`).digest('hex')}`
    const fresh = Math.abs(Date.now() / 1000 - timestamp) < 300
    return (
      fresh &&
      header.length === expected.length &&
      timingSafeEqual(Buffer.from(header), Buffer.from(expected))
    )
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter()
  }
}
