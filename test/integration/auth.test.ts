import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAuthenticate } from '../../src/auth/authenticate.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { JwksServer, jwksSettings, jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { uploadUntil, uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload, errorOf, patchUpload, TUS } from '../helpers/tus-requests.ts'

const SECRET = 'a-shared-hs256-secret-for-the-tests'
const FILE = { filename: 'f.png' }

describe.each(TEST_STORES)(
  'owners and tokens (AUTH_MODE=jwt, HS256) on the $name store',
  (store) => {
    let server: TestServer

    beforeAll(async () => {
      server = await startTestServer(
        {
          AUTH_MODE: 'jwt',
          AUTH_JWT_SECRET: SECRET,
          AUTH_ISSUER: 'https://id.example.test/',
          AUTH_AUDIENCE: 'tusbox',
          AUTH_ADMIN_CLAIM: 'roles=ops',
          AUTH_ALLOW_ANONYMOUS: 'false',
        },
        store,
      )
    })

    afterAll(async () => {
      await server?.close()
    })

    const token = (sub: string, claims: Record<string, unknown> = {}) =>
      signHs256(SECRET, {
        sub,
        iss: 'https://id.example.test/',
        aud: 'tusbox',
        ...claims,
      })
    const bearer = async (sub: string) => ({ Authorization: `Bearer ${await token(sub)}` })
    const api = async (path: string, sub: string, init: RequestInit = {}) =>
      fetch(`${server.url}${path}`, { ...init, headers: { ...(await bearer(sub)) } })

    async function uploadAs(sub: string, bytes = pngBytes(4_000)) {
      return uploadWithTus(server.tusEndpoint, bytes, {
        headers: await bearer(sub),
        metadata: { filename: 'mine.png' },
      })
    }

    it('stores an upload sent with a valid token and records its sub as the owner', async () => {
      const bytes = pngBytes(6_000)
      const { id } = await uploadAs('alice', bytes)

      await expectStoredOnce(server.knex, id, bytes)
      expect((await server.knex('upload_files').where({ id }).first()).owner).toBe('alice')
      const listed = (await (await api('/api/files', 'alice')).json()) as {
        files: { id: string }[]
      }
      expect(listed.files.map((file) => file.id)).toContain(id)
    })

    it.each([
      ['no Authorization header', undefined, 'missing_token'],
      ['a header that is not Bearer', 'Basic YTpi', 'invalid_token'],
      ['a malformed token', 'Bearer not.a.jwt', 'invalid_token'],
    ])('answers 401 with a Bearer challenge for %s', async (_case, authorization, code) => {
      const headers: Record<string, string> = { ...TUS, 'Upload-Length': '10' }
      if (authorization) headers.Authorization = authorization
      for (const response of [
        await fetch(server.tusEndpoint, { method: 'POST', headers }),
        await fetch(`${server.url}/api/files`, { headers }),
      ]) {
        expect(response.status).toBe(401)
        expect(response.headers.get('www-authenticate')).toMatch(/^Bearer realm="tusbox"/)
        expect((await errorOf(response)).code).toBe(code)
      }
    })

    it.each([
      [
        'signed with another secret',
        () =>
          signHs256('another-secret-that-is-long-enough!!', {
            sub: 'a',
            iss: 'https://id.example.test/',
            aud: 'tusbox',
          }),
        'invalid_token',
      ],
      [
        'expired',
        () => token('alice', { exp: Math.floor(Date.now() / 1000) - 60 }),
        'token_expired',
      ],
      [
        'from another issuer',
        () => token('alice', { iss: 'https://evil.example/' }),
        'invalid_token',
      ],
      ['for another audience', () => token('alice', { aud: 'another-service' }), 'invalid_token'],
      ['without a subject', () => token(''), 'invalid_token'],
      [
        'unsigned (alg none)',
        async () => unsignedToken({ sub: 'alice', iss: 'https://id.example.test/', aud: 'tusbox' }),
        'invalid_token',
      ],
    ])('answers 401 for a token %s', async (_case, makeToken, code) => {
      const response = await fetch(`${server.url}/api/files`, {
        headers: { Authorization: `Bearer ${await makeToken()}` },
      })
      expect(response.status).toBe(401)
      expect((await errorOf(response)).code).toBe(code)
    })

    it("answers 404 to every request on another owner's upload, file and batch", async () => {
      const { id, url } = await uploadAs('alice')
      const partial = await uploadUntil(server.tusEndpoint, pngBytes(300_000), 1, {
        chunkSize: 100_000,
        headers: await bearer('alice'),
        metadata: { filename: 'half.png' },
      })
      const batch = (await (
        await fetch(`${server.url}/api/batches`, { method: 'POST', headers: await bearer('alice') })
      ).json()) as { id: string }
      const mallory = await bearer('mallory')

      const answers = [
        await fetch(url, { method: 'HEAD', headers: { ...TUS, ...mallory } }),
        await fetch(partial.url, { method: 'HEAD', headers: { ...TUS, ...mallory } }),
        await patchUpload(partial.url, 100_000, new Uint8Array(10), mallory),
        await fetch(partial.url, { method: 'DELETE', headers: { ...TUS, ...mallory } }),
        await api(`/api/files/${id}`, 'mallory'),
        await api(`/api/files/${id}/content`, 'mallory'),
        await api(`/api/files/${id}`, 'mallory', { method: 'DELETE' }),
        await api(`/api/batches/${batch.id}`, 'mallory'),
        await api(`/api/batches/${batch.id}/complete`, 'mallory', { method: 'POST' }),
      ]

      expect(answers.map((response) => response.status)).toEqual(Array(9).fill(404))
      const listed = (await (await api('/api/files', 'mallory')).json()) as { files: unknown[] }
      expect(listed.files).toEqual([])
      const intoTheirBatch = await createUpload(
        server.tusEndpoint,
        100,
        { filename: 'x.png', batchId: batch.id },
        mallory,
      )
      expect(intoTheirBatch.status).toBe(400)
      expect((await errorOf(intoTheirBatch)).code).toBe('unknown_batch')
      expect((await server.knex('upload_files').where({ id: partial.id }).first()).status).toBe(
        'UPLOADING',
      )
      expect((await api(`/api/files/${id}/content`, 'alice')).status).toBeLessThan(400)
    })

    it("answers RUFH requests only for the owner's uploads: 401 without a token, 404 to another owner", async () => {
      const rufh = (headers: Record<string, string>) => ({
        'Upload-Draft-Interop-Version': '8',
        ...headers,
      })
      const created = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: rufh({ ...(await bearer('alice')), 'Upload-Complete': '?0' }),
      })
      expect(created.status).toBe(201)
      const url = created.headers.get('location') ?? ''
      const id = url.slice(url.lastIndexOf('/') + 1)
      const mallory = await bearer('mallory')
      const append = rufh({
        'Upload-Offset': '0',
        'Upload-Complete': '?1',
        'Content-Type': 'application/partial-upload',
      })

      const anonymous = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: rufh({ 'Upload-Complete': '?0' }),
      })
      const answers = [
        await fetch(url, { method: 'HEAD', headers: rufh(mallory) }),
        await fetch(url, { method: 'PATCH', headers: { ...append, ...mallory }, body: 'x' }),
        await fetch(url, { method: 'DELETE', headers: rufh(mallory) }),
      ]

      expect(anonymous.status).toBe(401)
      expect(answers.map((response) => response.status)).toEqual([404, 404, 404])
      const bytes = pngBytes(3_000)
      const mine = await fetch(url, {
        method: 'PATCH',
        headers: { ...append, ...(await bearer('alice')) },
        body: bytes,
      })
      expect(mine.status).toBe(200)
      await expectStoredOnce(server.knex, id, bytes)
      expect((await server.knex('upload_files').where({ id }).first()).owner).toBe('alice')
    })

    it('opens /api/admin only to tokens with the admin claim', async () => {
      const plain = await api('/api/admin/outbox', 'alice')
      expect(plain.status).toBe(403)
      expect((await errorOf(plain)).code).toBe('admin_required')

      const admin = await fetch(`${server.url}/api/admin/outbox`, {
        headers: { Authorization: `Bearer ${await token('ops-person', { roles: ['ops'] })}` },
      })
      expect(admin.status).toBe(200)
    })

    it('answers preflights and health checks without a token', async () => {
      const preflight = await fetch(server.tusEndpoint, {
        method: 'OPTIONS',
        headers: { Origin: 'https://app.example.test', 'Access-Control-Request-Method': 'POST' },
      })
      expect(preflight.status).toBe(204)
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    })
  },
)

