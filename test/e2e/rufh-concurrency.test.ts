import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MiB, pngBytes } from '../helpers/fixtures.ts'
import { expectStoredOnce, uploadLocksHeld } from '../helpers/records.ts'
import {
  interop8,
  jsonOf,
  resumeOverStalledAppend,
  rufhRequest,
  stallAnAppend,
} from '../helpers/rufh-client.ts'
import { TEST_STORES } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'

describe.each(TEST_STORES)('RUFH requests over a stalled append, on the $name store', (store) => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, store)
  })

  afterAll(async () => {
    await server?.close()
  })

  it('ends the stalled append within a second of a new HEAD, and the resumed upload is exact', async () => {
    const bytes = pngBytes(2 * MiB)

    const resumed = await resumeOverStalledAppend(server.url, bytes, async () => {
      return (await uploadLocksHeld(server.knex)) === 1
    })

    expect(resumed.staleEndedAfterMs).toBeLessThan(1000)
    expect(resumed.stale.final?.status).toBe(409)
    expect(resumed.head.final?.status).toBe(204)
    const offset = Number(resumed.head.final?.headers.get('upload-offset'))
    expect(offset).toBeLessThanOrEqual(bytes.length / 2)
    expect(resumed.completion.final?.status).toBe(200)
    const { id } = jsonOf(resumed.completion.final) as { id: string }
    await expectStoredOnce(server.knex, id, bytes)
    expect(await uploadLocksHeld(server.knex)).toBe(0)
  })

  it('answers DELETE with 204, cutting the append in flight and removing the bytes', async () => {
    const bytes = pngBytes(MiB)
    const { path, stalled } = await stallAnAppend(server.url, bytes, async () => {
      return (await uploadLocksHeld(server.knex)) === 1
    })
    const id = path.slice('/files/'.length)

    const deleted = await rufhRequest(server.url, 'DELETE', path, interop8())

    expect(deleted.final?.status).toBe(204)
    const stale = await stalled.until((replies) => replies.final !== undefined)
    expect(stale.final?.status).toBe(409)
    stalled.connection.socket.destroy()
    expect((await server.knex('upload_files').where({ id }).first()).status).toBe('DELETED')
    expect((await server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
    const head = await rufhRequest(server.url, 'HEAD', path, interop8())
    expect(head.final?.status).toBe(410)
  })
})
