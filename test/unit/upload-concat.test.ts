import { v7 as uuidv7 } from 'uuid'
import { describe, expect, it } from 'vitest'
import { parseUploadConcat } from '../../src/tus/concatenation.ts'

const id = uuidv7()
const other = uuidv7()

function parse(
  value: string,
  options: { publicUrl?: string; headers?: Record<string, string> } = {},
) {
  const request = new Request('http://10.0.0.5:1080/files', {
    method: 'POST',
    headers: { 'Upload-Concat': value, ...options.headers },
  })
  return parseUploadConcat(request, { publicUrl: options.publicUrl, tusPath: '/files' })
}

describe('reading Upload-Concat', () => {
  it('reads partial', () => {
    expect(parse('partial')).toEqual({ kind: 'partial' })
  })

  it('reads absolute URLs on the request host, relative URLs, and runs of spaces between them', () => {
    expect(parse(`final;http://10.0.0.5:1080/files/${id}   /files/${other} `)).toEqual({
      kind: 'final',
      partialIds: [id, other],
    })
  })

  it('reads URLs on the PUBLIC_URL host, under its path prefix, as a proxy rewrote them', () => {
    const publicUrl = 'https://uploads.example.org/tusbox'
    expect(parse(`final;${publicUrl}/files/${id}`, { publicUrl })).toEqual({
      kind: 'final',
      partialIds: [id],
    })
    expect(parse(`final;https://uploads.example.org/files/${id}`, { publicUrl }).kind).toBe(
      'refused',
    )
  })

  it.each([
    ['another host', `final;http://elsewhere.example.org/files/${id}`],
    ['another path', `final;/api/files/${id}`],
    ['an id that is not an upload id', 'final;/files/not-an-id'],
    ['no URL at all', 'final;'],
    ['only spaces', 'final;   '],
    ['neither partial nor final', 'partial;x'],
    ['a URL that cannot be parsed', 'final;http://[::1'],
  ])('refuses %s with invalid_upload_concat', (_what, value) => {
    expect(parse(value)).toMatchObject({ kind: 'refused', code: 'invalid_upload_concat' })
  })

  it('refuses a final that also declares a length', () => {
    expect(parse(`final;/files/${id}`, { headers: { 'Upload-Length': '5' } }).kind).toBe('refused')
  })
})