describe('per-owner limits', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({
      ...jwtSettings(SECRET),
      FILE_UPLOAD_MAX_SIZE: '1000',
      MAX_UNFINISHED_UPLOADS_PER_OWNER: '3',
      MAX_BYTES_IN_FLIGHT_PER_OWNER: '2500',
    })
  })

  afterAll(async () => {
    await server?.close()
  })

  const as = async (sub: string) => ({
    Authorization: `Bearer ${await signHs256(SECRET, { sub })}`,
  })

  it('answers 429 with Retry-After past the unfinished uploads limit, for that owner only', async () => {
    const headers = await as('busy')
    const created = []
    for (let i = 0; i < 3; i++)
      created.push(await createUpload(server.tusEndpoint, 10, FILE, headers))
    expect(created.map((response) => response.status)).toEqual([201, 201, 201])

    const refused = await createUpload(server.tusEndpoint, 10, FILE, headers)

    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await errorOf(refused)).code).toBe('too_many_unfinished_uploads')
    expect((await createUpload(server.tusEndpoint, 10, FILE, await as('idle'))).status).toBe(201)
  })

  it('counts RUFH creations against the same unfinished uploads limit', async () => {
    const headers = { ...(await as('phone')), 'Upload-Draft-Interop-Version': '8' }
    const create = () =>
      fetch(server.tusEndpoint, {
        method: 'POST',
        headers: { ...headers, 'Upload-Complete': '?0', 'Upload-Length': '10' },
      })
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await create()).status)

    expect(statuses).toEqual([201, 201, 201, 429])
    const refused = await create()
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
    expect((await errorOf(refused)).code).toBe('too_many_unfinished_uploads')
  })

  it('counts declared bytes, and a deferred length as the largest file', async () => {
    const headers = await as('heavy')
    expect((await createUpload(server.tusEndpoint, 1000, FILE, headers)).status).toBe(201)
    const deferred = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, ...headers, 'Upload-Defer-Length': '1' },
    })
    expect(deferred.status).toBe(201)

    const refused = await createUpload(server.tusEndpoint, 600, FILE, headers)

    expect(refused.status).toBe(429)
    expect((await errorOf(refused)).code).toBe('too_many_bytes_in_flight')
    expect((await createUpload(server.tusEndpoint, 500, FILE, headers)).status).toBe(201)
  })

  it('lets no more than the limit through when creations race', async () => {
    const headers = await as('racer')
    const statuses = await Promise.all(
      Array.from(
        { length: 8 },
        async () => (await createUpload(server.tusEndpoint, 10, FILE, headers)).status,
      ),
    )
    expect(statuses.filter((status) => status === 201)).toHaveLength(3)
    expect(statuses.filter((status) => status === 429)).toHaveLength(5)
  })

  it('frees a slot once an upload is stored', async () => {
    const headers = await as('finisher')
    const bytes = pngBytes(900)
    const done = await uploadWithTus(server.tusEndpoint, bytes, { headers })
    for (let i = 0; i < 3; i++) {
      expect((await createUpload(server.tusEndpoint, 10, FILE, headers)).status).toBe(201)
    }
    await expectStoredOnce(server.knex, done.id, bytes)
  })
})

