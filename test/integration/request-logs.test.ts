import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLogger } from '../../src/lib/logger.ts'
import { pngBytes } from '../helpers/fixtures.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { createUpload } from '../helpers/tus-requests.ts'
import { runTusbox } from '../helpers/tusbox-process.ts'

type Entry = Record<string, unknown>

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('request ids in the log', () => {
  let server: TestServer
  const entries: Entry[] = []

  beforeAll(async () => {
    const logger = createLogger('debug', {
      format: 'json',
      write: (line) => entries.push(JSON.parse(line) as Entry),
    })
    server = await startTestServer({}, undefined, { logger })
  })

  afterAll(async () => {
    await server?.close()
  })

  /** The lines logged while `work` ran. */
  async function loggedDuring(work: () => Promise<unknown>): Promise<Entry[]> {
    const from = entries.length
    await work()
    return entries.slice(from)
  }

  it.each(['tus-v1', 'ietf-draft-05'] as const)(
    'puts the request id, and the upload id, on every line each request logs (protocol %s)',
    async (protocol) => {
      const ids: Record<string, string> = {}
      const upload = async (requestId: string) => {
        const { id } = await uploadWithTus(server.tusEndpoint, pngBytes(6_000), {
          protocol,
          metadata: { filename: `${requestId}.png` },
          chunkSize: 2_000,
          headers: { 'X-Request-Id': requestId },
        })
        ids[requestId] = id
      }

      const lines = await loggedDuring(() => Promise.all([upload('upload-a'), upload('upload-b')]))

      expect(
        lines.filter((line) => !['upload-a', 'upload-b'].includes(String(line.requestId))),
      ).toEqual([])
      for (const requestId of ['upload-a', 'upload-b']) {
        const mine = lines.filter((line) => line.requestId === requestId)
        expect(mine.map((line) => line.uploadId)).toEqual(mine.map(() => ids[requestId]))
        expect(mine.map((line) => line.message)).toEqual(
          expect.arrayContaining(['upload created', 'upload stored', 'request handled']),
        )
        // POST, three PATCHes: each request's own line, with its method and outcome.
        expect(
          mine.filter((line) => line.message === 'request handled').map((line) => line.method),
        ).toEqual(['POST', 'PATCH', 'PATCH', 'PATCH'])
      }
    },
  )

  it('answers with the X-Request-Id it was sent, on the API as on tus', async () => {
    const api = await fetch(`${server.url}/api/files`, { headers: { 'X-Request-Id': 'trace-42' } })
    const tus = await createUpload(
      server.tusEndpoint,
      100,
      { filename: 'echo.png' },
      { 'X-Request-Id': 'lb.7f3a_01' },
    )

    expect([api.status, tus.status]).toEqual([200, 201])
    expect(api.headers.get('x-request-id')).toBe('trace-42')
    expect(tus.headers.get('x-request-id')).toBe('lb.7f3a_01')
  })

  it('replaces a malformed X-Request-Id, answers with the new one and logs with it', async () => {
    const given = `bad id ${'x'.repeat(130)}`
    let response: Response | undefined

    const lines = await loggedDuring(async () => {
      response = await createUpload(
        server.tusEndpoint,
        100,
        { filename: 'renamed.png' },
        { 'X-Request-Id': given },
      )
    })

    const requestId = response?.headers.get('x-request-id')
    expect(response?.status).toBe(201)
    expect(requestId).toMatch(UUID)
    expect(lines.find((line) => line.message === 'upload created')?.requestId).toBe(requestId)
    expect(lines.every((line) => line.requestId === requestId)).toBe(true)
  })

  it('gives a request that sends none an id of its own', async () => {
    const first = await fetch(`${server.url}/healthz`)
    const second = await fetch(`${server.url}/healthz`)

    expect(first.headers.get('x-request-id')).toMatch(UUID)
    expect(second.headers.get('x-request-id')).toMatch(UUID)
    expect(first.headers.get('x-request-id')).not.toBe(second.headers.get('x-request-id'))
  })
})

describe('the log format of a tusbox process', () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer()
  })

  afterAll(async () => {
    await server?.close()
  })

  it('writes JSON lines into a pipe, and readable lines with LOG_FORMAT=pretty', async () => {
    const env = { DATABASE_URL: server.settings.DATABASE_URL as string }
    const json = await runTusbox(['migrate'], env)
    const pretty = await runTusbox(['migrate'], { ...env, LOG_FORMAT: 'pretty' })

    expect(json.code).toBe(0)
    expect(JSON.parse(json.stderr.trim())).toMatchObject({
      level: 'info',
      message: 'migrations are up to date',
    })
    expect(pretty.code).toBe(0)
    expect(pretty.stderr).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}migrations are up to date\n$/)
  })
})
