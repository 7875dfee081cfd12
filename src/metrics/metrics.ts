import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { JobMetrics } from '../jobs/worker.ts'
import type { Logger } from '../lib/logger.ts'
import type {
  DeliveryAttemptOutcome,
  DeliveryDestinationKind,
  DeliveryMetrics,
} from '../outbox/deliver-event.ts'
import type { TusMetrics } from '../tus/tus-server.ts'
import type { PurgeReport } from '../uploads/purge.ts'
import type { UploadProtocol } from '../uploads/types.ts'

/** What the database says at scrape time: cheap indexed counts, never a scan of history. */
export interface MetricsQueries {
  /** UPLOADING rows. */
  uploadsInProgress(): Promise<number>
  pendingEvents(): Promise<{
    readonly count: number
    readonly oldestAgeSeconds: number | null
  }>
}

/** The finish step takes from a millisecond (a small file on disk) to seconds (S3, large files). */
const FINISH_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/**
 * A scrape answers within Prometheus' default 10 s timeout even when the database does not:
 * the database figures are then NaN (unknown), and the counters are still served.
 */
const QUERY_TIMEOUT_MS = 3_000

const DESTINATIONS: readonly DeliveryDestinationKind[] = ['webhook', 'topic']
const ATTEMPT_OUTCOMES: readonly DeliveryAttemptOutcome[] = ['delivered', 'failed', 'dead']

/**
 * tusbox's Prometheus metrics, in a registry of their own (not prom-client's global one) so that
 * several containers can live in one process (tests). Implements the small ports the edges and
 * domain code report through, so that only this file knows prom-client.
 */
export class Metrics implements TusMetrics, DeliveryMetrics, JobMetrics {
  readonly #registry = new Registry()
  readonly #queries: MetricsQueries
  readonly #logger: Logger
  readonly #created: Counter<'protocol'>
  readonly #stored: Counter
  readonly #failed: Counter<'reason'>
  readonly #bytes: Counter
  readonly #inProgress: Gauge
  readonly #finishDuration: Histogram
  readonly #pendingEvents: Gauge
  readonly #oldestPendingAge: Gauge
  readonly #deliveries: Counter<'destination' | 'outcome'>
  readonly #jobFailures: Counter<'queue'>
  readonly #purged: Counter<'kind'>

  constructor(deps: {
    readonly queries: MetricsQueries
    readonly logger: Logger
    readonly queues: readonly string[]
  }) {
    this.#queries = deps.queries
    this.#logger = deps.logger
    const registers = [this.#registry]
    collectDefaultMetrics({ register: this.#registry })
    this.#created = new Counter({
      name: 'tusbox_uploads_created_total',
      help: 'Uploads created (row recorded as UPLOADING), by protocol: tus or rufh',
      labelNames: ['protocol'],
      registers,
    })
    this.#stored = new Counter({
      name: 'tusbox_uploads_stored_total',
      help: 'Uploads the finish step validated, hashed and stored',
      registers,
    })
    this.#failed = new Counter({
      name: 'tusbox_uploads_failed_total',
      help: 'Uploads the finish step refused, by failure code',
      labelNames: ['reason'],
      registers,
    })
    this.#bytes = new Counter({
      name: 'tusbox_upload_bytes_received_total',
      help: 'Bytes of tus PATCH and POST bodies passed to the store',
      registers,
    })
    this.#inProgress = new Gauge({
      name: 'tusbox_uploads_in_progress',
      help: 'Uploads still UPLOADING (from the database at scrape time; NaN when it did not answer)',
      registers,
    })
    this.#finishDuration = new Histogram({
      name: 'tusbox_finish_duration_seconds',
      help: 'Duration of the finish steps that stored or failed an upload, from their start until the upload was STORED or FAILED',
      buckets: FINISH_BUCKETS_SECONDS,
      registers,
    })
    this.#pendingEvents = new Gauge({
      name: 'tusbox_outbox_pending_events',
      help: 'Outbox events not yet delivered everywhere (from the database at scrape time)',
      registers,
    })
    this.#oldestPendingAge = new Gauge({
      name: 'tusbox_outbox_oldest_pending_age_seconds',
      help: 'Age of the oldest pending outbox event; 0 when none is pending',
      registers,
    })
    this.#deliveries = new Counter({
      name: 'tusbox_outbox_deliveries_total',
      help: 'Event delivery attempts by destination kind and outcome (failed: will be retried; dead: the last attempt failed)',
      labelNames: ['destination', 'outcome'],
      registers,
    })
    this.#jobFailures = new Counter({
      name: 'tusbox_job_failures_total',
      help: 'Background jobs whose handler threw, by queue',
      labelNames: ['queue'],
      registers,
    })
    this.#purged = new Counter({
      name: 'tusbox_purged_total',
      help: 'Rows purged: expired unfinished uploads, deleted outlived files, removed old failures',
      labelNames: ['kind'],
      registers,
    })
    // Every known series from the start, at 0: rate() and increase() need a first sample.
    for (const destination of DESTINATIONS) {
      for (const outcome of ATTEMPT_OUTCOMES) this.#deliveries.inc({ destination, outcome }, 0)
    }
    for (const queue of deps.queues) this.#jobFailures.inc({ queue }, 0)
    for (const kind of ['expired', 'deleted', 'failed_removed']) this.#purged.inc({ kind }, 0)
  }

  get contentType(): string {
    return this.#registry.contentType
  }

  /** The exposition text, with the database figures read now. */
  async render(): Promise<string> {
    await Promise.all([this.#readUploadsInProgress(), this.#readPendingEvents()])
    return this.#registry.metrics()
  }

  uploadCreated(protocol: UploadProtocol): void {
    this.#created.inc({ protocol })
  }

  bytesReceived(bytes: number): void {
    this.#bytes.inc(bytes)
  }

  /** A finish step that moved an upload out of UPLOADING, and how long it took. */
  uploadFinished(
    outcome: { readonly status: string; readonly errorCode: string | null },
    seconds: number,
  ): void {
    this.#finishDuration.observe(seconds)
    if (outcome.status === 'STORED') this.#stored.inc()
    else this.#failed.inc({ reason: outcome.errorCode ?? 'unknown' })
  }

  deliveryAttempted(destination: DeliveryDestinationKind, outcome: DeliveryAttemptOutcome): void {
    this.#deliveries.inc({ destination, outcome })
  }

  jobFailed(queue: string): void {
    this.#jobFailures.inc({ queue })
  }

  purged(report: PurgeReport): void {
    this.#purged.inc({ kind: 'expired' }, report.expired)
    this.#purged.inc({ kind: 'deleted' }, report.deleted)
    this.#purged.inc({ kind: 'failed_removed' }, report.failedRemoved)
  }

  async #readUploadsInProgress(): Promise<void> {
    const count = await this.#ask('uploads in progress', () => this.#queries.uploadsInProgress())
    this.#inProgress.set(count ?? Number.NaN)
  }

  async #readPendingEvents(): Promise<void> {
    const pending = await this.#ask('pending events', () => this.#queries.pendingEvents())
    this.#pendingEvents.set(pending?.count ?? Number.NaN)
    this.#oldestPendingAge.set(pending ? (pending.oldestAgeSeconds ?? 0) : Number.NaN)
  }

  async #ask<T>(what: string, query: () => Promise<T>): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${QUERY_TIMEOUT_MS} ms`)),
        QUERY_TIMEOUT_MS,
      )
    })
    try {
      return await Promise.race([query(), timeout])
    } catch (error) {
      this.#logger.warn(`metrics: could not read ${what} from the database`, { error })
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }
}
