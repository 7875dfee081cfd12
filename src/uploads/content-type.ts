import { fileTypeFromBuffer } from 'file-type'

/** Enough for every signature file-type knows, including the entry names inside OOXML zips. */
export const SNIFF_BYTES = 64 * 1024

const TEXT_TYPES_TRUSTED_WHEN_TEXT = new Set([
  'application/json',
  'application/xml',
  'application/x-ndjson',
  'image/svg+xml',
])

/** Names apps send for types that file-type (and the allowed list) call otherwise. */
const ALIASES: Readonly<Record<string, string>> = {
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/x-png': 'image/png',
  'application/x-pdf': 'application/pdf',
  'application/x-zip-compressed': 'application/zip',
}

/**
 * `Text/Plain; charset=utf-8` → `text/plain`, `image/jpg` → `image/jpeg`; undefined when it is
 * not a MIME type at all.
 */
export function normalizeMimeType(raw: string): string | undefined {
  const type = raw.split(';')[0]?.trim().toLowerCase() ?? ''
  if (!/^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/.test(type)) return undefined
  return ALIASES[type] ?? type
}

/**
 * A file may turn out to be another type of the same kind than declared (a .jpg that is really a
 * WebP, a .pdf that is a ZIP): the detected type wins. It may not cross kinds: a script named
 * .png is text, not an image. application/octet-stream declares nothing.
 */
export function contradictsDeclaredType(
  declaredType: string | null,
  detectedType: string,
): boolean {
  if (declaredType === null || declaredType === 'application/octet-stream') return false
  return topLevelType(declaredType) !== topLevelType(detectedType)
}

function topLevelType(type: string): string {
  return type.slice(0, type.indexOf('/'))
}

export function isAllowedType(type: string, allowed: readonly string[]): boolean {
  return allowed.some(
    (pattern) =>
      pattern === type ||
      pattern === '*/*' ||
      (pattern.endsWith('/*') && type.startsWith(pattern.slice(0, -1))),
  )
}

/**
 * The type the bytes really are: magic numbers first; text has none, so text is recognised by
 * being valid UTF-8 without NUL bytes, and only then is a declared text subtype (text/csv,
 * application/json) believed. Anything else is application/octet-stream.
 */
export async function detectContentType(
  head: Uint8Array,
  declaredType: string | null,
): Promise<string> {
  const magic = await fileTypeFromBuffer(head)
  if (magic) return magic.mime
  if (!looksLikeText(head)) return 'application/octet-stream'
  if (declaredType?.startsWith('text/') || TEXT_TYPES_TRUSTED_WHEN_TEXT.has(declaredType ?? '')) {
    return declaredType as string
  }
  return 'text/plain'
}

function looksLikeText(head: Uint8Array): boolean {
  if (head.length === 0 || head.includes(0)) return false
  // The head may end inside a multi-byte character: drop up to three trailing bytes of one.
  for (let cut = 0; cut <= Math.min(3, head.length - 1); cut++) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, head.length - cut))
      return true
    } catch {
      if (head.length < SNIFF_BYTES) return false
    }
  }
  return false
}
