import { PassThrough, Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { type MetadataValue, S3Store } from '@tus/s3-store'
import type { KvStore, Upload } from '@tus/utils'
import type { S3StorageConfig } from '../../config.ts'
import type {
  ByteRange,
  DownloadHeaders,
  StoredPart,
  StoredProgress,
  UploadStorage,
} from '../../uploads/types.ts'
import type { StreamedDigestRegistry } from '../streamed-digests.ts'
import { type Datastore, finalUpload, progressIn, sha256Of, TusStoreWriter } from './common.ts'

function s3ClientConfig(config: S3StorageConfig): S3ClientConfig {
  return {
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
): Promise<Datastore> {
  const client = new S3Client(s3ClientConfig(config))
  const objects = new S3Objects(client, config.bucket)
  const tusStore = new TusboxS3Store(objects, digests, {
    partSize: config.partSize,
    minPartSize: config.minPartSize,
    s3ClientConfig: { ...s3ClientConfig(config), bucket: config.bucket },
    cache: new NoUploadInfoCache(),
  })
  return {
    tusStore,
    storage: new S3Storage(objects, tusStore, config),
    writer: new TusStoreWriter(tusStore),
    digests,
  }
}

/** The S3 calls tusbox makes itself, next to those @tus/s3-store makes. */
class S3Objects {
  readonly client: S3Client
  readonly bucket: string

  constructor(client: S3Client, bucket: string) {
    this.client = client
    this.bucket = bucket
  }

  async get(key: string, range?: ByteRange) {
    return this.client.send(
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
      }),
    )
  }

  /** Copies a whole object, or a range of it, into a part of a multipart upload, inside S3. */
  async copyPart(target: PartTarget, source: CopySource): Promise<string> {
    const { CopyPartResult } = await this.client.send(
      new UploadPartCopyCommand({
        Bucket: this.bucket,
        Key: target.key,
        UploadId: target.uploadId,
        PartNumber: target.partNumber,
        CopySource: `${this.bucket}/${encodeURIComponent(source.key)}`,
        ...(source.range
          ? { CopySourceRange: `bytes=${source.range.start}-${source.range.end}` }
          : {}),
      }),
    )
    if (!CopyPartResult?.ETag)
      throw new Error(`S3 copied part ${target.partNumber} of ${target.key} without an ETag`)
    return CopyPartResult.ETag
  }

  /**
   * Aborts every multipart upload on `key`, then deletes the object and the `.info` and `.part`
   * objects @tus/s3-store keeps beside it. Deleting a missing key is not an error in S3.
   */
  async removeUpload(key: string): Promise<void> {
    const { Uploads = [] } = await this.client.send(
      new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }),
    )
    for (const upload of Uploads.filter((candidate) => candidate.Key === key)) {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: upload.UploadId,
        }),
      )
    }
    await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.bucket,
        Delete: {
          Objects: [{ Key: key }, { Key: `${key}.info` }, { Key: `${key}.part` }],
          Quiet: true,
        },
      }),
    )
  }
}

interface PartTarget {
  readonly key: string
  readonly uploadId: string
  readonly partNumber: number
}

interface CopySource {
  readonly key: string
  readonly range?: ByteRange
}

/** S3's smallest part, except for the last one of an upload. */
const MIN_PART_BYTES = 5 * 1024 * 1024
/** S3's largest part, and the largest object UploadPartCopy copies without a range. */
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
/** S3's most parts in one multipart upload. */
const MAX_PARTS = 10_000

/**
 * The parts of a final object copied inside S3, one per partial upload (or several, for a
 * partial above S3's largest part); undefined when S3's part rules forbid it: a partial other
 * than the last below 5 MiB, or more parts than S3 takes.
 */
export function copyPlan(parts: readonly StoredPart[]): CopySource[] | undefined {
  const nonEmpty = parts.filter((part) => part.size > 0)
  if (nonEmpty.slice(0, -1).some((part) => part.size < MIN_PART_BYTES)) return undefined
  const plan = nonEmpty.flatMap((part) => {
    if (part.size <= MAX_PART_BYTES) return [{ key: part.key }]
    const count = Math.ceil(part.size / MAX_PART_BYTES)
    const length = Math.ceil(part.size / count)
    return Array.from({ length: count }, (_, index) => ({
      key: part.key,
      range: {
        start: index * length,
        end: Math.min(part.size, (index + 1) * length) - 1,
      },
    }))
  })
  return plan.length <= MAX_PARTS ? plan : undefined
}

