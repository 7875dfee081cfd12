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
 * being valid UTF-8 without NUL bytes. Text that opens like markup a browser would run (HTML,
 * SVG, XML) is recorded as that, whatever was declared (security review I1: HTML declared as
 * application/json was stored as JSON, and webhook consumers and presigned downloads trust the
 * recorded type). Only other text has its declared text subtype (text/csv, application/json)
 * believed. Anything else is application/octet-stream.
 */
export async function detectContentType(
  head: Uint8Array,
  declaredType: string | null,
): Promise<string> {
  const magic = await fileTypeFromBuffer(head)
  if (magic && magic.mime !== 'application/xml') return magic.mime
  if (!looksLikeText(head)) return magic?.mime ?? 'application/octet-stream'
  const markup = markupTypeOf(head)
  if (markup) return markup
  if (declaredType?.startsWith('text/') || TEXT_TYPES_TRUSTED_WHEN_TEXT.has(declaredType ?? '')) {
    return declaredType as string
  }
  return 'text/plain'
}

/**
 * The tags the WHATWG MIME Sniffing Standard (§7.1, "rules for identifying an unknown MIME
 * type") takes for HTML when a document opens with them, followed by a space or `>`.
 */
const HTML_OPENINGS =
  /^<(!doctype html|html|head|script|iframe|h1|div|font|table|a|style|title|b|body|br|p|!--)[\s>]/
const XHTML_NAMESPACE = 'http://www.w3.org/1999/xhtml'

/** HTML, SVG or XML by how the text opens (after a BOM and whitespace); undefined otherwise. */
function markupTypeOf(head: Uint8Array): string | undefined {
  const text = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false })
    .decode(head)
    .trimStart()
    .toLowerCase()
  if (!text.startsWith('<')) return undefined
  if (/^<svg[\s>]/.test(text)) return 'image/svg+xml'
  if (HTML_OPENINGS.test(text)) return 'text/html'
  if (!text.startsWith('<?xml') && !text.startsWith('<!doctype')) return undefined
  if (/<svg[\s>]/.test(text)) return 'image/svg+xml'
  // An XML document with XHTML elements runs their scripts in a browser.
  if (text.includes(XHTML_NAMESPACE)) return 'application/xhtml+xml'
  return text.startsWith('<?xml') ? 'application/xml' : undefined
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
