import { describe, expect, it } from 'vitest'
import { SizeAllowance } from '../../src/lib/size-allowance.ts'

describe('SizeAllowance', () => {
  it('gives the large size to at most maxLarge holders at a time, the small one to the others', () => {
    const allowance = new SizeAllowance({ large: 1024, small: 128, maxLarge: 2 })

    const taken = [allowance.take(), allowance.take(), allowance.take()]
    allowance.giveBack(128)
    const whileFull = allowance.take()
    allowance.giveBack(1024)
    const afterALargeCameBack = allowance.take()

    expect(taken).toEqual([1024, 1024, 128])
    expect(whileFull).toBe(128)
    expect(afterALargeCameBack).toBe(1024)
  })
})
