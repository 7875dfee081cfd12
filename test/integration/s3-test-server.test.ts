import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type S3TestServer, startS3TestServer } from '../helpers/s3-server.ts'
import { s3TestClient } from '../helpers/stores.ts'

/** The shim's own contract, checked with the AWS SDK that @tus/s3-store uses. */
describe('the S3 test server', () => {
  let server: S3TestServer
  let client: S3Client
  const Bucket = 'shim-test'

  beforeAll(async () => {
    server = await startS3TestServer()
    client = s3TestClient({
      endpoint: server.endpoint,
      region: 'us-east-1',
      accessKeyId: 'a',
      secretAccessKey: 'b',
      forcePathStyle: true,
    })
    await client.send(new CreateBucketCommand({ Bucket }))
  })

  afterAll(async () => {
    await server?.stop()
  })

  async function multipartWithParts(Key: string, sizes: number[]): Promise<string> {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))
    for (const [index, size] of sizes.entries()) {
      await client.send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId,
          PartNumber: index + 1,
          Body: Buffer.alloc(size, index),
        }),
      )
    }
    return UploadId as string
  }

  it('binds 127.0.0.1 only', () => {
    expect(new URL(server.endpoint).hostname).toBe('127.0.0.1')
  })

  it('lists the parts of a multipart upload page by page', async () => {
    const Key = 'uploads/2026/11/paged'
    const UploadId = await multipartWithParts(Key, [1000, 2000, 3000])

    const first = await client.send(new ListPartsCommand({ Bucket, Key, UploadId, MaxParts: 2 }))
    expect(first.Parts?.map((part) => [part.PartNumber, part.Size])).toEqual([
      [1, 1000],
      [2, 2000],
    ])
    expect(first.IsTruncated).toBe(true)
    expect(first.Parts?.[0]?.ETag).toMatch(/^"[0-9a-f]{32}"$/)

    const second = await client.send(
      new ListPartsCommand({
        Bucket,
        Key,
        UploadId,
        MaxParts: 2,
        PartNumberMarker: first.NextPartNumberMarker,
      }),
    )
    expect(second.Parts?.map((part) => part.PartNumber)).toEqual([3])
    expect(second.IsTruncated).toBe(false)
  })

  it('answers NoSuchUpload for an unknown upload id, as S3 does after completion or abort', async () => {
    await expect(
      client.send(new ListPartsCommand({ Bucket, Key: 'uploads/x', UploadId: 'no-such-upload' })),
    ).rejects.toMatchObject({ name: 'NoSuchUpload' })
  })

  it('lists unfinished multipart uploads under a prefix', async () => {
    const UploadId = await multipartWithParts('listing/a', [10])
    await multipartWithParts('elsewhere/b', [10])

    const listed = await client.send(
      new ListMultipartUploadsCommand({ Bucket, Prefix: 'listing/' }),
    )

    expect(listed.Uploads?.map((upload) => [upload.Key, upload.UploadId])).toEqual([
      ['listing/a', UploadId],
    ])
  })

  it('accepts parts larger than fauxqs’s own 11 MiB body limit', async () => {
    const Key = 'big'
    const UploadId = await multipartWithParts(Key, [12 * 1024 * 1024])
    const listed = await client.send(new ListPartsCommand({ Bucket, Key, UploadId }))
    expect(listed.Parts?.[0]?.Size).toBe(12 * 1024 * 1024)
  })

  /** Objects as tus concatenation joins them: whole (UploadPartCopy), then completed. */
  async function joinByCopy(Key: string, sources: readonly { key: string; size: number }[]) {
    for (const [index, source] of sources.entries()) {
      await client.send(
        new PutObjectCommand({
          Bucket,
          Key: source.key,
          Body: Buffer.alloc(source.size, index + 1),
        }),
      )
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))
    const Parts = []
    for (const [index, source] of sources.entries()) {
      const { CopyPartResult } = await client.send(
        new UploadPartCopyCommand({
          Bucket,
          Key,
          UploadId,
          PartNumber: index + 1,
          CopySource: `${Bucket}/${encodeURIComponent(source.key)}`,
        }),
      )
      Parts.push({ PartNumber: index + 1, ETag: CopyPartResult?.ETag })
    }
    return client.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts } }),
    )
  }

  it('copies whole objects into parts server-side (UploadPartCopy) and joins them in order', async () => {
    const MiB = 1024 * 1024
    await joinByCopy('joined', [
      { key: 'uploads/2026/12/a', size: 5 * MiB },
      { key: 'uploads/2026/12/b', size: 1000 },
    ])
    const { Body } = await client.send(new GetObjectCommand({ Bucket, Key: 'joined' }))
    const bytes = Buffer.from((await Body?.transformToByteArray()) ?? [])
    expect(bytes.length).toBe(5 * MiB + 1000)
    expect([bytes[0], bytes[5 * MiB - 1], bytes[5 * MiB], bytes.at(-1)]).toEqual([1, 1, 2, 2])
  })

  it('refuses, as S3 does, to complete an upload whose part other than the last is below 5 MiB', async () => {
    const joining = joinByCopy('too-small', [
      { key: 'uploads/2026/12/c', size: 1000 },
      { key: 'uploads/2026/12/d', size: 1000 },
    ])
    await expect(joining).rejects.toMatchObject({ name: 'EntityTooSmall' })
  })
})