describe('tokens accepted before', () => {
  const T0 = Date.UTC(2026, 11, 2, 12, 0, 0)
  const seconds = (ms: number) => Math.floor(ms / 1000)
  const withClock = (maxTokenAgeSeconds?: number) => {
    const clock = { ms: T0 }
    const authenticate = createAuthenticate(
      {
        mode: 'jwt',
        key: { kind: 'secret', secret: SECRET },
        issuer: undefined,
        audience: undefined,
        maxTokenAgeSeconds,
        adminClaim: { name: 'tusbox_admin', value: undefined },
      },
      { now: () => clock.ms },
    )
    return { clock, authenticate }
  }
  const codeOf = (attempt: Promise<unknown>) =>
    attempt.then(
      () => 'accepted',
      (error: { code?: string }) => error.code,
    )

  it('refuses a token it accepted before once the token has expired', async () => {
    const { clock, authenticate } = withClock()
    const token = `Bearer ${await signHs256(SECRET, { sub: 'alice', iat: seconds(T0) - 100, exp: seconds(T0) - 50 })}`
    expect(await authenticate(token)).toEqual({ owner: 'alice', admin: false })

    // Until exp plus the clock tolerance (60 s), sooner than the cache would let it go.
    clock.ms = T0 + 9_999
    expect(await codeOf(authenticate(token))).toBe('accepted')
    clock.ms = T0 + 10_000
    expect(await codeOf(authenticate(token))).toBe('token_expired')
  })

  it('refuses a token it accepted before once it is older than AUTH_MAX_TOKEN_AGE', async () => {
    const { clock, authenticate } = withClock(1)
    const token = `Bearer ${await signHs256(SECRET, { sub: 'bob', iat: seconds(T0) - 60, exp: seconds(T0) + 3600 })}`
    expect(await codeOf(authenticate(token))).toBe('accepted')

    // iat plus the age plus the clock tolerance, sooner than the cache would let it go.
    clock.ms = T0 + 2_000
    expect(await codeOf(authenticate(token))).toBe('token_expired')
  })

  it('keeps no refusal: a token refused as not yet valid is accepted once it is', async () => {
    const { clock, authenticate } = withClock()
    const early = `Bearer ${await signHs256(SECRET, { sub: 'carol', iat: seconds(T0), nbf: seconds(T0) + 600, exp: seconds(T0) + 3600 })}`
    expect(await codeOf(authenticate(early))).toBe('invalid_token')
    expect(await codeOf(authenticate(early))).toBe('invalid_token')

    clock.ms = T0 + 600_000
    expect(await authenticate(early)).toEqual({ owner: 'carol', admin: false })
  })
})

