import { describe, expect, it } from 'vitest'
import { attachmentDisposition } from '../../src/http/content-disposition.ts'
import { parseRangeHeader } from '../../src/http/range.ts'
import { parseDuration } from '../../src/lib/duration.ts'
import { isUploadId, storageKeyFor, uploadIdFromStorageKey } from '../../src/uploads/storage-key.ts'

describe('attachmentDisposition', () => {
  it('gives an ASCII fallback and the exact name in RFC 5987 form', () => {
    expect(attachmentDisposition('report.pdf')).toBe(
      `attachment; filename="report.pdf"; filename*=UTF-8''report.pdf`,
    )
    expect(attachmentDisposition('naïve "q" 100%.txt')).toBe(
      `attachment; filename="na_ve _q_ 100_.txt"; filename*=UTF-8''na%C3%AFve%20%22q%22%20100%25.txt`,
    )
    expect(attachmentDisposition("it's (1).txt")).toBe(
      `attachment; filename="it's (1).txt"; filename*=UTF-8''it%27s%20%281%29.txt`,
    )
  })

  it('keeps quotes, backslashes, CR/LF and semicolons from breaking out of the parameters', () => {
    expect(attachmentDisposition('a"b\\c;d\r\ne.txt')).toBe(
      `attachment; filename="a_b_c;d__e.txt"; filename*=UTF-8''a%22b%5Cc%3Bd%0D%0Ae.txt`,
    )
  })

  it.each([
    'a"b\\c;d\r\ne.txt',
    '日本語の報告書.pdf',
    'emoji 📄 %41.txt',
    '"; filename="evil.exe',
    "x'; filename*=UTF-8''evil.exe",
    'tab\there.txt',
  ])('gives %j as one header value of visible ASCII that decodes back to the name', (name) => {
    const header = attachmentDisposition(name)
    // RFC 9110 §5.5: field values are visible characters and spaces; RFC 8187 §3.2.1 attr-chars.
    expect(header).toMatch(/^[\x20-\x7e]+$/)
    const match =
      /^attachment; filename="([^"\\]*)"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]+)$/.exec(
        header,
      )
    expect(decodeURIComponent(match?.[2] ?? '')).toBe(name)
  })
})

describe('parseRangeHeader', () => {
  it.each([
    ['bytes=0-99', { start: 0, end: 99 }],
    ['bytes=100-', { start: 100, end: undefined }],
    ['bytes=-50', { suffixLength: 50 }],
  ])('reads %s', (header, expected) => {
    expect(parseRangeHeader(header)).toEqual(expected)
  })

  it.each([undefined, '', 'bytes=5-1', 'bytes=0-1,3-4', 'items=0-1', 'bytes=-', 'bytes=a-b'])(
    'ignores %j, so the whole file is sent',
    (header) => {
      expect(parseRangeHeader(header)).toBeUndefined()
    },
  )
})

describe('parseDuration', () => {
  it('reads seconds, minutes, hours and days', () => {
    expect([
      parseDuration('90s'),
      parseDuration('15m'),
      parseDuration('24h'),
      parseDuration('7d'),
    ]).toEqual([90_000, 900_000, 86_400_000, 604_800_000])
  })

  it.each(['', '5', '1.5h', '3w', '-1h', '1 h'])('refuses %j', (text) => {
    expect(parseDuration(text)).toBeUndefined()
  })
})

describe('storage keys', () => {
  const id = '01a22063-b7db-76c5-ade9-046081fece3e'

  it('puts an upload under the year and month of its uuidv7 timestamp', () => {
    expect(storageKeyFor(id)).toBe(`uploads/2026/11/${id}`)
    expect(storageKeyFor(id, 'tenant-a/')).toBe(`tenant-a/uploads/2026/11/${id}`)
    expect(uploadIdFromStorageKey(`tenant-a/uploads/2026/11/${id}`)).toBe(id)
  })

  it('accepts only uuidv7 upload ids', () => {
    expect(isUploadId(id)).toBe(true)
    expect(isUploadId('f47ac10b-58cc-4372-a567-0e02b2c3d479')).toBe(false)
    expect(isUploadId('../../etc/passwd')).toBe(false)
    expect(uploadIdFromStorageKey('uploads/2026/11/..')).toBeUndefined()
  })
})
