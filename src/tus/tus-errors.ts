import { ERRORS } from '@tus/utils'

const CODE_BY_BODY = new Map<string, string>(
  Object.entries(ERRORS).map(([name, error]) => [
    error.body,
    name.toLowerCase().replace(/^err_/, ''),
  ]),
)

const CODE_BY_STATUS: Readonly<Record<number, string>> = {
  400: 'invalid_request',
  403: 'invalid_request',
  404: 'upload_not_found',
  409: 'offset_mismatch',
  410: 'upload_gone',
  412: 'unsupported_tus_version',
  413: 'too_large',
  415: 'unsupported_media_type',
  423: 'upload_locked',
  500: 'internal_error',
}

/** @tus/server answers with plain-text bodies; this names them for the `{error: {code}}` shape. */
export function tusErrorCode(status: number, body: string): string {
  if (status === ERRORS.INVALID_OFFSET.status_code) return 'offset_mismatch'
  // The header validator answers "Invalid upload-length upload-metadata" and the like.
  if (status === 400 && body.startsWith('Invalid ')) return 'invalid_header'
  return CODE_BY_BODY.get(body) ?? CODE_BY_STATUS[status] ?? `http_${status}`
}
