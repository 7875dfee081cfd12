import { describe, expect, it } from 'vitest'
import {
  contradictsDeclaredType,
  detectContentType,
  isAllowedType,
  normalizeMimeType,
} from '../../src/uploads/content-type.ts'
import { csvBytes, elfBytes, pngBytes } from '../helpers/fixtures.ts'

const pdf = Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n')
const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01])

describe('detectContentType', () => {
  it.each([
    ['a PNG', pngBytes(1000), null, 'image/png'],
    ['a PNG declared as a PDF', pngBytes(1000), 'application/pdf', 'image/png'],
    ['a PDF', pdf, null, 'application/pdf'],
    ['a JPEG', jpeg, 'image/png', 'image/jpeg'],
    ['an ELF executable declared as a PNG', elfBytes(1000), 'image/png', 'application/x-elf'],
    ['CSV text declared as CSV', csvBytes(10), 'text/csv', 'text/csv'],
    ['CSV text declared as nothing', csvBytes(10), null, 'text/plain'],
    ['text declared as a PNG', csvBytes(10), 'image/png', 'text/plain'],
    ['JSON declared as JSON', Buffer.from('{"a":1}'), 'application/json', 'application/json'],
    ['bytes with NULs', Buffer.from([1, 2, 0, 4]), 'text/plain', 'application/octet-stream'],
    [
      'invalid UTF-8',
      Buffer.from([0x61, 0xc3, 0x28, 0x62]),
      'text/plain',
      'application/octet-stream',
    ],
    ['nothing at all', Buffer.alloc(0), 'text/plain', 'application/octet-stream'],
    [
      'HTML declared as JSON',
      Buffer.from('<!DOCTYPE html><script>alert(1)</script>'),
      'application/json',
      'text/html',
    ],
    [
      'HTML after a BOM and blank lines',
      Buffer.from('\ufeff\n\n  <html>'),
      'text/csv',
      'text/html',
    ],
    ['an HTML fragment declared as text', Buffer.from('<p>hi</p>'), 'text/plain', 'text/html'],
    [
      'SVG declared as text',
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'),
      'text/plain',
      'image/svg+xml',
    ],
    [
      'SVG behind an XML declaration, declared as JSON',
      Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'),
      'application/json',
      'image/svg+xml',
    ],
    [
      'XHTML declared as XML',
      Buffer.from('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>'),
      'application/xml',
      'application/xhtml+xml',
    ],
    [
      'XML declared as CSV',
      Buffer.from('<?xml version="1.0"?><a/>'),
      'text/csv',
      'application/xml',
    ],
    ['text that only starts with <', Buffer.from('<3 to all, a,b,c'), 'text/csv', 'text/csv'],
  ])('calls %s %s', async (_case, bytes, declared, expected) => {
    expect(await detectContentType(bytes, declared)).toBe(expected)
  })

  it('accepts text whose sniffed head ends inside a multi-byte character', async () => {
    const head = Buffer.from('é'.repeat(40_000)).subarray(0, 64 * 1024 - 1)
    expect(head.length).toBe(64 * 1024 - 1)
    const fullHead = Buffer.concat([Buffer.from('a'), head])
    expect(await detectContentType(fullHead, 'text/plain')).toBe('text/plain')
  })
})

describe('isAllowedType', () => {
  const allowed = ['image/*', 'application/pdf']
  it.each([
    ['image/png', true],
    ['image/heic', true],
    ['application/pdf', true],
    ['application/pdfx', false],
    ['imagex/png', false],
    ['text/plain', false],
  ])('%s → %s', (type, expected) => {
    expect(isAllowedType(type, allowed)).toBe(expected)
  })

  it('allows everything under */*', () => {
    expect(isAllowedType('application/x-elf', ['*/*'])).toBe(true)
  })
})

describe('contradictsDeclaredType', () => {
  it.each([
    [null, 'text/plain', false],
    ['application/octet-stream', 'image/png', false],
    ['image/jpeg', 'image/webp', false],
    ['application/pdf', 'application/zip', false],
    ['text/csv', 'text/csv', false],
    ['image/png', 'text/plain', true],
    ['application/pdf', 'image/png', true],
    ['text/plain', 'application/x-elf', true],
  ])('declared %s, detected %s → %s', (declared, detected, expected) => {
    expect(contradictsDeclaredType(declared, detected)).toBe(expected)
  })
})

describe('normalizeMimeType', () => {
  it('maps the aliases apps send to the names the allowed list uses', () => {
    expect(normalizeMimeType('image/jpg')).toBe('image/jpeg')
    expect(normalizeMimeType('application/x-zip-compressed')).toBe('application/zip')
  })

  it('lowercases and drops parameters, and refuses what is not a type', () => {
    expect(normalizeMimeType('Image/PNG; q=1')).toBe('image/png')
    expect(normalizeMimeType('png')).toBeUndefined()
    expect(normalizeMimeType('image/')).toBeUndefined()
  })
})
