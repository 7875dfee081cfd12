import { SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { advisoryKey } from '../../src/db/advisory-lock.ts'
import { createLogger } from '../../src/lib/logger.ts'
import { openBody } from '../helpers/open-body.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { createUpload, patchUpload } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

// Findings of the external security review (issue 13) on tokens and the JSON API.

const SECRET = 'review-findings-secret-0123456789abcdef'
type Entry = Record<string, unknown>

describe('tokens and the JSON API after the security review', () => {
  let server: TestServer
  const entries: Entry[] = []

  beforeAll(async () => {
    const logger = createLogger('info', {
      format: 'json',
      write: (line) => entries.push(JSON.parse(line) as Entry),
    })
    server = await startTestServer(
      { ...jwtSettings(SECRET), AUTH_MAX_TOKEN_AGE: '1h', MAX_OPEN_BATCHES_PER_OWNER: '2' },
      undefined,
      {
        logger,
      },
    )
  })

  afterAll(async () => {
    await server?.close()
  })

  const now = () => Math.floor(Date.now() / 1000)

  function signed(claims: Record<string, unknown>): Promise<string> {
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(SECRET))
  }

  async function filesWith(token: string): Promise<Response> {
    return fetch(`${server.url}/api/files`, { headers: { Authorization: `Bearer ${token}` } })
  }

  it('accepts a token with exp, a present iat and a usable sub', async () => {
    expect(
      (await filesWith(await signed({ sub: 'alice', iat: now(), exp: now() + 300 }))).status,
    ).toBe(200)
  })

  it('answers 401 to a token without exp (L3)', async () => {
    expect((await filesWith(await signed({ sub: 'alice', iat: now() }))).status).toBe(401)
  })

  it('answers 401 to a token issued in the future beyond the clock tolerance (L3)', async () => {
    const response = await filesWith(
      await signed({ sub: 'alice', iat: now() + 600, exp: now() + 900 }),
    )
    expect(response.status).toBe(401)
  })

  it('answers 401 to a token older than AUTH_MAX_TOKEN_AGE, whatever its exp (L3)', async () => {
    const response = await filesWith(
      await signed({ sub: 'alice', iat: now() - 2 * 3600, exp: now() + 3600 }),
    )
    expect(response.status).toBe(401)
  })

  it('answers 401, not 500, to a token whose sub holds a NUL, on /api and on /files (I3)', async () => {
    const token = await signHs256(SECRET, { sub: 'mallory\u0000' })
    expect((await filesWith(token)).status).toBe(401)
    const created = await createUpload(
      server.tusEndpoint,
      10,
      { filename: 'a.png' },
      {
        Authorization: `Bearer ${token}`,
      },
    )
    expect(created.status).toBe(401)
  })

  it('answers 401, not 500, to OPTIONS on /api/admin without a token (L1)', async () => {
    const response = await fetch(`${server.url}/api/admin/outbox`, { method: 'OPTIONS' })
    expect(response.status).toBe(401)
    expect(entries.filter((entry) => entry.level === 'error')).toEqual([])
  })

  it('answers 429 to a third open batch of one owner, and takes one again once a batch is declared complete (L5)', async () => {
    const headers = {
      Authorization: `Bearer ${await signHs256(SECRET, { sub: 'batcher' })}`,
      'Content-Type': 'application/json',
    }
    const create = () => fetch(`${server.url}/api/batches`, { method: 'POST', headers, body: '{}' })
    const first = await create()
    expect(first.status).toBe(201)
    expect((await create()).status).toBe(201)
    const refused = await create()
    expect(refused.status).toBe(429)
    expect(refused.headers.get('retry-after')).toBe('60')
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      'too_many_open_batches',
    )
    const { id } = (await first.json()) as { id: string }
    const complete = await fetch(`${server.url}/api/batches/${id}/complete`, {
      method: 'POST',
      headers,
    })
    expect(complete.status).toBe(200)
    expect((await create()).status).toBe(201)
  })

  it('counts an owner under a 64-bit advisory key: a creation waits while that key is held', async () => {
    const trx = await server.knex.transaction()
    try {
      await trx.raw('SELECT pg_advisory_xact_lock(?::bigint)', [advisoryKey('tusbox:owner:locked')])
      const creation = createUpload(
        server.tusEndpoint,
        10,
        { filename: 'a.png' },
        {
          Authorization: `Bearer ${await signHs256(SECRET, { sub: 'locked' })}`,
        },
      )
      await waitUntil('the creation waits on the owner lock', async () => {
        const { rows } = await server.knex.raw(
          "SELECT count(*)::int AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        return rows[0].waiting > 0
      })
      await trx.commit()
      expect((await creation).status).toBe(201)
    } finally {
      if (!trx.isCompleted()) await trx.rollback()
    }
  })

  it('logs a client that hangs up mid-body on /api as an abort (info), not as the database (L2)', async () => {
    const token = await signHs256(SECRET, { sub: 'alice' })
    const from = entries.length
    const batch = openBody(`${server.url}/api/batches`, 'POST', {
      Authorization: `Bearer ${token}`,
      'Content-Type': 'application/json',
      'Content-Length': '1000',
    })
    batch.reply.catch(() => undefined)
    batch.request.write('{"expectedFiles": ', () => batch.request.destroy())
    await waitUntil('the server logs the abort', async () =>
      entries.slice(from).some((entry) => entry.message === 'request aborted by the client'),
    )
    const logged = entries.slice(from)
    expect(logged.filter((entry) => entry.level === 'warn' || entry.level === 'error')).toEqual([])
    expect(JSON.stringify(logged)).not.toContain('database_unavailable')
  })
})

