/** Every pg-boss queue tusbox uses, with the data its jobs carry. */
export interface JobPayloads {
  'outbox.deliver': { readonly eventId: string }
  'outbox.sweep': Record<string, never>
  'uploads.purge': Record<string, never>
  'uploads.repair': Record<string, never>
}

export type JobName = keyof JobPayloads

export interface QueueSettings {
  /**
   * `stately` (one queued and one active job per singletonKey): one event is never delivered by
   * two workers at once, and re-enqueueing a queued event is a no-op.
   */
  readonly policy: 'standard' | 'stately'
  /** A worker that stops sending heartbeats (killed, frozen) loses its job to another worker. */
  readonly heartbeatSeconds: number
  readonly retryLimit: number
}

export const QUEUES: Readonly<Record<JobName, QueueSettings>> = {
  'outbox.deliver': { policy: 'stately', heartbeatSeconds: 30, retryLimit: 100 },
  'outbox.sweep': { policy: 'stately', heartbeatSeconds: 30, retryLimit: 0 },
  'uploads.purge': { policy: 'stately', heartbeatSeconds: 60, retryLimit: 2 },
  'uploads.repair': { policy: 'stately', heartbeatSeconds: 60, retryLimit: 2 },
}

export const JOB_NAMES = Object.keys(QUEUES) as JobName[]

/** Periodic jobs: pg-boss runs a schedule at most once a minute. */
export const FIXED_SCHEDULES: Readonly<Partial<Record<JobName, string>>> = {
  'outbox.sweep': '* * * * *',
  'uploads.repair': '*/5 * * * *',
}
