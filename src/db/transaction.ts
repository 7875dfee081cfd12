/**
 * An open database transaction, opaque to domain code: services pass it from one repository
 * to the next (and to the job queue) without knowing which driver sits behind it.
 */
export interface Transaction {
  readonly __transaction: unique symbol
}

export interface TransactionRunner {
  inTransaction<T>(work: (tx: Transaction) => Promise<T>): Promise<T>
}
