const KiB = 1024

const MULTIPLIERS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: KiB,
  kib: KiB,
  m: KiB ** 2,
  mib: KiB ** 2,
  g: KiB ** 3,
  gib: KiB ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
}

/**
 * `8MiB`, `512KiB`, `1.5GiB`, `10MB` (decimal) or a plain byte count; undefined when it is none
 * of these or not a whole number of bytes.
 */
export function parseByteSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text)
  if (!match) return undefined
  const multiplier = MULTIPLIERS[(match[2] ?? '').toLowerCase()]
  if (multiplier === undefined) return undefined
  const bytes = Number(match[1]) * multiplier
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** Binary units, one decimal: `912 B`, `4.0 KiB`, `12.3 MiB`. */
export function formatBytes(bytes: number): string {
  if (bytes < KiB) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes / KiB
  let unit = 0
  while (value >= KiB && unit < units.length - 1) {
    value /= KiB
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / KiB ** 2).toFixed(1)} MiB/s`
}

/** `0:07`, `12:34`, `1:02:03`; `--:--` while there is nothing to estimate from. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds) || seconds < 0) return '--:--'
  const whole = Math.ceil(seconds)
  const hours = Math.floor(whole / 3600)
  const minutes = Math.floor((whole % 3600) / 60)
  const rest = String(whole % 60).padStart(2, '0')
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`
}
