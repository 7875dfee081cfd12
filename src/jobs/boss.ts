import type { Knex } from 'knex'
import { fromKnex, PgBoss } from 'pg-boss'
import type { ConnectionSettings } from '../db/knex.ts'
import type { Transaction } from '../db/transaction.ts'
import type { Logger } from '../lib/logger.ts'
import { JOB_NAMES, type JobName, type JobPayloads } from './names.ts'

export interface JobQueue {
  /** Enqueues a job; inside `tx` it commits or rolls back with the caller's writes. */
  enqueue<N extends JobName>(name: N, data: JobPayloads[N], tx?: Transaction): Promise<string>
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
  boss.on('error', (error) => logger.error('pg-boss error', { error }))
  return boss
}

/** pg-boss creates queues only outside transactions, so every queue exists before any send. */
export async function startBoss(boss: PgBoss): Promise<void> {
  await boss.start()
  for (const name of JOB_NAMES) {
    await boss.createQueue(name)
  }
}

export function bossJobQueue(boss: PgBoss): JobQueue {
  return {
    async enqueue(name, data, tx) {
      const options = tx ? { db: fromKnex(tx as unknown as Knex.Transaction) } : {}
      const id = await boss.send(name, data, options)
      if (id === null) throw new Error(`pg-boss refused a ${name} job`)
      return id
    },
  }
}
