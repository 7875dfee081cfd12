import type { Readable } from 'node:stream'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import type { ByteRange, StoredPart } from '../../uploads/types.ts'

/** S3's smallest part, except for the last one of an upload. */
const MIN_PART_BYTES = 5 * 1024 * 1024
/** S3's largest part, and the largest object UploadPartCopy copies without a range. */
const MAX_PART_BYTES = 5 * 1024 * 1024 * 1024
/** S3's most parts in one multipart upload. */
export const MAX_PARTS = 10_000

/** A part S3 acknowledged. */
export interface UploadedPart {
  readonly number: number
  readonly etag: string
  readonly size: number
}

export interface PartTarget {
  readonly key: string
  readonly uploadId: string
  readonly partNumber: number
}

export interface CopySource {
  readonly key: string
  readonly range?: ByteRange
}

/** A body of known length: a stream of exactly `length` bytes, or the bytes themselves. */
export interface SizedBody {
  readonly body: Readable | Uint8Array
  readonly length: number
  /** Aborts the request: a stream that cannot deliver `length` bytes must not leave it hanging. */
  readonly signal?: AbortSignal
}

/** The objects one upload keeps beside its object: its info, and the tail below S3's part size. */
export const infoKeyOf = (key: string): string => `${key}.info`
export const tailKeyOf = (key: string): string => `${key}.part`

/** The S3 calls tusbox makes, each a single request. */
export class S3Objects {
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

  /** The object's size and user metadata; undefined when there is no such object. */
  async head(key: string): Promise<{ size: number; metadata: Record<string, string> } | undefined> {
    try {
      const answer = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: key }),
      )
      return { size: answer.ContentLength ?? 0, metadata: answer.Metadata ?? {} }
    } catch (error) {
      if (isNotFound(error)) return undefined
      throw error
    }
  }

  async put(
    key: string,
    { body, length, signal }: SizedBody,
    metadata: Record<string, string> = {},
  ) {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: length,
        Metadata: metadata,
      }),
      { abortSignal: signal },
    )
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }))
  }

  async createMultipartUpload(key: string): Promise<string> {
    const { UploadId } = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }),
    )
    if (!UploadId) throw new Error(`S3 created a multipart upload of ${key} without an id`)
    return UploadId
  }

  async uploadPart(target: PartTarget, { body, length, signal }: SizedBody): Promise<string> {
    const { ETag } = await this.client.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: target.key,
        UploadId: target.uploadId,
        PartNumber: target.partNumber,
        Body: body,
        ContentLength: length,
      }),
      { abortSignal: signal },
    )
    if (!ETag)
      throw new Error(`S3 stored part ${target.partNumber} of ${target.key} without an ETag`)
    return ETag
  }

  /**
   * The parts of a multipart upload, from part 1 up to the first missing number: a part after a
   * gap (a part that failed while the next one landed) holds bytes the upload does not have yet,
   * and is replaced when that number is uploaded again. Undefined when the multipart upload is
   * gone: completed (or aborted, which removal does just before deleting the info).
   */
  async listParts(key: string, uploadId: string): Promise<UploadedPart[] | undefined> {
    const parts: UploadedPart[] = []
    let marker: string | undefined
    try {
      for (;;) {
        const page = await this.client.send(
          new ListPartsCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            ...(marker ? { PartNumberMarker: marker } : {}),
          }),
        )
        for (const part of page.Parts ?? []) {
          parts.push({ number: part.PartNumber ?? 0, etag: part.ETag ?? '', size: part.Size ?? 0 })
        }
        if (!page.IsTruncated) break
        marker = page.NextPartNumberMarker
      }
    } catch (error) {
      // AWS answers NoSuchUpload; some S3-compatible servers NoSuchKey.
      if (isNotFound(error)) return undefined
      throw error
    }
    parts.sort((a, b) => a.number - b.number)
    const gap = parts.findIndex((part, index) => part.number !== index + 1)
    return gap === -1 ? parts : parts.slice(0, gap)
  }

  async completeMultipartUpload(
    key: string,
    uploadId: string,
    parts: readonly UploadedPart[],
  ): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: {
          Parts: parts.map((part) => ({ PartNumber: part.number, ETag: part.etag })),
        },
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
   * Aborts every multipart upload on `key`, then deletes the object and the info and tail objects
   * kept beside it. Listing finds a multipart upload whose id never reached the info (the process
   * stopped between the two). Deleting a missing key is not an error in S3.
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
          Objects: [{ Key: key }, { Key: infoKeyOf(key) }, { Key: tailKeyOf(key) }],
          Quiet: true,
        },
      }),
    )
  }
}

const NOT_FOUND_CODES = new Set(['NotFound', 'NoSuchKey', 'NoSuchUpload'])

export function isNotFound(error: unknown): boolean {
  return error instanceof Error && NOT_FOUND_CODES.has(error.name)
}

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
