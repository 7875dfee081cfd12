/**
 * Domain errors carry a stable machine-readable code and a kind; they know nothing of HTTP.
 * Each edge (the JSON API, the tus endpoint) maps the kind to a status once.
 */
export type ErrorKind =
  | 'invalid'
  | 'unauthenticated'
  | 'forbidden'
  | 'not_found'
  | 'gone'
  | 'conflict'
  | 'too_large'
  | 'unsupported_type'
  | 'range_not_satisfiable'
  | 'too_many'
  | 'unavailable'

export class AppError extends Error {
  readonly kind: ErrorKind
  readonly code: string

  constructor(kind: ErrorKind, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AppError'
    this.kind = kind
    this.code = code
  }
}

export function isAppError(error: unknown): error is AppError {
  return error instanceof AppError
}

/** A limit was reached; the client may try again after `retryAfterSeconds`. */
export class TooManyError extends AppError {
  readonly retryAfterSeconds: number
  constructor(code: string, message: string, retryAfterSeconds: number) {
    super('too_many', code, message)
    this.retryAfterSeconds = retryAfterSeconds
  }
}
