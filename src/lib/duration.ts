const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

const DURATION = /^(\d+)(s|m|h|d)$/

/** Parses `90s`, `15m`, `24h` or `7d` into milliseconds; undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim())
  if (!match) return undefined
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS]
  return Number(amount) * UNIT_MS[unit]
}
