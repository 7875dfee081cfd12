import { AppError } from '../lib/errors.ts'

/** Room for any real name while staying under the 255-byte limit of common filesystems. */
export const MAX_FILENAME_BYTES = 255

// C0/C1 controls, DEL, and the bidi overrides that make a name display reversed
// (U+202E turns "evil<RLO>fdp.exe" into what reads as "evilexe.pdf").
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u

/**
 * Keeps the last path part of a client-supplied name (browsers and apps send
 * `C:\fakepath\a.pdf` or `photos/a.jpg`) and refuses names that only make sense as an attack.
 */
export function sanitizeFilename(raw: string): string {
  const segments = raw.normalize('NFC').split(/[/\\]/)
  if (segments.includes('..')) {
    throw invalidFilename('must not contain ".." path segments')
  }
  if (FORBIDDEN.test(raw)) {
    throw invalidFilename('must not contain control characters')
  }
  const name = (segments.at(-1) ?? '').trim()
  if (name === '' || /^\.+$/.test(name)) {
    throw invalidFilename('must contain a name, not only dots or a path')
  }
  return truncateUtf8(name, MAX_FILENAME_BYTES)
}

/** Shortens the stem, keeping a short extension, without splitting a UTF-8 character. */
function truncateUtf8(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name
  const dot = name.lastIndexOf('.')
  const extension = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : ''
  let stem = name.slice(0, name.length - extension.length)
  while (Buffer.byteLength(stem + extension) > maxBytes) {
    stem = Array.from(stem).slice(0, -1).join('')
  }
  return stem + extension
}

function invalidFilename(reason: string): AppError {
  return new AppError('invalid', 'invalid_filename', `The filename ${reason}.`)
}
