/** A file as `GET /api/files/:id` presents it (the fields the CLI reads). */
export interface RemoteFile {
  readonly id: string
  readonly status: 'UPLOADING' | 'STORED' | 'FAILED' | 'DELETED' | 'EXPIRED'
  readonly filename: string | null
  readonly contentType: string | null
  readonly size: number | null
  readonly sha256: string | null
  readonly batchId: string | null
  readonly error: ErrorBody | null
}

export interface RemoteBatch {
  readonly id: string
  readonly completeRequestedAt: string | null
  readonly completedAt: string | null
  readonly allStored: boolean
  readonly files: readonly RemoteFile[]
}

export interface ErrorBody {
  readonly code: string
  readonly message: string
}

export class ApiError extends Error {
  readonly status: number
  readonly body: ErrorBody | undefined

  constructor(request: string, status: number, body: ErrorBody | undefined) {
    super(`${request} answered ${status}${body ? ` ${body.code}: ${body.message}` : '.'}`)
    this.status = status
    this.body = body
  }
}

/**
 * The JSON API lives beside the tus endpoint: `https://host/files` → `https://host/api`, and
 * behind a path prefix `https://host/tusbox/files` → `https://host/tusbox/api`.
 */
export function apiBaseFor(endpoint: string): string {
  const url = new URL(endpoint)
  url.pathname = `${url.pathname.replace(/\/+$/, '').replace(/[^/]*$/, '')}api`
  url.search = ''
  url.hash = ''
  return url.toString()
}

/** The few `/api` calls the upload command makes, with the same credentials as the tus requests. */
export class TusboxApi {
  readonly #base: string
  readonly #headers: Readonly<Record<string, string>>

  constructor(base: string, headers: Readonly<Record<string, string>>) {
    this.#base = base
    this.#headers = headers
  }

  createBatch(signal?: AbortSignal): Promise<RemoteBatch> {
    return this.#call('POST', '/batches', signal)
  }

  /** Undefined when there is no such batch (or, with authentication, it is someone else's). */
  async findBatch(id: string, signal?: AbortSignal): Promise<RemoteBatch | undefined> {
    try {
      return await this.#call<RemoteBatch>('GET', `/batches/${encodeURIComponent(id)}`, signal)
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return undefined
      throw error
    }
  }

  completeBatch(id: string, signal?: AbortSignal): Promise<RemoteBatch> {
    return this.#call('POST', `/batches/${encodeURIComponent(id)}/complete`, signal)
  }

  getFile(id: string, signal?: AbortSignal): Promise<RemoteFile> {
    return this.#call('GET', `/files/${encodeURIComponent(id)}`, signal)
  }

  async #call<T>(method: string, path: string, signal: AbortSignal | undefined): Promise<T> {
    const request = `${method} ${this.#base}${path}`
    let response: Response
    try {
      response = await fetch(`${this.#base}${path}`, {
        method,
        headers: this.#headers,
        ...(signal ? { signal } : {}),
      })
    } catch (error) {
      if (signal?.aborted) throw error
      // fetch says only "fetch failed"; the reason (ECONNREFUSED, a DNS failure) is its cause.
      const cause = (error as { cause?: NodeJS.ErrnoException }).cause
      throw new Error(`${request} failed: ${cause?.code ?? cause?.message ?? String(error)}`)
    }
    const text = await response.text()
    if (!response.ok) throw new ApiError(request, response.status, errorBodyOf(text))
    return JSON.parse(text) as T
  }
}

/** The `{"error": {"code", "message"}}` tusbox answers with, if that is what `text` is. */
export function errorBodyOf(text: string): ErrorBody | undefined {
  try {
    const parsed = JSON.parse(text) as { error?: Partial<ErrorBody> }
    const { code, message } = parsed.error ?? {}
    if (typeof code === 'string' && typeof message === 'string') return { code, message }
  } catch {
    // Not JSON: a proxy's HTML page, say. The status alone is reported.
  }
  return undefined
}
