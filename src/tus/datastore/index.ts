import type { FileStorageConfig, S3StorageConfig } from '../../config.ts'
import type { Logger } from '../../lib/logger.ts'
import { SNIFF_BYTES } from '../../uploads/content-type.ts'
import { StreamedDigestRegistry } from '../streamed-digests.ts'
import type { Datastore } from './common.ts'
import { createFileDatastore } from './file.ts'

export type { Datastore } from './common.ts'
export { scopedLocker, withinRequest } from './request-scope.ts'

export interface DatastoreOptions {
  /** Told of the bytes of every write as the store reads them (metrics), hashed or not. */
  readonly onBytesWritten?: (bytes: number) => void
  /** Where the AWS SDK's own messages go, instead of the console. */
  readonly logger?: Logger
}

/**
 * The only module that imports the tus stores (and the AWS SDK): the file store, or S3, which is
 * loaded only when configured, since the AWS SDK weighs about 40 MiB of memory
 * and 8 MB of heap that every garbage collection would walk.
 */
export async function createDatastore(
  config: FileStorageConfig | S3StorageConfig,
  options: DatastoreOptions = {},
): Promise<Datastore> {
  // The head kept from the stream is the window the finish step sniffs the type from.
  const digests = new StreamedDigestRegistry({
    headBytes: SNIFF_BYTES,
    onBytes: options.onBytesWritten,
  })
  if (config.backend === 'file') return createFileDatastore(config, digests)
  const { createS3Datastore } = await import('./s3.ts')
  return createS3Datastore(config, digests, options.logger)
}
