import { describe, expect, it } from 'vitest'
import { copyPlan } from '../../src/tus/datastore/s3-objects.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

describe('the plan for joining partial uploads inside S3', () => {
  it('copies each partial as one part when every partial but the last has 5 MiB or more', () => {
    const plan = copyPlan([
      { key: 'a', size: 5 * MiB },
      { key: 'b', size: 6 * MiB },
      { key: 'c', size: 1 },
    ])
    expect(plan).toEqual([{ key: 'a' }, { key: 'b' }, { key: 'c' }])
  })

  it('has no plan (the bytes are streamed instead) when a partial other than the last is below 5 MiB', () => {
    expect(
      copyPlan([
        { key: 'a', size: 5 * MiB - 1 },
        { key: 'b', size: 6 * MiB },
      ]),
    ).toBeUndefined()
  })

  it('leaves out empty partials, which add no bytes and would break the part rule', () => {
    expect(
      copyPlan([
        { key: 'a', size: 0 },
        { key: 'b', size: 6 * MiB },
        { key: 'c', size: 10 },
      ]),
    ).toEqual([{ key: 'b' }, { key: 'c' }])
  })

  it('splits a partial above 5 GiB into ranges of at most 5 GiB that cover it exactly', () => {
    const plan = copyPlan([{ key: 'big', size: 11 * GiB }]) ?? []
    expect(plan).toHaveLength(3)
    expect(
      plan.every((part) => part.range && part.range.end - part.range.start + 1 <= 5 * GiB),
    ).toBe(true)
    expect(plan[0]?.range?.start).toBe(0)
    expect(plan.at(-1)?.range?.end).toBe(11 * GiB - 1)
    for (let index = 1; index < plan.length; index++) {
      expect(plan[index]?.range?.start).toBe((plan[index - 1]?.range?.end ?? 0) + 1)
    }
  })
})
