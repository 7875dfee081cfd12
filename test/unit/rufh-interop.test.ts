import { describe, expect, it } from 'vitest'
import {
  completionHeader,
  interopVersionOf,
  isRufhRequest,
  readUploadFields,
  uploadLimitHeader,
} from '../../src/rufh/interop.ts'

describe('RUFH interop versions', () => {
  it('tells RUFH requests from tus ones by their version headers', () => {
    expect(isRufhRequest(new Headers({ 'Upload-Draft-Interop-Version': '8' }))).toBe(true)
    expect(
      isRufhRequest(new Headers({ 'Upload-Draft-Interop-Version': '8', 'Tus-Resumable': '1.0.0' })),
    ).toBe(false)
    expect(isRufhRequest(new Headers({ 'Upload-Offset': '0' }))).toBe(false)
  })

  it('serves versions 3 to 8 and no other', () => {
    const named = (value: string) =>
      interopVersionOf(new Headers({ 'Upload-Draft-Interop-Version': value }))
    expect(['3', '4', '5', '6', '7', '8'].map(named)).toEqual([3, 4, 5, 6, 7, 8])
    expect(['2', '9', '8.0', '08', '', '?1'].map(named)).toEqual(Array(6).fill(undefined))
  })

  it('reads Upload-Incomplete for interop 3 as the inverse of Upload-Complete', () => {
    const v3 = readUploadFields(new Headers({ 'Upload-Incomplete': '?1' }), 3)
    const v8 = readUploadFields(new Headers({ 'Upload-Complete': '?1' }), 8)
    expect(v3.complete).toBe(false)
    expect(v8.complete).toBe(true)
    expect(readUploadFields(new Headers({ 'Upload-Complete': '?1' }), 3).complete).toBeUndefined()
    expect(completionHeader(3, true)).toEqual(['Upload-Incomplete', '?0'])
    expect(completionHeader(4, true)).toEqual(['Upload-Complete', '?1'])
  })

  it('reads offsets and lengths as structured Integers', () => {
    const fields = readUploadFields(
      new Headers({ 'Upload-Offset': '42', 'Upload-Length': '999999999999999' }),
      8,
    )
    expect(fields).toEqual({ complete: undefined, offset: 42, length: 999_999_999_999_999 })
  })

  it.each([
    ['Upload-Complete', '?2'],
    ['Upload-Complete', '?1;x'],
    ['Upload-Complete', '1'],
    ['Upload-Complete', '?0, ?1'],
    ['Upload-Offset', '-1'],
    ['Upload-Offset', '1.5'],
    ['Upload-Offset', '"12"'],
    ['Upload-Length', '1234567890123456'],
  ])('refuses %s: %s as malformed', (name, value) => {
    expect(() => readUploadFields(new Headers({ [name]: value }), 8)).toThrow(
      expect.objectContaining({ code: 'malformed_header' }),
    )
  })

  it('announces limits as a Dictionary, with expires before interop 7 and max-age from it', () => {
    const limits = { maxSize: 1000, maxAgeSeconds: 59.9 }
    expect(uploadLimitHeader(6, limits)).toBe('max-size=1000, min-size=0, expires=59')
    expect(uploadLimitHeader(8, limits)).toBe('max-size=1000, min-size=0, max-age=59')
  })
})
