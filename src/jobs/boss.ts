import type { Knex } from 'knex'
import { fromKnex, PgBoss } from 'pg-boss'
import type { ConnectionSettings } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import { type Logger, withoutLogContext } from '../lib/logger.ts'
import type { TopicPublisher } from '../outbox/deliver-event.ts'
import { JOB_NAMES, type JobName, type JobPayloads, QUEUES } from './names.ts'

export interface EnqueueOptions {
  /** Commit or roll back the job with the caller's writes. */
  readonly tx?: Transaction
  /** With a `stately` queue: at most one queued and one active job per key. */
  readonly singletonKey?: string
  readonly startAfter?: Date
}

export interface JobQueue {
  /** Resolves with the job id, or null when an equal job (same singletonKey) is already queued. */
  enqueue<N extends JobName>(
    name: N,
    data: JobPayloads[N],
    options?: EnqueueOptions,
  ): Promise<string | null>
}

export function createBoss(connection: ConnectionSettings, logger: Logger): PgBoss {
  const boss = new PgBoss(
    typeof connection === 'string'
      ? { connectionString: connection, max: 4 }
      : {
          host: connection.host,
          port: connection.port,
          user: connection.user,
          password: connection.password as string | undefined,
          database: connection.database,
          max: 4,
        },
  )
  // pg-boss reports its own background trouble (maintenance, a pool connection lost), never a
  // request's, even when the connection at fault was opened while serving one.
  boss.on('error', (error) => withoutLogContext(() => logger.error('pg-boss error', { error })))
  return boss
}

/** pg-boss creates queues only outside transactions, so every queue exists before any send. */
export async function startBoss(boss: PgBoss): Promise<void> {
  await boss.start()
  const existing = new Set((await boss.getQueues()).map((queue) => queue.name))
  for (const name of JOB_NAMES) {
    if (!existing.has(name)) await boss.createQueue(name, { ...QUEUES[name] })
  }
}

export function bossJobQueue(boss: PgBoss): JobQueue {
  return {
    async enqueue(name, data, options = {}) {
      return boss.send(name, data, {
        ...(options.tx ? { db: fromKnex(options.tx as unknown as Knex.Transaction) } : {}),
        ...(options.singletonKey ? { singletonKey: options.singletonKey } : {}),
        ...(options.startAfter ? { startAfter: options.startAfter } : {}),
      })
    },
  }
}

/** Consumers run pg-boss too and `subscribe(<event type>, <their queue>)`. */
export function bossTopics(boss: PgBoss): TopicPublisher {
  return {
    async publish(envelope) {
      await boss.publish(envelope.type, envelope)
    },
  }
}

export interface QueueStats {
  readonly name: string
  readonly queued: number
  readonly deferred: number
  readonly active: number
  readonly failed: number
  readonly total: number
}

/** Sizes of tusbox's own queues, for `tusbox jobs` and /api/admin/outbox. */
export async function queueStats(boss: PgBoss): Promise<QueueStats[]> {
  const queues = await boss.getQueues(JOB_NAMES)
  return queues
    .map((queue) => ({
      name: queue.name,
      queued: queue.queuedCount,
      deferred: queue.deferredCount,
      active: queue.activeCount,
      failed: queue.failedCount,
      total: queue.totalCount,
    }))
    .sort((a, b) => a.name.localeCompare(b.name))
}
