import { createReadStream } from 'node:fs'
import path from 'node:path'
import * as tus from 'tus-js-client'
import { type ErrorBody, errorBodyOf } from './api.ts'
import { typeFromExtension } from './content-types.ts'
import { CutResponseAwareHttpStack } from './http-stack.ts'
import type { LocalFile } from './local-files.ts'
import type { ResumeStore } from './resume-store.ts'

export interface SendOptions {
  readonly endpoint: string
  /** Sent with every tus request: the Authorization header. */
  readonly headers: Readonly<Record<string, string>>
  readonly chunkSize: number
  readonly batchId: string | undefined
  readonly store: ResumeStore
}

export interface SendEvents {
  /** The server has the upload: `resumedFrom` bytes of it already when it was resumed, else 0. */
  started(id: string, resumedFrom: number): void
  /** The server no longer has the upload a resume entry names (404, 410): it starts over. */
  restarted(status: number): void
  /** Bytes of the file sent so far, acknowledged or not. */
  progress(bytesSent: number): void
  /** Bytes the server has acknowledged. */
  acknowledged(offset: number): void
  /** A request failed in a way worth another attempt, which follows after `delayMs`. */
  retrying(reason: string, delayMs: number): void
}

export type SendResult =
  /** Every byte is on the server; whether it is STORED is the server's to say. */
  | { readonly kind: 'sent'; readonly id: string; readonly resumedFrom: number }
  /** The server refused the file itself (too large, wrong type, bad name): sending again is pointless. */
  | { readonly kind: 'refused'; readonly id: string | undefined; readonly error: ErrorBody }
  /** Could not finish for another reason (network, credentials, server errors): run again. */
  | { readonly kind: 'error'; readonly id: string | undefined; readonly error: ErrorBody }
  | { readonly kind: 'interrupted'; readonly id: string | undefined; readonly acknowledged: number }

/**
 * Delays between attempts of one request: tus-js-client resends from the server's offset, and
 * starts this list over whenever an attempt made progress, so only a long outage gives up.
 */
const RETRY_DELAYS = [0, 1_000, 3_000, 5_000, 10_000, 20_000]

/**
 * Statuses that say nothing against the upload itself: a later run may resume it, so its resume
 * entry stays. Every other 4xx means the server refused the upload for good.
 */
const KEEPS_UPLOAD_RESUMABLE = new Set([401, 403, 408, 409, 423, 429])

/**
 * Resume key of a file: the endpoint, the absolute path, the size and the modification time, so
 * a changed file (or the same path on another server) never resumes into an old upload.
 */
export function fingerprintOf(endpoint: string, file: LocalFile): string {
  return JSON.stringify(['tusbox-upload', endpoint, file.absolutePath, file.size, file.mtimeMs])
}

/**
 * Uploads one file with tus-js-client, resuming a previous upload of it from the resume store
 * when there is one for the same batch (a resumed upload keeps the batch it was created in).
 * Aborting `signal` stops it without terminating the upload, and keeps its resume entry.
 */
