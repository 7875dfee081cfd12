import { stat } from 'node:fs/promises'
import path from 'node:path'
import type { Knex } from 'knex'
import { TcpProxy } from './tcp-proxy.ts'
import { uploadWithTus } from './tus-client.ts'
import { waitUntil } from './wait.ts'

/** Generous room for the POST and the PATCH's headers within the bytes the proxy lets through. */
const HEADERS_ROOM = 4096

export interface StalledUpload {
  readonly proxy: TcpProxy
  readonly id: string
  /** The upload's bytes in the file store. */
  readonly file: string
  /** tus-js-client with no retries: rejects when its connection goes, resolves if released. */
  readonly client: Promise<unknown>
  /** Every answer the client got: method, status, Connection header. */
  readonly responses: ReadonlyArray<{ method: string; status: number; connection?: string }>
  /** The least the file holds once the server wrote what it received. */
  readonly minimumSaved: number
}

/**
 * One tus-js-client upload in a single PATCH, through a proxy that stops forwarding after
 * `stallAfter` bytes: the server has read part of the PATCH and waits for the rest. Resolves
 * once the server wrote what it received to the file (on the file store under `directory`).
 */
export async function stalledUpload(options: {
  readonly port: number
  readonly bytes: Buffer
  readonly stallAfter: number
  readonly knex: Knex
  readonly directory: string
}): Promise<StalledUpload> {
  const proxy = await TcpProxy.start({ targetPort: options.port })
  try {
    const stalled = proxy.holdAfter(options.stallAfter)
    let uploadUrl: string | undefined
    const responses: Array<{ method: string; status: number; connection?: string }> = []
    const client = uploadWithTus(`${proxy.url}/files`, options.bytes, {
      metadata: { filename: 'in-flight.png', filetype: 'image/png' },
      onBeforeRequest: (request) => {
        if (request.getMethod() === 'PATCH') uploadUrl = request.getURL()
      },
      onAfterResponse: (request, response) => {
        responses.push({
          method: request.getMethod(),
          status: response.getStatus(),
          connection: response.getHeader('Connection'),
        })
      },
    })
    // The caller observes the outcome later; meanwhile a rejection must not go unhandled.
    client.catch(() => undefined)
    await stalled
    if (!uploadUrl) throw new Error('the client sent no PATCH')
    const id = uploadUrl.slice(uploadUrl.lastIndexOf('/') + 1)
    const row = await options.knex('upload_files').where({ id }).first()
    const file = path.join(options.directory, row.storage_key)
    const minimumSaved = options.stallAfter - HEADERS_ROOM
    await waitUntil('the server wrote the bytes it received', async () => {
      return (await stat(file)).size >= minimumSaved
    })
    return { proxy, id, file, client, responses, minimumSaved }
  } catch (error) {
    await proxy.close()
    throw error
  }
}
