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
