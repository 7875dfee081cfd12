import type { LocalFile } from './local-files.ts'
import { formatBytes, formatDuration, formatRate } from './units.ts'

/** Where one file is, as the progress display reads it. The upload run updates it in place. */
export interface FileProgress {
  readonly file: LocalFile
  phase: 'queued' | 'sending' | 'finishing' | 'done'
  /** Bytes of the file on the server or on their way: resumed bytes included. */
  sent: number
  /** Bytes the server already had when this run resumed the upload. */
  resumedFrom: number
  /** When this run started sending it (ms). */
  startedAt: number | undefined
}

export interface ProgressDisplay {
  /** A line worth keeping: a file resumed, finished or failed. */
  note(line: string): void
  /** Stops redrawing and leaves the last state on screen (TTY) or says nothing more. */
  stop(): void
}

export type ProgressMode = 'tty' | 'plain' | 'quiet'

export interface OutputStream {
  write(text: string): unknown
  readonly columns?: number
}

/** A redraw on a terminal; a summary line in a log, where every line stays forever. */
const TTY_INTERVAL_MS = 100
const PLAIN_INTERVAL_MS = 5_000
/** The overall rate (and so the ETA) is measured over this much recent time, not since the start. */
const RATE_WINDOW_MS = 5_000

export function createProgressDisplay(
  mode: ProgressMode,
  files: readonly FileProgress[],
  stream: OutputStream,
  now: () => number = Date.now,
): ProgressDisplay {
  if (mode === 'quiet') return { note() {}, stop() {} }
  const totals = new Totals(files, now)
  return mode === 'tty'
    ? new TerminalDisplay(files, totals, stream, now)
    : new LogDisplay(totals, stream)
}

/** Sums over every file, and the recent overall rate. */
class Totals {
  readonly #files: readonly FileProgress[]
  readonly #now: () => number
  readonly #samples: { at: number; bytes: number }[] = []

  constructor(files: readonly FileProgress[], now: () => number) {
    this.#files = files
    this.#now = now
  }

