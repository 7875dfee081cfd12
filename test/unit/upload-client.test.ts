import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { apiBaseFor } from '../../src/client/api.ts'
import { collectFiles, UnusablePathError } from '../../src/client/local-files.ts'
import { createProgressDisplay, type FileProgress } from '../../src/client/progress.ts'
import { ResumeStore } from '../../src/client/resume-store.ts'
import { formatDuration, parseByteSize } from '../../src/client/units.ts'

describe('parseByteSize', () => {
  it('reads binary and decimal units and plain byte counts', () => {
    expect(parseByteSize('8MiB')).toBe(8 * 1024 * 1024)
    expect(parseByteSize('512 KiB')).toBe(512 * 1024)
    expect(parseByteSize('1.5GiB')).toBe(1.5 * 1024 ** 3)
    expect(parseByteSize('10MB')).toBe(10_000_000)
    expect(parseByteSize('8m')).toBe(8 * 1024 * 1024)
    expect(parseByteSize('4096')).toBe(4096)
  })

  it('answers undefined for unknown units, negative numbers and fractions of a byte', () => {
    for (const text of ['8 parsecs', '-1MiB', '0.5', 'MiB', '']) {
      expect(parseByteSize(text)).toBeUndefined()
    }
  })
})

describe('formatDuration', () => {
  it('shows minutes and seconds, hours when needed, and dashes when unknown', () => {
    expect(formatDuration(7)).toBe('0:07')
    expect(formatDuration(754)).toBe('12:34')
    expect(formatDuration(3723)).toBe('1:02:03')
    expect(formatDuration(undefined)).toBe('--:--')
  })
})

describe('apiBaseFor', () => {
  it('finds the API beside the tus endpoint, behind a path prefix too', () => {
    expect(apiBaseFor('http://127.0.0.1:1080/files')).toBe('http://127.0.0.1:1080/api')
    expect(apiBaseFor('https://example.test/tusbox/files/')).toBe('https://example.test/tusbox/api')
  })
})

describe('collectFiles and ResumeStore', () => {
  let dir: string

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tusbox-client-unit-'))
  })

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('lists a file named twice, or also inside a named directory, once', async () => {
    await mkdir(path.join(dir, 'photos'))
    const photo = path.join(dir, 'photos', 'a.png')
    await writeFile(photo, 'x')
    await symlink(photo, path.join(dir, 'alias.png'))

    const { files } = await collectFiles([photo, path.join(dir, 'photos'), photo])
    const viaLink = await collectFiles([path.join(dir, 'alias.png'), photo])

    expect(files.map((file) => file.absolutePath)).toEqual([photo])
    expect(viaLink.files).toHaveLength(1)
  })

  it('uploads a hidden file or a symlink named explicitly, but refuses a missing path', async () => {
    const hidden = path.join(dir, '.env.example')
    await writeFile(hidden, 'A=1\n')
    const link = path.join(dir, 'link.txt')
    await symlink(hidden, link)

    const named = await collectFiles([hidden])
    const linked = await collectFiles([link])

    expect(named.files.map((file) => file.displayPath)).toEqual([hidden])
    expect(linked.files.map((file) => file.displayPath)).toEqual([link])
    await expect(collectFiles([path.join(dir, 'missing.png')])).rejects.toBeInstanceOf(
      UnusablePathError,
    )
  })

  it('keeps one entry per fingerprint, replaced by a newer upload and removed without error twice', async () => {
    const store = new ResumeStore(dir)
    const entry = (url: string) => ({
      size: 10,
      metadata: { filename: 'a.png' },
      creationTime: new Date().toString(),
      uploadUrl: url,
      parallelUploadUrls: null,
      urlStorageKey: '',
    })

    const key = await store.addUpload('fingerprint-a', entry('http://h/files/1'))
    await store.addUpload('fingerprint-a', entry('http://h/files/2'))
    await store.addUpload('fingerprint-b', entry('http://h/files/3'))

    expect(await store.findUploadsByFingerprint('fingerprint-a')).toEqual([
      expect.objectContaining({ uploadUrl: 'http://h/files/2', urlStorageKey: key }),
    ])
    expect(await store.findAllUploads()).toHaveLength(2)
    await store.removeUpload(key)
    await store.removeUpload(key)
    await store.settled()
    expect(await store.findUploadsByFingerprint('fingerprint-a')).toEqual([])
  })
})

describe('the progress display', () => {
  const files: FileProgress[] = [
    {
      file: {
        absolutePath: '/data/a-rather-long-directory-name/with/a-long-file-name.png',
        displayPath: 'a-rather-long-directory-name/with/a-long-file-name.png',
        relativePath: undefined,
        size: 4 * 1024 * 1024,
        mtimeMs: 0,
      },
      phase: 'sending',
      sent: 1024 * 1024,
      resumedFrom: 0,
      startedAt: 0,
    },
    {
      file: {
        absolutePath: '/data/b.csv',
        displayPath: 'b.csv',
        relativePath: undefined,
        size: 1024,
        mtimeMs: 0,
      },
      phase: 'queued',
      sent: 0,
      resumedFrom: 0,
      startedAt: undefined,
    },
  ]

  function capture(columns: number) {
    const written: string[] = []
    return { written, stream: { columns, write: (text: string) => written.push(text) } }
  }

  it('on a terminal redraws in place: back up over the lines drawn, cut to the width', () => {
    const { written, stream } = capture(70)
    const display = createProgressDisplay('tty', files, stream, () => 1000)

    display.note('Resuming a.png')
    display.stop()

    const [first = '', second = ''] = written
    const clearBelow = '\u001b[J'
    expect(first.startsWith(`\r${clearBelow}Resuming a.png\n`)).toBe(true)
    // One line for the file being sent, one total; the queued file is not shown.
    const backOverTwoLines = `\r\u001b[2A${clearBelow}`
    expect(second.startsWith(backOverTwoLines)).toBe(true)
    const lines = second.slice(backOverTwoLines.length).split('\n')
    expect(lines.filter(Boolean)).toHaveLength(2)
    for (const line of lines) expect(line.length).toBeLessThan(70)
    expect(lines[0]).toMatch(/^\.\.\..*\.png {2}\[=====> +\] {3}25%/)
    expect(lines[1]).toContain('0/2 files done')
  })

  it('in a log writes notes as plain lines, without control characters', () => {
    const { written, stream } = capture(80)
    const display = createProgressDisplay('plain', files, stream)

    display.note('[1/2] STORED b.csv')
    display.stop()

    expect(written).toEqual(['[1/2] STORED b.csv\n'])
  })
})
