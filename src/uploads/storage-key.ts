const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

export function isUploadId(text: string): boolean {
  return UUID_V7.test(text)
}

/**
 * `<prefix>uploads/YYYY/MM/<id>`: the month comes from the uuidv7's own timestamp, so the key
 * can be derived from the id alone and two uploads never share a key, whatever their filenames.
 */
export function storageKeyFor(id: string, prefix = ''): string {
  const createdAt = new Date(Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16))
  const year = createdAt.getUTCFullYear()
  const month = String(createdAt.getUTCMonth() + 1).padStart(2, '0')
  return `${prefix}uploads/${year}/${month}/${id}`
}

export function uploadIdFromStorageKey(key: string): string | undefined {
  const id = key.slice(key.lastIndexOf('/') + 1)
  return isUploadId(id) ? id : undefined
}

const UUID_ANY = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(text: string): boolean {
  return UUID_ANY.test(text)
}
