/** What a benchmark run records, and the figures and targets it reports. */

export const SUBJECTS = ['A file', 'A discard', 'B', 'C', 'D', 'E'] as const
export type Subject = (typeof SUBJECTS)[number]

export const SUBJECT_NAMES: Readonly<Record<Subject, string>> = {
  'A file': 'node:http → file',
  'A discard': 'node:http → discard',
  B: 'bare @tus/server, FileStore',
  C: 'tusbox, file store',
  D: 'tusbox, S3 store',
  E: 'raw S3 (lib-storage)',
}

export interface Figure {
  readonly id: string
  readonly label: string
  readonly unit: string
  readonly digits: number
}

/** One subject's values for one figure. */
export interface Series {
  readonly figure: Figure
  readonly subject: Subject
}

/** Every value of every run, by figure and subject, in the order they were measured. */
export class Results {
  readonly figures: Figure[] = []
  readonly #runs = new Map<string, Map<Subject, number[]>>()
  /** Per figure: the share of the machine's CPU other processes used while it was measured. */
  readonly #othersCpu = new Map<string, number>()

  define(figure: Figure): Figure {
    this.figures.push(figure)
    this.#runs.set(figure.id, new Map())
    return figure
  }

  add(figure: Figure, subject: Subject, value: number): void {
    const bySubject = this.#runs.get(figure.id)
    if (!bySubject) throw new Error(`figure ${figure.id} is not defined`)
    bySubject.set(subject, [...(bySubject.get(subject) ?? []), value])
  }

  setOthersCpu(figure: Figure, percent: number): void {
    this.#othersCpu.set(figure.id, percent)
  }

  othersCpu(figure: Figure): number | undefined {
    return this.#othersCpu.get(figure.id)
  }

  runs(figure: Figure, subject: Subject): readonly number[] {
    return this.#runs.get(figure.id)?.get(subject) ?? []
  }

  median(figure: Figure, subject: Subject): number | undefined {
    return median(this.runs(figure, subject))
  }

  /**
   * The median of the run-by-run ratios of two series. Run i of every subject was measured in the
   * same round of turns, so a change in the machine's load hits both sides of a pair alike.
   */
  pairedRatio(numerator: Series, denominator: Series): number | undefined {
    const top = this.runs(numerator.figure, numerator.subject)
    const bottom = this.runs(denominator.figure, denominator.subject)
    const ratios = top.flatMap((value, index) => {
      const paired = ratio(value, bottom[index])
      return paired === undefined ? [] : [paired]
    })
    return median(ratios)
  }

  toJSON() {
    return this.figures.map((figure) => ({
      ...figure,
      othersCpuPercent: this.othersCpu(figure) ?? null,
      subjects: Object.fromEntries(
        SUBJECTS.filter((subject) => this.runs(figure, subject).length > 0).map((subject) => [
          subject,
          { runs: this.runs(figure, subject), median: this.median(figure, subject) },
        ]),
      ),
    }))
  }
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined
  const sorted = values.toSorted((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}

/** Nearest-rank percentile: a value that was really measured. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = values.toSorted((a, b) => a - b)
  const value = sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]
  if (value === undefined) throw new Error('no values')
  return value
}

export interface Target {
  readonly label: string
  readonly measured: number | undefined
  readonly unit: string
  readonly digits: number
  /** `at most` for costs (latency, memory), `at least` for the rest. */
  readonly direction: 'at least' | 'at most'
  readonly goal: number
  /** The absolute medians behind a ratio (the reference's among them), shown beside it. */
  readonly basis: string
}

export function passes(target: Target): boolean | undefined {
  if (target.measured === undefined) return undefined
  return target.direction === 'at least'
    ? target.measured >= target.goal
    : target.measured <= target.goal
}

export function ratio(numerator: number | undefined, denominator: number | undefined) {
  return numerator === undefined || denominator === undefined || denominator === 0
    ? undefined
    : numerator / denominator
}

export function formatValue(value: number | undefined, digits: number): string {
  return value === undefined ? '—' : value.toFixed(digits)
}

export function sizeLabel(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`
  }
  return `${bytes} B`
}

/** The last column says how noisy a row may be: CPU other processes took while it was measured. */
export function figuresTable(results: Results): string {
  const header = `| Figure | ${SUBJECTS.join(' | ')} | Others' CPU |`
  const rule = `| --- | ${SUBJECTS.map(() => '---:').join(' | ')} | ---: |`
  const rows = results.figures.map((figure) => {
    const cells = SUBJECTS.map((subject) =>
      formatValue(results.median(figure, subject), figure.digits),
    )
    const others = results.othersCpu(figure)
    cells.push(others === undefined ? '—' : `${others.toFixed(0)} %`)
    return `| ${figure.label} (${figure.unit}) | ${cells.join(' | ')} |`
  })
  return [header, rule, ...rows].join('\n')
}

export function targetsTable(targets: readonly Target[]): string {
  const rows = targets.map((target) => {
    const pass = passes(target)
    const result = pass === undefined ? 'n/a' : pass ? 'PASS' : 'MISS'
    const measured = `${formatValue(target.measured, target.digits)}${target.unit}`
    const goal = `${target.direction === 'at least' ? '≥' : '≤'} ${target.goal}${target.unit}`
    return `| ${target.label} | ${measured} | ${goal} | ${result} | ${target.basis} |`
  })
  return [
    '| Target | Measured | Goal | Result | Medians behind it |',
    '| --- | ---: | ---: | :---: | --- |',
    ...rows,
  ].join('\n')
}
