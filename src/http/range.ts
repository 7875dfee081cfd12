import type { RangeRequest } from '../uploads/upload.service.ts'

const SINGLE_RANGE = /^bytes=(\d*)-(\d*)$/

/**
 * One `bytes=` range, or undefined to send the whole file: RFC 9110 §14.2 lets a server ignore
 * a Range it does not support, such as several ranges at once, and a malformed one.
 */
export function parseRangeHeader(header: string | undefined): RangeRequest | undefined {
  const match = header ? SINGLE_RANGE.exec(header.trim()) : null
  if (!match) return undefined
  const [, first = '', last = ''] = match
  if (first === '' && last === '') return undefined
  if (first === '') return { suffixLength: Number(last) }
  const start = Number(first)
  const end = last === '' ? undefined : Number(last)
  if (end !== undefined && end < start) return undefined
  return { start, end }
}
