import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Browser, launchBrowser } from '../helpers/browser.ts'
import { MiB, pngBytes, sha256 } from '../helpers/fixtures.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'

describe('the demo page in chromium', () => {
  let browser: Browser
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ DEMO_PAGE: 'true' })
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
    expect(await listed.locator('code').textContent()).toBe(sha256(bytes))
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