export function sendFile(
  file: LocalFile,
  options: SendOptions,
  events: SendEvents,
  signal: AbortSignal,
): Promise<SendResult> {
  if (signal.aborted)
    return Promise.resolve({ kind: 'interrupted', id: undefined, acknowledged: 0 })
  const fingerprint = fingerprintOf(options.endpoint, file)
  // tus-js-client only takes the path from this stream (it opens one stream per chunk); its
  // descriptor is closed when the upload ends, however it ends.
  const source = createReadStream(file.absolutePath)
  let sourceError: Error | undefined
  source.on('error', (error) => {
    sourceError = error
  })
  return new Promise<SendResult>((resolve) => {
    let done = false
    let resumedFrom = 0
    let acknowledged = 0
    let creating = false
    let interruptedWhileCreating = false
    const finish = (result: SendResult) => {
      if (done) return
      done = true
      signal.removeEventListener('abort', onAbort)
      source.destroy()
      resolve(result)
    }
    const idNow = () => idOf(upload.url)

    const upload = new tus.Upload(source, {
      endpoint: options.endpoint,
      headers: { ...options.headers },
      chunkSize: options.chunkSize,
      metadata: metadataFor(file, options.batchId),
      retryDelays: RETRY_DELAYS,
      // A response cut inside its body would otherwise leave the upload waiting for ever.
      httpStack: new CutResponseAwareHttpStack(),
      fingerprint: () => Promise.resolve(fingerprint),
      urlStorage: options.store,
      removeFingerprintOnSuccess: true,
      onShouldRetry: (error, attempt, settings) => {
        if (!shouldRetry(error)) return false
        events.retrying(describe(error), settings.retryDelays?.[attempt] ?? 0)
        return true
      },
      onBeforeRequest: (request) => {
        if (request.getMethod() === 'POST') creating = true
      },
      onAfterResponse: (request, response) => {
        if (request.getMethod() === 'POST') creating = false
        if (request.getMethod() !== 'HEAD') return
        const status = response.getStatus()
        if (status >= 200 && status < 300) {
          resumedFrom = Number(response.getHeader('Upload-Offset') ?? 0)
          acknowledged = resumedFrom
        } else if (status === 404 || status === 410) {
          events.restarted(status)
        }
      },
      onUploadUrlAvailable: () => {
        events.started(idNow() ?? '', resumedFrom)
        // tus-js-client records the URL right after this returns; the PATCH it would then send
        // finds the upload aborted.
        if (interruptedWhileCreating) stop()
      },
      onProgress: (bytesSent) => events.progress(bytesSent),
      onChunkComplete: (_chunk, accepted) => {
        acknowledged = accepted
        events.acknowledged(accepted)
      },
      onSuccess: () => finish({ kind: 'sent', id: idNow() ?? '', resumedFrom }),
      onError: (error) => {
        if (interruptedWhileCreating) {
          finish({ kind: 'interrupted', id: idNow(), acknowledged })
          return
        }
        const result = failureOf(error, idNow(), sourceError)
        if (result.kind === 'refused') {
          options.store.removeByFingerprint(fingerprint).then(
            () => finish(result),
            () => finish(result),
          )
        } else {
          finish(result)
        }
      },
    })

    /**
     * A creation already sent has made the upload on the server, or will: cut off now, its URL
     * would never be recorded, and the next run would create another upload of the same file.
     * So its answer is awaited (a second Ctrl-C still quits at once).
     */
    function onAbort() {
      if (creating) interruptedWhileCreating = true
      else stop()
    }
    function stop() {
      // Not upload.abort(true): that would DELETE the upload the next run is to resume.
      upload.abort(false).catch(() => {})
      finish({ kind: 'interrupted', id: idNow(), acknowledged })
    }
    signal.addEventListener('abort', onAbort, { once: true })

    upload.findPreviousUploads().then(
      (previous) => {
        if (done) return
        const sameBatch = previous.find((entry) => entry.metadata.batchId === options.batchId)
        if (sameBatch) upload.resumeFromPreviousUpload(sameBatch)
        upload.start()
      },
      (error: Error) => finish({ kind: 'error', id: undefined, error: clientError(error) }),
    )
  })
}

function metadataFor(file: LocalFile, batchId: string | undefined): Record<string, string> {
  const metadata: Record<string, string> = { filename: path.basename(file.absolutePath) }
  const type = typeFromExtension(file.absolutePath)
  if (type) metadata.filetype = type
  if (file.relativePath) metadata.relativePath = file.relativePath
  if (batchId) metadata.batchId = batchId
  return metadata
}

/**
 * Network errors, 5xx, 409 (an offset conflict) and 423, as tus-js-client does by default; also
 * 429 (too many unfinished uploads: others will finish). Not a 409 on creation: that is a closed
 * batch, which stays closed.
 */
function shouldRetry(error: tus.DetailedError): boolean {
  const status = error.originalResponse?.getStatus() ?? 0
  if (status === 409) return error.originalRequest.getMethod() !== 'POST'
  return status < 400 || status >= 500 || status === 423 || status === 429
}

function failureOf(
  error: Error,
  id: string | undefined,
  sourceError: Error | undefined,
): Exclude<SendResult, { kind: 'sent' | 'interrupted' }> {
  if (sourceError) return { kind: 'error', id, error: clientError(sourceError) }
  const response = error instanceof tus.DetailedError ? error.originalResponse : null
  if (!response) return { kind: 'error', id, error: clientError(error) }
  const status = response.getStatus()
  const body = errorBodyOf(response.getBody()) ?? {
    code: `http_${status}`,
    message: `The server answered ${status}.`,
  }
  const refused = status >= 400 && status < 500 && !KEEPS_UPLOAD_RESUMABLE.has(status)
  return { kind: refused ? 'refused' : 'error', id, error: body }
}

function describe(error: tus.DetailedError): string {
  const response = error.originalResponse
  if (!response) return clientError(error).code
  const body = errorBodyOf(response.getBody())
  return `${response.getStatus()}${body ? ` ${body.code}` : ''}`
}

/** An error that happened on this side (a file that vanished, a refused connection). */
function clientError(error: unknown): ErrorBody {
  const cause =
    error instanceof tus.DetailedError && error.causingError ? error.causingError : error
  const code = (cause as NodeJS.ErrnoException).code
  const message = cause instanceof Error ? cause.message : String(cause)
  return { code: typeof code === 'string' ? code : 'client_error', message }
}

function idOf(url: string | null): string | undefined {
  if (!url) return undefined
  return new URL(url).pathname.split('/').filter(Boolean).at(-1)
}
