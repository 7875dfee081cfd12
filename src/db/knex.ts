import knex, { type Knex } from 'knex'
import type { Transaction, TransactionRunner } from './transaction.ts'

export type ConnectionSettings = string | Knex.PgConnectionConfig

export function createKnex(connection: ConnectionSettings, poolMax = 10): Knex {
  return knex({ client: 'pg', connection, pool: { min: 0, max: poolMax } })
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
