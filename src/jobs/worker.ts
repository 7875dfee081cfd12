import type { PgBoss } from 'pg-boss'
import { type Logger, withLogContext } from '../lib/logger.ts'
import type { PurgeReport } from '../uploads/purge.ts'
import type { RepairReport } from '../uploads/repair.ts'
import type { DeliverJobResult } from './handlers/outbox-deliver.ts'
import { FIXED_SCHEDULES, type JobName, type JobPayloads } from './names.ts'

/** What each job's handler reports back (pg-boss keeps it as the job's output). */
export interface JobResults {
  'outbox.deliver': DeliverJobResult
  'outbox.sweep': number
  'uploads.purge': PurgeReport
  'uploads.repair': RepairReport
}

export type JobHandlers = {
  readonly [N in JobName]: (data: JobPayloads[N]) => Promise<JobResults[N]>
}

/** Where failed jobs are counted (metrics); the container wires it. */
export interface JobMetrics {
  jobFailed(queue: JobName): void
}

export interface WorkerSettings {
  readonly concurrency: number
  readonly purgeSchedule: string
}

/** Workers ask for new jobs this often when idle; a sent job wakes nobody sooner. */
const POLLING_INTERVAL_SECONDS = 1

/**
 * Registers a pg-boss worker for every queue and the schedules of the periodic jobs. Any number
 * of processes may do this: pg-boss hands each job to one of them, and sends each scheduled job
 * once per tick whatever the number of schedulers.
 */
export async function startWorkers(
  boss: PgBoss,
  handlers: JobHandlers,
  settings: WorkerSettings,
  logger: Logger,
  metrics: JobMetrics,
): Promise<void> {
  const schedules: Partial<Record<JobName, string>> = {
    ...FIXED_SCHEDULES,
    'uploads.purge': settings.purgeSchedule,
  }
  for (const name of Object.keys(handlers) as JobName[]) {
    const handle = handlers[name] as (data: unknown) => Promise<unknown>
    await boss.work(
      name,
      {
        batchSize: 1,
        localConcurrency: settings.concurrency,
        pollingIntervalSeconds: POLLING_INTERVAL_SECONDS,
      },
      async ([job]) => {
        if (!job) return
        // Every line a job logs, however deep, names the job it belongs to.
        return withLogContext({ job: name, jobId: job.id }, async () => {
          try {
            return await handle(job.data)
          } catch (error) {
            metrics.jobFailed(name)
            logger.error('job failed', { error })
            throw error
          }
        })
      },
    )
    const cron = schedules[name]
    if (cron) await boss.schedule(name, cron, {})
  }
}
