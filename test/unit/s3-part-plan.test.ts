import { describe, expect, it } from 'vitest'
import { planParts } from '../../src/tus/datastore/s3-store.ts'

const MiB = 1024 * 1024

describe('the parts a body of known length is streamed into', () => {
  it('cuts a body into parts of the part size and ends the upload with the rest, however small', () => {
    expect(planParts(17 * MiB + 3, true, 8 * MiB, 5 * MiB)).toEqual({
      parts: [8 * MiB, 8 * MiB, MiB + 3],
      tail: 0,
    })
  })

  it('makes a rest of at least the smallest part a part of its own before the upload ends', () => {
    expect(planParts(14 * MiB, false, 8 * MiB, 5 * MiB)).toEqual({
      parts: [8 * MiB, 6 * MiB],
      tail: 0,
    })
  })

  it('keeps a rest below the smallest part as the tail, so that parts keep one size (R2)', () => {
    expect(planParts(10 * MiB, false, 8 * MiB, 8 * MiB)).toEqual({
      parts: [8 * MiB],
      tail: 2 * MiB,
    })
  })

  it('keeps a whole body below the smallest part as the tail until the upload ends', () => {
    expect(planParts(MiB, false, 8 * MiB, 5 * MiB)).toEqual({ parts: [], tail: MiB })
    expect(planParts(MiB, true, 8 * MiB, 5 * MiB)).toEqual({ parts: [MiB], tail: 0 })
  })
})
