/** One scrape of a Prometheus text exposition, read back as numbers. */
export class Scrape {
  readonly text: string
  readonly #samples: { name: string; labels: Record<string, string>; value: number }[] = []

  constructor(text: string) {
    this.text = text
    for (const line of text.split('\n')) {
      const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
      if (!match) continue
      const labels: Record<string, string> = {}
      for (const [, key, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
        labels[key as string] = value as string
      }
      this.#samples.push({ name: match[1] as string, labels, value: Number(match[3]) })
    }
  }

  /** The sample with exactly these labels; 0 when the series does not exist (yet). */
  value(name: string, labels: Record<string, string> = {}): number {
    const wanted = Object.entries(labels)
    const sample = this.#samples.find(
      (candidate) =>
        candidate.name === name &&
        Object.keys(candidate.labels).length === wanted.length &&
        wanted.every(([key, value]) => candidate.labels[key] === value),
    )
    return sample?.value ?? 0
  }

  /** Whether the exposition declares this metric (a `# TYPE` line). */
  declares(name: string): boolean {
    return this.text.split('\n').some((line) => line.startsWith(`# TYPE ${name} `))
  }
}

export async function scrape(url: string, headers: Record<string, string> = {}): Promise<Scrape> {
  const response = await fetch(`${url}/metrics`, { headers })
  if (response.status !== 200) {
    throw new Error(`GET /metrics answered ${response.status}: ${await response.text()}`)
  }
  return new Scrape(await response.text())
}