/**
 * Turns off @tus/s3-store's per-process cache of each upload's `.info` (its default
 * MemoryKvStore), so every request reads the object from S3. Several instances serve one upload
 * (tusbox holds no sticky sessions), and nothing tells one instance that another changed or
 * removed an upload: an instance that cached a deferred-length upload before another one learnt
 * its length never completes it, and one that cached a removed upload still finds it
 * (tus/tus-node-server#552, which added the option for this reason).
 *
 * Sharing the cache through Postgres instead would be another copy to keep right, to save a small
 * GET each time the store looks an upload up (twice per PATCH), next to the part uploads a PATCH
 * makes anyway. S3, MinIO and R2 read their own writes, and the upload lock orders the writes.
 */
class NoUploadInfoCache implements KvStore<MetadataValue> {
  async get(): Promise<undefined> {
    return undefined
  }

  async set(): Promise<void> {}

  async delete(): Promise<void> {}
}

/** S3Store with its writes hashed on their way to S3, and a removal that leaves nothing behind. */
class TusboxS3Store extends S3Store {
  readonly #objects: S3Objects
  readonly #digests: StreamedDigestRegistry

  constructor(
    objects: S3Objects,
    digests: StreamedDigestRegistry,
    options: ConstructorParameters<typeof S3Store>[0],
  ) {
    super(options)
    this.#objects = objects
    this.#digests = digests
  }

  /**
   * The hash sees the request's bytes only: S3Store prepends the `.part` tail of the previous
   * write to them inside `super.write`, and those bytes were hashed when they first arrived. Its
   * new offset counts the bytes it left in a new `.part`, as the hash does.
   */
  override write(src: Readable, id: string, offset: number): Promise<number> {
    return this.#digests.write(id, offset, src, (hashed) =>
      super.write(endedWhenCut(hashed), id, offset),
    )
  }

  /**
   * An empty upload (Upload-Length: 0, with FILE_UPLOAD_MIN_SIZE=0) is complete once created,
   * but @tus/s3-store 2.0.7 completes its multipart upload only inside write(), which no request
   * calls for it: without this, its object never exists.
   */
  override async create(upload: Upload): Promise<Upload> {
    const created = await super.create(upload)
    if (upload.size === 0) await this.write(Readable.from([]), upload.id, 0)
    return created
  }

  /**
   * @tus/s3-store 2.0.7 `remove()` deletes `<id>` and `<id>.info` but leaves `<id>.part`, and on
   * a completed upload its abort fails with NoSuchUpload before anything is deleted.
   */
  override async remove(id: string): Promise<void> {
    this.#digests.forget(id)
    await this.#objects.removeUpload(id)
    await this.clearCache(id)
  }

  /**
   * A final upload made inside S3 with UploadPartCopy where S3's part rules allow: no byte
   * passes through tusbox, and the finish step reads the object once to hash it. Otherwise the
   * partials are streamed into it as writes, hashed on the way, so the finish reads nothing.
   */
  async concatenate(
    key: string,
    parts: readonly StoredPart[],
    metadata: Readonly<Record<string, string | null>> | undefined,
  ): Promise<void> {
    const upload = await this.create(finalUpload(key, parts, metadata))
    const plan = copyPlan(parts)
    if (plan) {
      const info = await this.getMetadata(key)
      const uploadId = info['upload-id'] ?? ''
      const copied = await Promise.all(
        plan.map(async (source, index) => ({
          PartNumber: index + 1,
          ETag: await this.#objects.copyPart({ key, uploadId, partNumber: index + 1 }, source),
        })),
      )
      await this.finishMultipartUpload(info, copied)
      await this.completeMetadata(upload)
      return
    }
    let offset = 0
    for (const part of parts) {
      const { Body } = await this.#objects.get(part.key)
      if (!(Body instanceof Readable))
        throw new Error(`S3 returned no readable body for ${part.key}`)
      const start = offset
      offset = await this.#digests.write(
        key,
        start,
        Body,
        (hashed) => super.write(endedWhenCut(hashed), key, start),
        'copied',
      )
    }
  }
}

/**
 * A PATCH whose connection is cut destroys the request body. When the upload has an incomplete
 * part, @tus/s3-store 2.0.7 first downloads and deletes it, then reads it and the body through a
 * MultiStream, which never notices a body destroyed before its turn: write() never settles and
 * the upload's lock is held until the next request times out (500 after 30 s). A cut body is
 * ended instead, so what arrived is stored, as FileStore does.
 */
function endedWhenCut(src: Readable): Readable {
  const body = new PassThrough()
  const endBody = () => {
    if (!body.writableEnded) body.end()
  }
  src.once('error', endBody)
  src.once('close', endBody)
  src.pipe(body)
  if (src.destroyed) endBody()
  return body
}

class S3Storage implements UploadStorage {
  readonly #objects: S3Objects
  readonly #store: TusboxS3Store
  readonly #config: S3StorageConfig

  constructor(objects: S3Objects, store: TusboxS3Store, config: S3StorageConfig) {
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
