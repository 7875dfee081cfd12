import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openConnection, parseReply, rawRequest } from '../helpers/raw-http.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { createUpload, encodeMetadata, patchUpload, TUS } from '../helpers/tus-requests.ts'
import { waitUntil } from '../helpers/wait.ts'

const TEXT = { filename: 'notes.txt', filetype: 'text/plain' }

/** Sessions and advisory locks of this server's upload locker, as Postgres sees them. */
async function lockerState(server: TestServer): Promise<{ sessions: number; locks: number }> {
  const { rows } = await server.knex.raw<{ rows: Array<{ sessions: number; locks: number }> }>(
    `SELECT count(DISTINCT a.pid)::int AS sessions, count(l.pid)::int AS locks
       FROM pg_stat_activity a
       LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory'
      WHERE a.application_name = 'tusbox-locker' AND a.datname = current_database()`,
  )
  const [state] = rows
  if (!state) throw new Error('the locker query returned no row')
  return state
}

describe('upload locks around creations', () => {
  let server: TestServer

  beforeEach(async () => {
    server = await startTestServer()
  })

  afterEach(async () => {
    await server?.close()
  })

  it('takes no upload lock for a creation without a body, and takes one for the PATCH that follows', async () => {
    const created = await Promise.all(
      [1, 2, 3].map(() => createUpload(server.tusEndpoint, 5, TEXT)),
    )
    expect(created.map((response) => response.status)).toEqual([201, 201, 201])
    // The locker connects for its first lock: no session means no creation asked for one.
    expect(await lockerState(server)).toEqual({ sessions: 0, locks: 0 })

    const location = created[0]?.headers.get('location')
    if (!location) throw new Error('the creation answered without a Location')
    const patched = await patchUpload(location, 0, Buffer.from('hello'))
    expect(patched.status).toBe(204)
    expect(await lockerState(server)).toEqual({ sessions: 1, locks: 0 })
  })

  it('holds the upload lock while a creation with a body writes it, and lets go when it answers', async () => {
    const body = Buffer.from('hello, world\n')
    const connection = await openConnection(server.url)
    const head = rawRequest('POST', '/files', [
      ...Object.entries(TUS),
      ['Upload-Length', String(body.length)],
      ['Upload-Metadata', encodeMetadata(TEXT)],
      ['Content-Type', 'application/offset+octet-stream'],
      ['Content-Length', String(body.length)],
    ])
    connection.socket.write(head + body.subarray(0, 5).toString('latin1'))
    await waitUntil('the creation holds its upload lock', async () => {
      return (await lockerState(server)).locks === 1
    })

    connection.socket.write(body.subarray(5))
    const reply = parseReply(await connection.closed)
    expect(reply.status).toBe(201)
    expect(reply.headers.get('upload-offset')).toBe(String(body.length))
    expect(await lockerState(server)).toEqual({ sessions: 1, locks: 0 })
  })
})
