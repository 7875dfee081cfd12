import { Readable } from 'node:stream'
import {
  GetObjectCommand,
  HeadBucketCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import type { S3StorageConfig } from '../../config.ts'
import type { Logger } from '../../lib/logger.ts'
import type {
  ByteRange,
  DownloadHeaders,
  StoredPart,
  StoredProgress,
  UploadStorage,
} from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'
import { type Datastore, progressIn, sha256Of, TusStoreWriter } from './common.ts'
import { S3Objects } from './s3-objects.ts'
import { LeanS3Store } from './s3-store.ts'

export { copyPlan } from './s3-objects.ts'

/**
 * The SDK's messages in tusbox's log instead of bare console lines. One is no warning here: the
 * SDK reports every streaming request that failed, and the store aborts a part's request on
 * purpose when its client's body ends inside it (a cut connection, see PartSender).
 */
function sdkLogger(logger: Logger): NonNullable<S3ClientConfig['logger']> {
  const fields = { component: 'aws-sdk' }
  const text = (content: unknown[]) => content.map(String).join(' ')
  return {
    debug: (...content) => logger.debug(text(content), fields),
    info: (...content) => logger.debug(text(content), fields),
    warn: (...content) => {
      const message = text(content)
      if (message.includes('non-retryable streaming request')) logger.debug(message, fields)
      else logger.warn(message, fields)
    },
    error: (...content) => logger.error(text(content), fields),
  }
}

function s3ClientConfig(config: S3StorageConfig, logger: Logger | undefined): S3ClientConfig {
  return {
    ...(logger ? { logger: sdkLogger(logger) } : {}),
    // The SDK waits for ever by default: a request to an S3 that stopped answering (a silent
    // connection, a stuck server) would hold its upload's lock for ever, and every request for
    // that upload would wait for the lock, then fail.
    requestHandler: {
      connectionTimeout: config.idleTimeoutMs,
      socketTimeout: config.idleTimeoutMs,
    },
    region: config.region,
    forcePathStyle: config.forcePathStyle,
    ...(config.credentials ? { credentials: config.credentials } : {}),
    ...(config.endpoint
      ? {
          endpoint: config.endpoint,
          // S3-compatible servers reject, or store inside the object, the CRC checksums the SDK
          // sends by default since v3.729; only send them where an operation requires one.
          requestChecksumCalculation: 'WHEN_REQUIRED' as const,
          responseChecksumValidation: 'WHEN_REQUIRED' as const,
        }
      : {}),
  }
}

export async function createS3Datastore(
  config: S3StorageConfig,
  digests: StreamedDigestRegistry,
  logger?: Logger,
): Promise<Datastore> {
  const client = new S3Client(s3ClientConfig(config, logger))
  const objects = new S3Objects(client, config.bucket)
  const tusStore = new LeanS3Store(objects, digests, {
    partSize: config.partSize,
    minPartSize: config.minPartSize,
  })
  return {
    tusStore,
    storage: new S3Storage(objects, tusStore, config),
    writer: new TusStoreWriter(tusStore),
    digests,
  }
}

class S3Storage implements UploadStorage {
  readonly #objects: S3Objects
  readonly #store: LeanS3Store
  readonly #config: S3StorageConfig

  constructor(objects: S3Objects, store: LeanS3Store, config: S3StorageConfig) {
    this.#objects = objects
    this.#store = store
    this.#config = config
  }

  progress(key: string): Promise<StoredProgress | undefined> {
    return progressIn(this.#store, key)
  }

  /** A ranged GET: sniffing the type never reads the whole object. */
  async readHead(key: string, bytes: number): Promise<Uint8Array> {
    const { Body } = await this.#objects.get(key, { start: 0, end: bytes - 1 })
    return (await Body?.transformToByteArray()) ?? new Uint8Array()
  }

  async sha256(key: string): Promise<string> {
    return sha256Of(await this.openRead(key))
  }

  async openRead(key: string, range?: ByteRange): Promise<Readable> {
    const { Body } = await this.#objects.get(key, range)
    if (!(Body instanceof Readable)) throw new Error(`S3 returned no readable body for ${key}`)
    return Body
  }

  /** A fresh presigned GET per call, answering with tusbox's own type and disposition. */
  async downloadUrl(key: string, headers: DownloadHeaders): Promise<string | undefined> {
    if (!this.#config.presignedDownloads) return undefined
    const command = new GetObjectCommand({
      Bucket: this.#config.bucket,
      Key: key,
      ResponseContentDisposition: headers.contentDisposition,
      ResponseContentType: headers.contentType,
    })
    return getSignedUrl(this.#objects.client, command, {
      expiresIn: this.#config.presignExpiresSeconds,
    })
  }

  remove(key: string): Promise<void> {
    return this.#store.remove(key)
  }

  concatenate(
    key: string,
    parts: readonly StoredPart[],
    metadata: Readonly<Record<string, string | null>> | undefined,
  ): Promise<void> {
    return this.#store.concatenate(key, parts, metadata)
  }

  async checkReady(): Promise<void> {
    try {
      await this.#objects.client.send(new HeadBucketCommand({ Bucket: this.#config.bucket }))
    } catch (error) {
      const reason = error instanceof Error ? error.name : String(error)
      throw new Error(`bucket "${this.#config.bucket}" is not reachable (${reason})`)
    }
  }
}
