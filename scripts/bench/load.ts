/**
 * What the benchmark's client process does (scripts/bench/load-process.ts): each task is one
 * measurement, timed here, next to the requests, and answered with its values. The heavy
 * clients (tus-js-client, the AWS SDK for E) are loaded only by the tasks that use them, so the
 * lean `node:http` client runs in a small heap of its own.
 */
import { randomUUID } from 'node:crypto'
import {
  expectStatus,
  fileBytes,
  fileStream,
  MiB,
  rufhUpload,
  send,
  sinkUpload,
  tusConcatenate,
  tusCreate,
  tusPatch,
  tusUpload,
} from './client.ts'
import { percentile } from './results.ts'
import type { S3Endpoint } from './servers.ts'

/** How one upload is sent: to a tus server, a sink, over RUFH, to S3 (E), or by tus-js-client. */
export type UploadRoute =
  | { readonly via: 'tus'; readonly endpoint: string; readonly chunk?: number }
  | { readonly via: 'sink-file'; readonly sinkUrl: string; readonly chunk?: number }
  | { readonly via: 'sink-discard'; readonly sinkUrl: string }
  | { readonly via: 'rufh'; readonly endpoint: string }
  | {
      readonly via: 's3'
      readonly s3: S3Endpoint
      readonly bucket: string
      readonly partSize: number
    }
  | {
      readonly via: 'tus-js-client'
      readonly endpoint: string
      readonly chunk: number
      readonly parallelUploads: number
    }

/** One measurement; its answer is the list of values of its figures. */
export type LoadTask =
  /** [MiB/s] of one upload, from its first request to its last answer. */
  | { readonly kind: 'throughput'; readonly route: UploadRoute; readonly size: number }
  /** [aggregate MiB/s, p95 seconds per upload] of `uploads` uploads at once. */
  | {
      readonly kind: 'crowd'
      readonly route: UploadRoute
      readonly uploads: number
      readonly size: number
    }
  /** [creations/s]: `count` tus creations (or empty sink POSTs) by `concurrency` workers. */
  | {
      readonly kind: 'creations'
      readonly target: { readonly endpoint: string } | { readonly sinkUrl: string }
      readonly count: number
      readonly concurrency: number
    }
  /** [ms] the last PATCH of `tail` bytes takes, the rest sent first: the finish step. */
  | { readonly kind: 'finish'; readonly endpoint: string; readonly size: number; tail: number }
  /** [ms] the final's POST takes, its `parts` partial uploads sent first. */
  | { readonly kind: 'final'; readonly endpoint: string; readonly size: number; parts: number }

export function runTask(task: LoadTask): Promise<number[]> {
  switch (task.kind) {
    case 'throughput':
      return throughput(task.route, task.size)
    case 'crowd':
      return crowd(task.route, task.uploads, task.size)
    case 'creations':
      return creationsPerSecond(task.target, task.count, task.concurrency)
    case 'finish':
      return finishLatencyMs(task.endpoint, task.size, task.tail)
    case 'final':
      return finalLatencyMs(task.endpoint, task.size, task.parts)
  }
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000
}

async function throughput(route: UploadRoute, size: number): Promise<number[]> {
  const upload = await uploader(route)
  const since = performance.now()
  await upload(size)
  return [size / MiB / seconds(since)]
}

async function crowd(route: UploadRoute, uploads: number, size: number): Promise<number[]> {
  const upload = await uploader(route)
  const since = performance.now()
  const durations = await Promise.all(
    Array.from({ length: uploads }, async () => {
      const own = performance.now()
      await upload(size)
      return seconds(own)
    }),
  )
  return [(uploads * size) / MiB / seconds(since), percentile(durations, 95)]
}

/** The function sending one upload of a size by `route`, its client loaded and ready. */
async function uploader(route: UploadRoute): Promise<(size: number) => Promise<unknown>> {
  switch (route.via) {
    case 'tus':
      return (size) => tusUpload(route.endpoint, size, route.chunk)
    case 'sink-file':
      return (size) => sinkUpload(`${route.sinkUrl}/file/${randomUUID()}`, size, route.chunk)
    case 'sink-discard':
      return (size) => sinkUpload(`${route.sinkUrl}/discard`, size)
    case 'rufh':
      return (size) => rufhUpload(route.endpoint, size)
    case 's3':
      return s3Uploader(route)
    case 'tus-js-client':
      return tusJsClientUploader(route)
  }
}

/** E: lib-storage with tusbox's part size and its own default of 4 parts at a time. */
async function s3Uploader(
  route: Extract<UploadRoute, { via: 's3' }>,
): Promise<(size: number) => Promise<unknown>> {
  const [{ Upload }, { s3Client }] = await Promise.all([
    import('@aws-sdk/lib-storage'),
    import('./servers.ts'),
  ])
  rawS3Client ??= s3Client(route.s3)
  const client = rawS3Client
  return (size) =>
    new Upload({
      client,
      params: { Bucket: route.bucket, Key: randomUUID(), Body: fileStream(size) },
      partSize: route.partSize,
    }).done()
}

/** One client for the run, like one application's: its sockets stay open between uploads. */
let rawS3Client: import('@aws-sdk/client-s3').S3Client | undefined

/** tus-js-client uploading a Buffer (which it slices without copying), made once per size. */
async function tusJsClientUploader(
  route: Extract<UploadRoute, { via: 'tus-js-client' }>,
): Promise<(size: number) => Promise<void>> {
  const tus = await import('tus-js-client')
  return (size) =>
    new Promise((resolve, reject) => {
      new tus.Upload(bytesOf(size), {
        endpoint: route.endpoint,
        chunkSize: route.chunk,
        parallelUploads: route.parallelUploads,
        retryDelays: [],
        metadata: { filename: 'bench.txt', filetype: 'text/plain' },
        onSuccess: () => resolve(),
        onError: reject,
      }).start()
    })
}

let heldBytes: Buffer | undefined

/** The benchmark file of `size` bytes; only the last size asked for is kept. */
function bytesOf(size: number): Buffer {
  if (heldBytes?.length !== size) heldBytes = fileBytes(size)
  return heldBytes
}

async function creationsPerSecond(
  target: { readonly endpoint: string } | { readonly sinkUrl: string },
  count: number,
  concurrency: number,
): Promise<number[]> {
  const create =
    'endpoint' in target
      ? () => tusCreate(target.endpoint, MiB)
      : async () =>
          expectStatus(await send(`${target.sinkUrl}/discard`, { method: 'POST' }), 204, 'POST')
  let remaining = count
  const since = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (remaining > 0) {
        remaining--
        await create()
      }
    }),
  )
  return [count / seconds(since)]
}

async function finishLatencyMs(endpoint: string, size: number, tail: number): Promise<number[]> {
  const url = await tusCreate(endpoint, size)
  const head = size - tail
  await tusPatch(url, 0, head)
  const since = performance.now()
  await tusPatch(url, head, tail)
  return [performance.now() - since]
}

async function finalLatencyMs(endpoint: string, size: number, parts: number): Promise<number[]> {
  const partSize = Math.floor(size / parts)
  const sizes = Array.from({ length: parts }, (_, index) =>
    index < parts - 1 ? partSize : size - (parts - 1) * partSize,
  )
  const partials = await Promise.all(
    sizes.map(async (length) => {
      const url = await tusCreate(endpoint, length, 'partial')
      await tusPatch(url, 0, length)
      return url
    }),
  )
  const since = performance.now()
  await tusConcatenate(endpoint, partials)
  return [performance.now() - since]
}
