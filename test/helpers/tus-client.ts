import * as tus from 'tus-js-client'

/**
 * `protocol` picks tus 1.0 or one of the two RUFH drafts tus-js-client 4 speaks; its upload.js
 * reads the option, but 4.3.1's index.d.ts does not declare it.
 */
export type TusProtocol = 'tus-v1' | 'ietf-draft-03' | 'ietf-draft-05'

export type TusOptions = Omit<tus.UploadOptions, 'endpoint' | 'onSuccess' | 'onError'> & {
  readonly protocol?: TusProtocol
}

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

/**
 * uploadWithTus, restarted the way an app would when onError reports a lost connection that
 * tus-js-client did not retry. tus-js-client 4.3.1 sends a parallel upload's final POST through
 * a path whose network errors carry no `originalRequest`, so `shouldRetry` refuses them and
 * onError fires at once. A restart resumes the partials (HEAD) and asks for the same final again.
 */
export function uploadRestartingOnLostConnection(
  endpoint: string,
  data: Buffer,
  options: TusOptions = {},
  maxRestarts = 5,
): Promise<FinishedUpload & { readonly restarts: number }> {
  return new Promise((resolve, reject) => {
    let restarts = 0
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      ...options,
      onSuccess: () => resolve({ ...finished(upload), restarts }),
      onError: (error) => {
        if (isDetailedError(error) || restarts >= maxRestarts) return reject(error)
        restarts++
        upload.start()
      },
    })
    upload.start()
  })
}

/**
 * Starts an upload and stops it once at least `bytes` have been acknowledged by the server:
 * aborted (resumable later), or terminated through tus (DELETE) when `terminate` is set.
 */
export function uploadUntil(
  endpoint: string,
  data: Buffer,
  bytes: number,
  options: TusOptions & { terminate?: boolean } = {},
): Promise<FinishedUpload> {
  const { terminate = false, ...tusOptions } = options
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(data, {
      endpoint,
      retryDelays: [],
      ...tusOptions,
      onChunkComplete: (_chunk, accepted) => {
        if (accepted < bytes) return
        const result = finished(upload)
        upload.abort(terminate).then(() => resolve(result), reject)
      },
      onSuccess: () => reject(new Error('the upload finished before it could be stopped')),
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
