import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { inject } from 'vitest'
import { emptyBucket } from './s3-buckets.ts'

export interface S3TestSettings {
  readonly endpoint: string
  readonly region: string
  readonly accessKeyId: string
  readonly secretAccessKey: string
  readonly forcePathStyle: boolean
}

/** A store opened for one test file: the settings that select it and a view of its contents. */
export interface OpenedStore {
  readonly env: Record<string, string>
  /**
   * Everything the store holds: object or file names, plus `multipart:<key>` for each unfinished
   * S3 multipart upload, so "nothing left behind" can be asserted the same way on every store.
   */
  contents(): Promise<string[]>
  close(): Promise<void>
}

/** Every storage backend the contract suites run against. */
export interface TestStore {
  readonly name: 'file' | 's3'
  open(env?: Record<string, string>): Promise<OpenedStore>
}

const fileStore: TestStore = {
  name: 'file',
  /** A fresh temporary directory, or the FILE_STORE_DIR the test chose (removed at close too). */
  async open(env = {}) {
    const directory =
      env.FILE_STORE_DIR ?? (await mkdtemp(path.join(tmpdir(), 'tusbox-test-files-')))
    return {
      env: { STORAGE_BACKEND: 'file', FILE_STORE_DIR: directory },
      contents: () => listFiles(directory),
      close: () => rm(directory, { recursive: true, force: true }),
    }
  },
}

const s3Store: TestStore = {
  name: 's3',
  async open() {
    const settings = inject('s3')
    const client = s3TestClient(settings)
    const bucket = `tusbox-test-${randomBytes(5).toString('hex')}`
    await client.send(new CreateBucketCommand({ Bucket: bucket }))
    return {
      env: {
        STORAGE_BACKEND: 's3',
        AWS_STORAGE_BUCKET_NAME: bucket,
        AWS_S3_ENDPOINT_URL: settings.endpoint,
        AWS_S3_REGION_NAME: settings.region,
        AWS_ACCESS_KEY_ID: settings.accessKeyId,
        AWS_SECRET_ACCESS_KEY: settings.secretAccessKey,
        AWS_S3_FORCE_PATH_STYLE: String(settings.forcePathStyle),
        S3_PART_SIZE: String(5 * 1024 * 1024),
        S3_MIN_PART_SIZE: String(5 * 1024 * 1024),
      },
      contents: () => listBucket(client, bucket),
      close: () => deleteBucket(client, bucket),
    }
  },
}

export const TEST_STORES: readonly TestStore[] = [fileStore, s3Store]

export function s3TestClient(settings: S3TestSettings): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true })
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(root, path.join(entry.parentPath, entry.name)))
    .sort()
}

async function listBucket(client: S3Client, bucket: string): Promise<string[]> {
  const objects = await client.send(new ListObjectsV2Command({ Bucket: bucket }))
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
  return [
    ...(objects.Contents ?? []).map((object) => object.Key ?? ''),
    ...(uploads.Uploads ?? []).map((upload) => `multipart:${upload.Key}`),
  ].sort()
}

/** Tests leave unfinished uploads behind on purpose; S3 refuses to delete a bucket that has any. */
async function deleteBucket(client: S3Client, bucket: string): Promise<void> {
  await emptyBucket(client, bucket)
  await client.send(new DeleteBucketCommand({ Bucket: bucket }))
}
