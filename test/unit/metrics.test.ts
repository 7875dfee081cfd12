import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { Metrics, type MetricsQueries } from '../../src/metrics/metrics.ts'
import { Scrape } from '../helpers/metrics.ts'

function metricsWith(queries: MetricsQueries) {
  const lines: string[] = []
  const logger = createLogger('warn', { format: 'json', write: (line) => lines.push(line) })
  return { metrics: new Metrics({ queries, logger, queues: ['outbox.deliver'] }), lines }
}

const answering: MetricsQueries = {
  uploadsInProgress: async () => 3,
  pendingEvents: async () => ({ count: 0, oldestAgeSeconds: null }),
}

describe('Metrics', () => {
  it('keeps its own registry, so that two of them in one process count apart', async () => {
    const first = metricsWith(answering).metrics
    const second = metricsWith(answering).metrics

    first.uploadCreated('tus')
    first.bytesReceived(512)

    const [one, two] = [new Scrape(await first.render()), new Scrape(await second.render())]
    expect(one.value('tusbox_uploads_created_total', { protocol: 'tus' })).toBe(1)
    expect(one.value('tusbox_upload_bytes_received_total')).toBe(512)
    expect(two.value('tusbox_uploads_created_total', { protocol: 'tus' })).toBe(0)
    expect(one.value('tusbox_uploads_in_progress')).toBe(3)
  })

  it('says 0 for the oldest pending age when nothing is pending', async () => {
    const scrape = new Scrape(await metricsWith(answering).metrics.render())

    expect(scrape.value('tusbox_outbox_pending_events')).toBe(0)
    expect(scrape.value('tusbox_outbox_oldest_pending_age_seconds')).toBe(0)
  })

  it('serves the counters with NaN database figures, and logs why, when the database fails', async () => {
    const { metrics, lines } = metricsWith({
      uploadsInProgress: () => Promise.reject(new Error('connect ECONNREFUSED')),
      pendingEvents: () => Promise.reject(new Error('connect ECONNREFUSED')),
    })
    metrics.uploadCreated('tus')

    const scrape = new Scrape(await metrics.render())

    expect(scrape.value('tusbox_uploads_created_total', { protocol: 'tus' })).toBe(1)
    expect(scrape.value('tusbox_uploads_in_progress')).toBeNaN()
    expect(scrape.value('tusbox_outbox_pending_events')).toBeNaN()
    expect(scrape.value('tusbox_outbox_oldest_pending_age_seconds')).toBeNaN()
    expect(lines.map((line) => JSON.parse(line).message)).toEqual([
      'metrics: could not read uploads in progress from the database',
      'metrics: could not read pending events from the database',
    ])
  })

  it('counts a refused upload under its failure code and a stored one apart', async () => {
    const { metrics } = metricsWith(answering)

    metrics.uploadFinished({ status: 'FAILED', errorCode: 'size_mismatch' }, 0.002)
    metrics.uploadFinished({ status: 'STORED', errorCode: null }, 0.2)

    const scrape = new Scrape(await metrics.render())
    expect(scrape.value('tusbox_uploads_failed_total', { reason: 'size_mismatch' })).toBe(1)
    expect(scrape.value('tusbox_uploads_stored_total')).toBe(1)
    expect(scrape.value('tusbox_finish_duration_seconds_bucket', { le: '0.0025' })).toBe(1)
    expect(scrape.value('tusbox_finish_duration_seconds_bucket', { le: '0.25' })).toBe(2)
  })
})

describe('WORKER_METRICS_PORT', () => {
  it('is off when unset, and takes a port from 1 to 65535', () => {
    expect(loadConfig({}).metrics.workerPort).toBeUndefined()
    expect(loadConfig({ WORKER_METRICS_PORT: '9464' }).metrics.workerPort).toBe(9464)
  })

  it('refuses 0 (Prometheus needs a known port) and anything but a port', () => {
    for (const value of ['0', '65536', 'metrics']) {
      expect(() => loadConfig({ WORKER_METRICS_PORT: value })).toThrow(/WORKER_METRICS_PORT=/)
    }
  })
})
