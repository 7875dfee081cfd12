import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  BatchSchema,
  FilePageSchema,
  FileSchema,
  OutboxOverviewSchema,
} from '../../src/http/openapi/schemas.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { jwtSettings, signHs256 } from '../helpers/tokens.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'

const SECRET = 'a-shared-hs256-secret-for-openapi-tests'

describe('the OpenAPI description of /api', () => {
  let server: TestServer
  let headers: Record<string, string>

  beforeAll(async () => {
    server = await startTestServer({
      ...jwtSettings(SECRET),
    })
    const token = await signHs256(SECRET, { sub: 'reader', tusbox_admin: true })
    headers = { Authorization: `Bearer ${token}` }
  })

  afterAll(async () => {
    await server?.close()
  })

  it('is served as OpenAPI 3.1 without a token, with every /api route and its answers', async () => {
    const response = await fetch(`${server.url}/api/openapi.json`)
    expect(response.status).toBe(200)
    const doc = (await response.json()) as {
      openapi: string
      servers: { url: string }[]
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> }
    }

    expect(doc.openapi).toBe('3.1.0')
    expect(doc.servers).toEqual([{ url: '/api' }])
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    )
    expect(operations.sort()).toEqual(
      [
        'GET /files',
        'GET /files/{id}',
        'DELETE /files/{id}',
        'GET /files/{id}/content',
        'POST /batches',
        'GET /batches/{id}',
        'POST /batches/{id}/complete',
        'GET /admin/outbox',
      ].sort(),
    )
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['File', 'FilePage', 'Batch', 'NewBatch', 'Error', 'OutboxOverview']),
    )
    expect(doc.components.securitySchemes).toHaveProperty('bearer')
    expect(Object.keys(doc.paths['/files/{id}/content']?.get?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '206', '302', '404', '409', '410', '416']),
    )
  })

  it('describes what the API really answers: real answers parse against its schemas', async () => {
    const batch = await fetch(`${server.url}/api/batches`, {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ expectedFiles: 1 }),
    })
    const { id: batchId } = BatchSchema.parse(await batch.json())
    const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(3_000), {
      headers,
      metadata: { filename: 'described.png', batchId },
    })
    const api = async (path: string) =>
      (await fetch(`${server.url}/api${path}`, { headers })).json()

    expect(FileSchema.parse(await api(`/files/${id}`)).status).toBe('STORED')
    expect(FilePageSchema.parse(await api('/files')).files).toHaveLength(1)
    expect(BatchSchema.parse(await api(`/batches/${batchId}`)).completedAt).not.toBeNull()
    expect(OutboxOverviewSchema.parse(await api('/admin/outbox')).events.pending).toBe(2)
  })

  it('has a page to read it, open without a token', async () => {
    const page = await fetch(`${server.url}/api/docs`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await page.text()).toContain("fetch('openapi.json')")
  })

  it('tells, beside the content route and on its page, that the tus upload URL downloads the same bytes', async () => {
    const doc = (await (await fetch(`${server.url}/api/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { description?: string }>>
    }
    expect(doc.paths['/files/{id}/content']?.get?.description).toContain(
      '`GET /files/{id}` outside /api',
    )
    const page = await (await fetch(`${server.url}/api/docs`)).text()
    expect(page).toContain('<code>GET /files/{id}</code> there (the upload URL')
  })
})
