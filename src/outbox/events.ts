/** Every event type and the shape of its `data`; webhooks and topics carry the same envelope. */
export interface EventPayloads {
  'file.stored': FileStoredData
  'file.deleted': FileDeletedData
  'batch.completed': BatchCompletedData
}

export type EventType = keyof EventPayloads

export interface FileStoredData {
  readonly fileId: string
  readonly batchId: string | null
  readonly filename: string | null
  readonly contentType: string
  readonly size: number
  readonly sha256: string
  readonly storageKey: string
  /** The stable API address; never a presigned URL, which would expire before late deliveries. */
  readonly url: string
}

export interface FileDeletedData {
  readonly fileId: string
  readonly batchId: string | null
  readonly storageKey: string
  /** Why the bytes went: the file's FILE_UPLOAD_TTL ran out, or it was deleted through the API or tus. */
  readonly reason: 'ttl_expired' | 'deleted'
}

export interface BatchCompletedData {
  readonly batchId: string
  readonly fileIds: readonly string[]
  readonly url: string
}

export interface NewEvent<T extends EventType = EventType> {
  readonly aggregateType: string
  readonly aggregateId: string
  readonly type: T
  readonly data: EventPayloads[T]
  /** Defaults to `<aggregateType>:<aggregateId>`: one event of a type per aggregate. */
  readonly idempotencyKey?: string
}

export interface EventEnvelope<T extends EventType = EventType> {
  readonly id: string
  readonly type: T
  readonly occurredAt: string
  readonly aggregate: { readonly type: string; readonly id: string }
  readonly idempotencyKey: string
  readonly data: EventPayloads[T]
}

export function defaultIdempotencyKey(aggregateType: string, aggregateId: string): string {
  return `${aggregateType}:${aggregateId}`
}
