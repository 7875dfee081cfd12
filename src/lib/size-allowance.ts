/**
 * Hands out `large` to at most `maxLarge` holders at a time and `small` to the others: a
 * per-upload buffer stays large (cheap per byte) while few uploads stream, and memory stays
 * bounded when many do. A holder gives back exactly the size it took.
 */
export class SizeAllowance {
  readonly #large: number
  readonly #small: number
  readonly #maxLarge: number
  #largeHeld = 0

  constructor(sizes: { large: number; small: number; maxLarge: number }) {
    this.#large = sizes.large
    this.#small = sizes.small
    this.#maxLarge = sizes.maxLarge
  }

  take(): number {
    if (this.#largeHeld >= this.#maxLarge) return this.#small
    this.#largeHeld++
    return this.#large
  }

  giveBack(size: number): void {
    if (size === this.#large) this.#largeHeld--
  }
}
