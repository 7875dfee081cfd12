export interface CorsPolicy {
  /** Whether a browser page from `origin` may read tusbox's answers. */
  allows(origin: string | undefined): origin is string
}

export function corsPolicy(allowedOrigins: '*' | readonly string[]): CorsPolicy {
  const allowed = new Set(allowedOrigins === '*' ? [] : allowedOrigins)
  return {
    allows: (origin): origin is string =>
      origin !== undefined && (allowedOrigins === '*' || allowed.has(origin.toLowerCase())),
  }
}

/**
 * Resumable Uploads for HTTP, for pages that speak it (tus-js-client's IETF modes): what a
 * preflight must allow them to send, and what they must be able to read back.
 */
export const RUFH_REQUEST_HEADERS: readonly string[] = [
  'Upload-Draft-Interop-Version',
  'Upload-Complete',
  'Upload-Incomplete',
  'Content-Disposition',
]
export const RUFH_RESPONSE_HEADERS: readonly string[] = [
  'Upload-Draft-Interop-Version',
  'Upload-Complete',
  'Upload-Incomplete',
  'Upload-Limit',
]
