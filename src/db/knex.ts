import knex, { type Knex } from 'knex'
import type { Logger } from '../lib/logger.ts'
import type { Transaction, TransactionRunner } from './transaction.ts'

export type ConnectionSettings = string | Knex.PgConnectionConfig

/**
 * With a logger, knex's own warnings (such as "Connection Error" when the database goes away)
 * join the JSON log on stderr instead of coloured text on stdout.
 */
export function createKnex(connection: ConnectionSettings, logger?: Logger, poolMax = 10): Knex {
  return knex({
    client: 'pg',
    connection,
    pool: { min: 0, max: poolMax },
    ...(logger
      ? {
          log: {
            warn: (message: unknown) => logger.warn('knex warning', { detail: String(message) }),
            error: (message: unknown) => logger.error('knex error', { detail: String(message) }),
            deprecate: (message: unknown) =>
              logger.warn('knex deprecation', { detail: String(message) }),
            debug: (message: unknown) => logger.debug('knex debug', { detail: String(message) }),
          },
        }
      : {}),
  })
}

export function transactionRunner(db: Knex): TransactionRunner {
  return {
    inTransaction: (work) => db.transaction((trx) => work(trx as unknown as Transaction)),
  }
}

/** The knex handle a repository should use: the caller's transaction, or the pool. */
export function executor(db: Knex, tx: Transaction | undefined): Knex {
  return tx ? (tx as unknown as Knex.Transaction) : db
}

export function asKnexTransaction(tx: Transaction): Knex.Transaction {
  return tx as unknown as Knex.Transaction
}