describe('tokens from a JWKS (RS256, ES256)', () => {
  const jwks = new JwksServer()
  let server: TestServer

  beforeAll(async () => {
    const url = await jwks.start()
    server = await startTestServer(jwksSettings(url))
  })

  afterAll(async () => {
    await server?.close()
    await jwks.stop()
  })

  const filesWith = (token: string) =>
    fetch(`${server.url}/api/files`, { headers: { Authorization: `Bearer ${token}` } })

  it('accepts RS256 and ES256 tokens signed by a key in the set', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const response = await filesWith(await jwks.sign(alg, { sub: `user-${alg}` }))
      expect(response.status).toBe(200)
    }
  })

  it('picks up a rotated key without a restart, fetching the set again only for a new key id', async () => {
    const config = server.config.auth
    // The server waits 30 s between fetches of the set (jose's cooldown); this one does not.
    const authenticate = createAuthenticate(config, { jwksCooldownMs: 0 })
    await authenticate(`Bearer ${await jwks.sign('RS256', { sub: 'warm' })}`)
    const fetchesBefore = jwks.fetches
    await authenticate(`Bearer ${await jwks.sign('RS256', { sub: 'cached' })}`)
    expect(jwks.fetches).toBe(fetchesBefore)

    await jwks.rotate('RS256')
    const principal = await authenticate(`Bearer ${await jwks.sign('RS256', { sub: 'rotated' })}`)

    expect(principal).toEqual({ owner: 'rotated', admin: false })
    expect(jwks.fetches).toBe(fetchesBefore + 1)
  })

  it('refuses an HS256 token signed with a public key (algorithm confusion) and an unknown key', async () => {
    const confused = await signHs256(await jwks.publicKeyText('RS256'), { sub: 'mallory' })
    expect((await filesWith(confused)).status).toBe(401)
    expect((await filesWith(await jwks.signWithStrangerKey({ sub: 'mallory' }))).status).toBe(401)
  })
})

