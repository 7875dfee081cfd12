/** Raw tus requests for the cases no well-behaved client sends. */
export const TUS = { 'Tus-Resumable': '1.0.0' } as const

export function encodeMetadata(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([key, value]) => `${key} ${Buffer.from(value).toString('base64')}`)
    .join(',')
}

export async function createUpload(
  endpoint: string,
  length: number | string,
  metadata: Record<string, string> | string = {},
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  return fetch(endpoint, {
    method: 'POST',
    headers: {
      ...TUS,
      'Upload-Length': String(length),
      'Upload-Metadata': typeof metadata === 'string' ? metadata : encodeMetadata(metadata),
      ...extraHeaders,
    },
  })
}

export async function patchUpload(
  url: string,
  offset: number,
  body: Uint8Array,
  extraHeaders: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: 'PATCH',
    headers: {
      ...TUS,
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
      ...extraHeaders,
    },
    body,
  })
}

export async function errorOf(response: Response): Promise<{ code: string; message: string }> {
  expectJson(response)
  const body = (await response.json()) as { error: { code: string; message: string } }
  return body.error
}

function expectJson(response: Response): void {
  const type = response.headers.get('content-type') ?? ''
  if (!type.startsWith('application/json')) {
    throw new Error(`expected a JSON error, got ${response.status} with Content-Type "${type}"`)
  }
}
