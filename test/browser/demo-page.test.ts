import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, launchBrowser } from '../helpers/browser.ts'
import { MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload } from '../helpers/tus-requests.ts'

describe('the demo page in chromium', () => {
  let browser: Browser
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ DEMO_PAGE: 'true', FILE_UPLOAD_MAX_SIZE: String(5 * MiB) })
    browser = await launchBrowser()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
  })

  it('uploads a dropped file, pauses it mid-way, resumes it, and lists it STORED with its sha256', async () => {
    const page = await browser.context.newPage()
    // Holds the second chunk on its way out, so the test can pause while it is in flight.
    let heldChunk: (() => void) | undefined
    const secondChunkHeld = new Promise<void>((resolve) => {
      let patches = 0
      void page.route('**/files/*', async (route) => {
        if (route.request().method() === 'PATCH' && ++patches === 2) {
          resolve()
          await new Promise<void>((release) => {
            heldChunk = release
          })
          await route.abort().catch(() => undefined)
          return
        }
        await route.continue()
      })
    })
    await page.goto(server.url)
    const bytes = pngBytes(3 * MiB)

    await page.setInputFiles('#picker', {
      name: 'photo.png',
      mimeType: 'image/png',
      buffer: Buffer.from(bytes),
    })
    await secondChunkHeld
    await page.click('.upload .toggle')
    heldChunk?.()
    await page.unrouteAll({ behavior: 'ignoreErrors' })
    const row = page.locator('.upload', { hasText: 'photo.png' })
    expect(await row.getAttribute('data-state')).toBe('paused')
    const [file] = await server.knex('upload_files').where({ filename: 'photo.png' })
    expect(file.status).toBe('UPLOADING')

    await page.click('.upload .toggle')

    await page.locator('.upload[data-state="stored"]').waitFor()
    const listed = page.locator(`#files tr[data-id="${file.id}"][data-status="STORED"]`)
    await listed.waitFor()
    const hash = sha256(bytes)
    expect(await listed.locator('code').getAttribute('data-sha256')).toBe(hash)
    expect(await listed.locator('code').textContent()).toBe(`${hash.slice(0, 12)}…`)
    expect(await listed.locator('a[data-download]').getAttribute('href')).toBe(
      `/api/files/${file.id}/content`,
    )
  })

  it("shows the server's reason when a file is refused", async () => {
    const page = await browser.context.newPage()
    await page.goto(server.url)

    await page.setInputFiles('#picker', {
      name: 'notes.exe',
      mimeType: 'application/x-msdownload',
      buffer: Buffer.from('MZ not really a program'),
    })

    const failed = page.locator('.upload[data-state="failed"]', { hasText: 'notes.exe' })
    await failed.waitFor()
    expect(await failed.locator('.state').textContent()).toContain(
      'Files of type application/x-msdownload are not accepted',
    )
  })

  it('names the size, the limit and the setting when a file is too large', async () => {
    const page = await browser.context.newPage()
    await page.goto(server.url)

    await page.setInputFiles('#picker', {
      name: 'big.png',
      mimeType: 'image/png',
      buffer: Buffer.from(pngBytes(5 * MiB + 1)),
    })

    const failed = page.locator('.upload[data-state="failed"]', { hasText: 'big.png' })
    await failed.waitFor()
    expect(await failed.locator('.state').textContent()).toBe(
      `The file is ${5 * MiB + 1} bytes; the limit is ${5 * MiB} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
    )
  })

  it('lists files ten to a page, newest first, with exact small sizes, a copy button for the sha256 and unfinished uploads marked', async () => {
    await server.knex('upload_files').delete()
    const tiny = Buffer.from('abc')
    for (let index = 0; index < 11; index++) {
      await uploadWithTus(server.tusEndpoint, tiny, {
        metadata: { filename: `note-${index}.txt`, filetype: 'text/plain' },
      })
    }
    const unfinished = await createUpload(server.tusEndpoint, 1000, {
      filename: 'left.png',
      filetype: 'image/png',
    })
    const leftId = unfinished.headers.get('location')?.split('/').at(-1)
    const abandoned = await createUpload(server.tusEndpoint, 5000, {
      filename: 'gone.png',
      filetype: 'image/png',
    })
    const goneId = abandoned.headers.get('location')?.split('/').at(-1)
    await server
      .knex('upload_files')
      .where({ id: goneId })
      .update({ expires_at: new Date(Date.now() - 60_000) })
    const page = await browser.context.newPage()
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'])

    await page.goto(server.url)

    await page.locator('#page-info', { hasText: 'Page 1 of 2 · 13 files' }).waitFor()
    expect(await page.locator('#files tr').count()).toBe(10)
    const gone = page.locator(`#files tr[data-id="${goneId}"]`)
    expect(await gone.locator('td').nth(1).textContent()).toMatch(/^ABANDONED/)
    const left = page.locator(`#files tr[data-id="${leftId}"]`)
    expect(await left.locator('td').nth(1).textContent()).toMatch(/^UNFINISHED.*resumable until/)
    expect(await left.locator('td.size').textContent()).toBe('1000 B')
    const newestNote = page.locator('#files tr', { hasText: 'note-10.txt' })
    expect(await newestNote.locator('td.size').textContent()).toBe('3 B')
    await newestNote.locator('button[data-copy]').click()
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(sha256(tiny))

    await page.click('#older')
    await page.locator('#page-info', { hasText: 'Page 2 of 2' }).waitFor()
    expect(await page.locator('#files tr').count()).toBe(3)
    expect(await page.locator('#files tr', { hasText: 'note-0.txt' }).count()).toBe(1)
    expect(await page.locator('#older').isDisabled()).toBe(true)
  })

  it('runs whole under its CSP, and keeps a pasted token in sessionStorage only', async () => {
    const page = await browser.context.newPage()
    const violations: string[] = []
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) violations.push(message.text())
    })
    const response = await page.goto(server.url)
    expect(response?.headers()['content-security-policy']).toContain("frame-ancestors 'none'")
    await page.fill('#token', 'a-pasted-token')
    await page.locator('#token').dispatchEvent('change')
    await page.setInputFiles('#picker', {
      name: 'csp.png',
      mimeType: 'image/png',
      buffer: Buffer.from(pngBytes(10_000)),
    })
    await page.locator('.upload[data-state="stored"]', { hasText: 'csp.png' }).waitFor()
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem('tusbox-token'),
      local: Object.keys(localStorage).filter((key) =>
        localStorage.getItem(key)?.includes('a-pasted-token'),
      ),
    }))
    expect(stored).toEqual({ session: 'a-pasted-token', local: [] })
    expect(violations).toEqual([])
  })
})
