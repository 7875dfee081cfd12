import * as tus from 'tus-js-client'

export type TusOptions = Omit<tus.UploadOptions, 'endpoint' | 'onSuccess' | 'onError'>

export interface FinishedUpload {
  readonly url: string
  readonly id: string
}

/** Runs one tus-js-client upload to its end: resolves on success, rejects with its DetailedError. */
export function uploadWithTus(
  endpoint: string,
  data: Buffer,
  options: TusOptions = {},
): Promise<FinishedUpload> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      ...options,
      onSuccess: () => resolve(finished(upload)),
      onError: reject,
    })
    upload.start()
  })
}

/** Starts an upload and aborts it once at least `bytes` have been acknowledged by the server. */
export function uploadUntil(
  endpoint: string,
  data: Buffer,
  bytes: number,
  options: TusOptions = {},
): Promise<FinishedUpload> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      ...options,
      onChunkComplete: (_chunk, accepted) => {
        if (accepted < bytes) return
        upload.abort().then(() => resolve(finished(upload)), reject)
      },
      onSuccess: () => reject(new Error('the upload finished before it could be interrupted')),
      onError: reject,
    })
    upload.start()
  })
}

/** Creates an upload and terminates it through tus (DELETE) after `bytes` were acknowledged. */
export function uploadThenTerminate(
  endpoint: string,
  data: Buffer,
  bytes: number,
  options: TusOptions = {},
): Promise<FinishedUpload> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      ...options,
      onChunkComplete: (_chunk, accepted) => {
        if (accepted < bytes) return
        const result = finished(upload)
        upload.abort(true).then(() => resolve(result), reject)
      },
      onSuccess: () => reject(new Error('the upload finished before it could be terminated')),
      onError: reject,
    })
    upload.start()
  })
}

function finished(upload: tus.Upload): FinishedUpload {
  const url = upload.url
  if (!url) throw new Error('tus-js-client has no upload URL')
  return { url, id: url.slice(url.lastIndexOf('/') + 1) }
}

export function isDetailedError(error: unknown): error is tus.DetailedError {
  return error instanceof tus.DetailedError
}
