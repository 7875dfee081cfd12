import { describe, expect, it } from 'vitest'
import { sanitizeFilename } from '../../src/uploads/filename.ts'
import { readUploadFields } from '../../src/uploads/upload-metadata.ts'

describe('sanitizeFilename', () => {
  it.each([
    ['report.pdf', 'report.pdf'],
    ['C:\\fakepath\\photo.jpg', 'photo.jpg'],
    ['holiday/2026/beach.png', 'beach.png'],
    ['  spaced.txt  ', 'spaced.txt'],
    ['.env', '.env'],
    ['e\u0301te\u0301.txt', 'été.txt'],
  ])('keeps the last path part of %j as %j', (raw, expected) => {
    expect(sanitizeFilename(raw)).toBe(expected)
  })

  it.each([
    ['../secret.txt'],
    ['a/../../b.txt'],
    ['a\u0000.png'],
    ['bell\u0007.png'],
    ['evil\u202efdp.exe'],
    ['..'],
    ['...'],
    [''],
    ['dir/'],
  ])('refuses %j with invalid_filename', (raw) => {
    expect(() => sanitizeFilename(raw)).toThrow(
      expect.objectContaining({ code: 'invalid_filename' }),
    )
  })

  it('shortens a long name to 255 bytes, keeping its extension and whole characters', () => {
    const name = `${'é'.repeat(300)}.pdf`
    const safe = sanitizeFilename(name)
    expect(Buffer.byteLength(safe)).toBeLessThanOrEqual(255)
    expect(safe.endsWith('é.pdf')).toBe(true)
    expect(safe).not.toContain('\ufffd')
  })
})

describe('readUploadFields', () => {
  it('reads filename/filetype as tus-js-client sends them and name/type as others do', () => {
    expect(readUploadFields({ filename: 'a.png', filetype: 'image/png' })).toEqual({
      filename: 'a.png',
      declaredType: 'image/png',
      batchId: null,
    })
    expect(readUploadFields({ name: 'b.csv', type: 'Text/CSV; charset=utf-8' })).toEqual({
      filename: 'b.csv',
      declaredType: 'text/csv',
      batchId: null,
    })
  })

  it('gives nulls when nothing is declared', () => {
    expect(readUploadFields(undefined)).toEqual({
      filename: null,
      declaredType: null,
      batchId: null,
    })
    expect(readUploadFields({ filename: null, filetype: '' })).toEqual({
      filename: null,
      declaredType: null,
      batchId: null,
    })
  })

  it('normalises a batchId and refuses one that is not an id', () => {
    expect(readUploadFields({ batchId: '01A22063-B7DB-76C5-ADE9-046081FECE3E' }).batchId).toBe(
      '01a22063-b7db-76c5-ade9-046081fece3e',
    )
    expect(() => readUploadFields({ batchId: '42' })).toThrow(
      expect.objectContaining({ code: 'invalid_batch_id' }),
    )
  })

  it('refuses a filetype that is not a MIME type', () => {
    expect(() => readUploadFields({ filetype: 'png' })).toThrow(
      expect.objectContaining({ code: 'invalid_metadata' }),
    )
  })

  it('refuses a NUL in any value it keeps, which PostgreSQL could not store', () => {
    expect(() => readUploadFields({ filename: 'a.png', note: 'a\u0000b' })).toThrow(
      expect.objectContaining({ code: 'invalid_metadata', message: expect.stringMatching(/note/) }),
    )
  })
})
