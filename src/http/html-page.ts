import { createHash } from 'node:crypto'

/**
 * The headers every HTML page tusbox serves (the demo at /, the API docs) is sent with
 * (security review L6): a CSP that lets only the page's own inline script and style run (by
 * hash, so no 'unsafe-inline') and scripts and requests from this origin; no framing
 * (clickjacking); no Referer carrying a page's path to another site.
 */
export function htmlPageHeaders(page: string): Record<string, string> {
  const scripts = inlineHashes(page, 'script')
  const styles = inlineHashes(page, 'style')
  const policy = [
    "default-src 'none'",
    `script-src 'self' ${scripts}`.trim(),
    `style-src ${styles || "'none'"}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ')
  return {
    'Content-Security-Policy': policy,
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'X-Content-Type-Options': 'nosniff',
  }
}

/** CSP source expressions for each inline <script> or <style> element of `page`. */
function inlineHashes(page: string, tag: 'script' | 'style'): string {
  const inline = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g')
  return [...page.matchAll(inline)]
    .map(
      ([, body]) =>
        `'sha256-${createHash('sha256')
          .update(body ?? '')
          .digest('base64')}'`,
    )
    .join(' ')
}