describe('CORS (CORS_ALLOWED_ORIGINS)', () => {
  let server: TestServer
  const ALLOWED = 'https://app.example.test'

  beforeAll(async () => {
    server = await startTestServer({ CORS_ALLOWED_ORIGINS: ALLOWED })
  })

  afterAll(async () => {
    await server?.close()
  })

  it('answers a tus preflight from an allowed origin with the methods and headers tus needs', async () => {
    const response = await fetch(server.tusEndpoint, {
      method: 'OPTIONS',
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'PATCH',
        'Access-Control-Request-Headers':
          'authorization, tus-resumable, upload-offset, content-type',
      },
    })
    expect(response.status).toBe(204)
    expect(response.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    const allowedHeaders = (
      response.headers.get('access-control-allow-headers') ?? ''
    ).toLowerCase()
    for (const header of ['authorization', 'tus-resumable', 'upload-offset', 'upload-metadata']) {
      expect(allowedHeaders).toContain(header)
    }
    expect(response.headers.get('access-control-allow-methods')).toContain('PATCH')
  })

  it('exposes Location, Upload-Offset and Upload-Expires to an allowed origin, and nothing to another', async () => {
    const allowed = await createUpload(server.tusEndpoint, 10, {}, { Origin: ALLOWED })
    expect(allowed.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    const exposed = (allowed.headers.get('access-control-expose-headers') ?? '').toLowerCase()
    const wanted = ['location', 'upload-offset', 'upload-expires', 'tus-checksum-algorithm']
    for (const header of wanted) {
      expect(exposed).toContain(header)
    }

    const other = await createUpload(server.tusEndpoint, 10, {}, { Origin: 'https://evil.test' })
    expect(other.headers.get('access-control-allow-origin')).toBeNull()
    const preflight = await fetch(`${server.url}/api/files`, {
      method: 'OPTIONS',
      headers: { Origin: 'https://evil.test', 'Access-Control-Request-Method': 'GET' },
    })
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull()
  })

  it('lets an allowed origin send the RUFH request headers and read the RUFH answer headers', async () => {
    const preflight = await fetch(server.tusEndpoint, {
      method: 'OPTIONS',
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'POST',
        'Access-Control-Request-Headers':
          'upload-draft-interop-version, upload-complete, upload-length, content-disposition',
      },
    })
    const allowedHeaders = (
      preflight.headers.get('access-control-allow-headers') ?? ''
    ).toLowerCase()
    for (const header of [
      'upload-draft-interop-version',
      'upload-complete',
      'upload-length',
      'content-disposition',
    ]) {
      expect(allowedHeaders).toContain(header)
    }

    const created = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { Origin: ALLOWED, 'Upload-Draft-Interop-Version': '8', 'Upload-Complete': '?0' },
    })
    expect(created.status).toBe(201)
    const exposed = (created.headers.get('access-control-expose-headers') ?? '').toLowerCase()
    for (const header of [
      'location',
      'upload-offset',
      'upload-complete',
      'upload-limit',
      'upload-length',
      'upload-draft-interop-version',
    ]) {
      expect(exposed).toContain(header)
    }
  })

  it('lets an allowed origin read API answers and errors', async () => {
    const preflight = await fetch(`${server.url}/api/files`, {
      method: 'OPTIONS',
      headers: {
        Origin: ALLOWED,
        'Access-Control-Request-Method': 'DELETE',
        'Access-Control-Request-Headers': 'authorization',
      },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe(ALLOWED)
    expect(preflight.headers.get('access-control-allow-methods')).toContain('DELETE')

    const missing = await fetch(`${server.url}/api/files/01a22063-b7db-76c5-ade9-046081fece3e`, {
      headers: { Origin: ALLOWED },
    })
    expect(missing.status).toBe(404)
    expect(missing.headers.get('access-control-allow-origin')).toBe(ALLOWED)
  })
})

/** A JWT with `alg: none`, which no verifier may accept. */
function unsignedToken(claims: Record<string, unknown>): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`
}
