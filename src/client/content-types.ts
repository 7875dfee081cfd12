import path from 'node:path'

/**
 * The `filetype` sent with a file, from its extension. The server detects the real type from the
 * bytes either way, so this table only needs the cases where what the client declares matters:
 * text has no magic number, so only a declared `text/csv` or `application/json` is believed
 * (otherwise it is stored as `text/plain`), and a declared type outside the allowed list is
 * refused at creation, before any byte is sent. Other extensions declare nothing, and so do text
 * formats outside the default allowed list (`.md`, `.xml`): undeclared, they are stored as
 * `text/plain` instead of being refused.
 */
const TYPES_BY_EXTENSION: Readonly<Record<string, string>> = {
  '.txt': 'text/plain',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.heic': 'image/heic',
  '.zip': 'application/zip',
  '.docx': 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  '.xlsx': 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
}

export function typeFromExtension(filePath: string): string | undefined {
  return TYPES_BY_EXTENSION[path.extname(filePath).toLowerCase()]
}