  snapshot() {
    let size = 0
    let sent = 0
    let sentThisRun = 0
    let done = 0
    for (const progress of this.#files) {
      size += progress.file.size
      sent += Math.min(progress.sent, progress.file.size)
      sentThisRun += Math.max(0, progress.sent - progress.resumedFrom)
      if (progress.phase === 'done') done++
    }
    const at = this.#now()
    this.#samples.push({ at, bytes: sentThisRun })
    while ((this.#samples[0]?.at ?? at) < at - RATE_WINDOW_MS) this.#samples.shift()
    const first = this.#samples[0] ?? { at, bytes: sentThisRun }
    const rate = at > first.at ? ((sentThisRun - first.bytes) * 1000) / (at - first.at) : 0
    return { size, sent, done, count: this.#files.length, rate, eta: eta(size - sent, rate) }
  }
}

function eta(remaining: number, rate: number): number | undefined {
  return rate > 0 ? remaining / rate : undefined
}

function percent(part: number, whole: number): string {
  const value = whole === 0 ? 100 : Math.floor((part * 100) / whole)
  return `${String(value).padStart(3)}%`
}

/**
 * Redraws in place with ANSI cursor movement: one line per file being sent, then a total line.
 * Notes scroll above. Lines are cut to the terminal's width, since a wrapped line would throw
 * off the count of lines to move back up over.
 */
class TerminalDisplay implements ProgressDisplay {
  readonly #files: readonly FileProgress[]
  readonly #totals: Totals
  readonly #stream: OutputStream
  readonly #now: () => number
  readonly #timer: NodeJS.Timeout
  #drawnLines = 0

  constructor(
    files: readonly FileProgress[],
    totals: Totals,
    stream: OutputStream,
    now: () => number,
  ) {
    this.#files = files
    this.#totals = totals
    this.#stream = stream
    this.#now = now
    this.#timer = setInterval(() => this.#redraw([]), TTY_INTERVAL_MS)
    // The display must never be what keeps the process alive.
    this.#timer.unref()
  }

  note(line: string): void {
    this.#redraw([line])
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#redraw([])
  }

  #redraw(notes: readonly string[]): void {
    // A terminal that reports no width (0) gets the classic 80 columns.
    const width = (this.#stream.columns || 80) - 1
    const active = this.#files.filter(
      (progress) => progress.phase === 'sending' || progress.phase === 'finishing',
    )
    const total = this.#totals.snapshot()
    // The total line leads with the file count, so it survives a narrow terminal.
    const label = `${total.done}/${total.count} files done`
    const nameWidth = Math.min(
      NAME_WIDTH_MAX,
      Math.max(label.length, ...active.map((progress) => progress.file.displayPath.length)),
    )
    const lines = [
      ...active.map((progress) => this.#fileLine(progress, nameWidth)),
      [
        label.padEnd(nameWidth),
        bar(total.sent, total.size),
        percent(total.sent, total.size),
        `${formatBytes(total.sent)}/${formatBytes(total.size)}`,
        formatRate(total.rate),
        `ETA ${formatDuration(total.eta)}`,
      ].join('  '),
    ].map((line) => line.slice(0, width))
    const up = this.#drawnLines > 0 ? `\x1b[${this.#drawnLines}A` : ''
    const kept = notes.map((note) => `${note}\n`).join('')
    this.#stream.write(`\r${up}\x1b[J${kept}${lines.join('\n')}\n`)
    this.#drawnLines = lines.length
  }

  #fileLine(progress: FileProgress, nameWidth: number): string {
    const { size, displayPath } = progress.file
    const name = fitName(displayPath, nameWidth)
    if (progress.phase === 'finishing') {
      return `${name}  ${bar(1, 1)}  100%  ${formatBytes(size)}  finishing on the server`
    }
    const at = this.#now()
    const elapsed = at - (progress.startedAt ?? at)
    const rate = elapsed > 0 ? ((progress.sent - progress.resumedFrom) * 1000) / elapsed : 0
    return [
      name,
      bar(progress.sent, size),
      percent(progress.sent, size),
      `${formatBytes(progress.sent)}/${formatBytes(size)}`,
      formatRate(rate),
      `ETA ${formatDuration(eta(size - progress.sent, rate))}`,
    ].join('  ')
  }
}

const NAME_WIDTH_MAX = 32

/** Pads or shortens a name to `width`, keeping its end (the file name and its extension). */
function fitName(name: string, width: number): string {
  return name.length <= width ? name.padEnd(width) : `...${name.slice(-(width - 3))}`
}

/** For logs and pipes: notes as they come, and a total line every few seconds; no control characters. */
class LogDisplay implements ProgressDisplay {
  readonly #totals: Totals
  readonly #stream: OutputStream
  readonly #timer: NodeJS.Timeout

  constructor(totals: Totals, stream: OutputStream) {
    this.#totals = totals
    this.#stream = stream
    this.#timer = setInterval(() => this.#line(), PLAIN_INTERVAL_MS)
    this.#timer.unref()
    this.#totals.snapshot()
  }

  note(line: string): void {
    this.#stream.write(`${line}\n`)
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  #line(): void {
    const total = this.#totals.snapshot()
    this.#stream.write(
      `progress: ${formatBytes(total.sent)}/${formatBytes(total.size)} (${percent(total.sent, total.size).trim()}), ${total.done}/${total.count} files done, ${formatRate(total.rate)}, ETA ${formatDuration(total.eta)}\n`,
    )
  }
}

const BAR_WIDTH = 20

function bar(part: number, whole: number): string {
  const filled =
    whole === 0 ? BAR_WIDTH : Math.min(BAR_WIDTH, Math.floor((part * BAR_WIDTH) / whole))
  const head = filled < BAR_WIDTH ? '>' : ''
  return `[${'='.repeat(filled)}${head}${' '.repeat(BAR_WIDTH - filled - head.length)}]`
}