describe('anonymous mode answers only to its own names (L7), HTML pages carry their policy (L6)', () => {
  let server: TestServer
  let port: string

  beforeAll(async () => {
    server = await startTestServer({
      HOST: 'devbox.lan',
      PUBLIC_URL: 'https://uploads.example.test',
      DEMO_PAGE: 'true',
    })
    port = new URL(server.url).port
  })

  afterAll(async () => {
    await server?.close()
  })

  async function getWithHost(path: string, host: string): Promise<number> {
    const get = openBody(`${server.url}${path}`, 'GET', { Host: host })
    get.request.end()
    return (await get.reply).status
  }

  it('answers 421 to a rebound name, on the API, tus, the demo page and /metrics', async () => {
    for (const path of ['/api/files', '/files', '/', '/metrics', '/api/admin/outbox']) {
      expect(await getWithHost(path, `attacker.example:${port}`)).toBe(421)
    }
  })

  it('answers localhost, 127.0.0.1, [::1], HOST and the PUBLIC_URL host', async () => {
    for (const host of ['localhost', '127.0.0.1', '[::1]', 'devbox.lan', 'uploads.example.test']) {
      expect(await getWithHost('/api/files', `${host}:${port}`)).toBe(200)
    }
  })

  it('records HTML declared as JSON as text/html, and refuses it as a type not allowed (I1)', async () => {
    const html = Buffer.from('<!doctype html><script>fetch("/api/files")</script>')
    const created = await createUpload(server.tusEndpoint, html.length, {
      filename: 'data.json',
      filetype: 'application/json',
    })
    expect(created.status).toBe(201)
    // Location names PUBLIC_URL, which does not resolve here: the same path on the real address.
    const url = `${server.url}${new URL(created.headers.get('location') ?? '').pathname}`
    const response = await patchUpload(url, 0, html)
    expect(response.status).toBe(415)
    const row = await server
      .knex('upload_files')
      .where({ id: url.slice(url.lastIndexOf('/') + 1) })
      .first()
    expect(row).toMatchObject({ status: 'FAILED', detected_type: 'text/html' })
  })

  it('answers health probes under any name', async () => {
    expect(await getWithHost('/healthz', `10.1.2.3:${port}`)).toBe(200)
  })

  it('sends a CSP without unsafe-inline, frame-ancestors none and no-referrer on / and /api/docs', async () => {
    for (const path of ['/', '/api/docs']) {
      const response = await fetch(`${server.url}${path}`)
      expect(response.status).toBe(200)
      const csp = response.headers.get('content-security-policy') ?? ''
      expect(csp).toContain("frame-ancestors 'none'")
      expect(csp).toContain("default-src 'none'")
      expect(csp).not.toContain('unsafe-inline')
      expect(response.headers.get('referrer-policy')).toBe('no-referrer')
      expect(response.headers.get('x-frame-options')).toBe('DENY')
    }
  })
})

describe('a token server answers any Host (the token is the check)', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer(jwtSettings(SECRET))
  })

  afterAll(async () => {
    await server?.close()
  })

  it('answers 200 to a valid token under another name', async () => {
    const get = openBody(`${server.url}/api/files`, 'GET', {
      Host: 'uploads.example.com',
      Authorization: `Bearer ${await signHs256(SECRET, { sub: 'alice' })}`,
    })
    get.request.end()
    expect((await get.reply).status).toBe(200)
  })
})
