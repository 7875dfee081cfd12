import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postWebhook } from '../../src/outbox/webhook.ts'

type Verify = (
  headers: IncomingHttpHeaders,
  rawBody: string,
  secret: string,
  now?: number,
) => boolean

interface Received {
  readonly headers: IncomingHttpHeaders
  readonly rawBody: string
}

const SECRET = 'a-webhook-secret-of-some-length'

/** The verification snippet exactly as docs/events-and-webhooks.md shows it, loaded as a module. */
async function loadReadmeSnippet(directory: string): Promise<Verify> {
  const readme = await readFile(
    new URL('../../docs/events-and-webhooks.md', import.meta.url),
    'utf8',
  )
  const block = /<!-- webhook-verification:start -->\s*```js\n([\s\S]*?)```/.exec(readme)?.[1]
  if (!block)
    throw new Error(
      'docs/events-and-webhooks.md has no webhook verification snippet between its markers',
    )
  const file = join(directory, 'verify.mjs')
  await writeFile(file, block)
  return (await import(pathToFileURL(file).href)).verifyTusboxWebhook as Verify
}

describe('the webhook verification snippet in docs/events-and-webhooks.md', () => {
  let directory: string
  let verify: Verify
  let url: string
  let last: Received | undefined
  const receiver = createServer(async (request, response) => {
    let rawBody = ''
    for await (const chunk of request) rawBody += chunk
    last = { headers: request.headers, rawBody }
    response.writeHead(204).end()
  })

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'tusbox-readme-'))
    verify = await loadReadmeSnippet(directory)
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
  })

  afterAll(async () => {
    receiver.close()
    await rm(directory, { recursive: true, force: true })
  })

  async function deliver(signedAt = Date.now()): Promise<Received> {
    const body = JSON.stringify({ id: 'event-1', type: 'file.stored', data: { size: 1 } })
    await postWebhook(
      { url, eventId: 'event-1', eventType: 'file.stored', body, secret: SECRET, timeoutMs: 5000 },
      signedAt,
    )
    if (!last) throw new Error('the receiver got nothing')
    return last
  }

  it('accepts a delivery as tusbox sends it', async () => {
    const { headers, rawBody } = await deliver()
    expect(verify(headers, rawBody, SECRET)).toBe(true)
  })

  it('refuses a changed body, another secret and a missing signature', async () => {
    const { headers, rawBody } = await deliver()
    expect(verify(headers, rawBody.replace('"size":1', '"size":2'), SECRET)).toBe(false)
    expect(verify(headers, rawBody, 'another-secret-of-some-length')).toBe(false)
    expect(verify({ ...headers, 'tusbox-signature': undefined }, rawBody, SECRET)).toBe(false)
  })

  it('refuses a delivery signed more than five minutes before it is checked', async () => {
    const signedAt = Date.now() - 6 * 60_000
    const { headers, rawBody } = await deliver(signedAt)
    expect(verify(headers, rawBody, SECRET, signedAt + 4 * 60_000)).toBe(true)
    expect(verify(headers, rawBody, SECRET)).toBe(false)
  })
})
