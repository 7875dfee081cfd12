import { existsSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const ROOT = path.resolve(import.meta.dirname, '../..')

async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(path.join(ROOT, 'docs')))
    .filter((name) => name.endsWith('.md'))
    .map((name) => path.join(ROOT, 'docs', name))
  return [path.join(ROOT, 'README.md'), ...docs]
}

/** GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces to hyphens. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>()
  const seen = new Map<string, number>()
  let inFence = false
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) inFence = !inFence
    const heading = !inFence && /^#{1,6} (.+)$/.exec(line)
    if (!heading) continue
    const slug = (heading[1] as string)
      .trim()
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/ /g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    anchors.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return anchors
}

/** Every [text](target) outside code blocks and code spans that stays in this repository. */
function localLinks(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '')
  return [...prose.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((match) => match[1] as string)
    .filter((target) => !/^[a-z]+:/i.test(target))
}

describe('links in README.md and docs/*.md', () => {
  it('lead to files that exist and to headings that exist', async () => {
    const broken: string[] = []
    for (const file of await markdownFiles()) {
      const markdown = await readFile(file, 'utf8')
      for (const link of localLinks(markdown)) {
        const [target = '', anchor] = link.split('#')
        const resolved = target === '' ? file : path.resolve(path.dirname(file), target)
        const where = `${path.relative(ROOT, file)}: ${link}`
        if (!existsSync(resolved)) {
          broken.push(`${where} (no such file)`)
        } else if (anchor && resolved.endsWith('.md')) {
          if (!anchorsOf(await readFile(resolved, 'utf8')).has(anchor)) {
            broken.push(`${where} (no such heading)`)
          }
        }
      }
    }
    expect(broken).toEqual([])
  })
})

describe('README.md', () => {
  it('stays under 20 KB: the reference lives in docs/', async () => {
    const readme = await readFile(path.join(ROOT, 'README.md'))
    expect(readme.length).toBeLessThanOrEqual(20 * 1024)
  })
})
