import {
  type Connection,
  openConnection,
  parseReply,
  type RawHeaders,
  type RawReply,
} from './raw-http.ts'
import { waitUntil } from './wait.ts'

/** What a server sent for one request: its 1xx interim answers in order, then the final one. */
export interface RufhReplies {
  readonly interims: readonly RawReply[]
  readonly final: RawReply | undefined
}

/** Splits the bytes of one exchange into its interim (1xx) answers and the final answer. */
export function parseReplies(received: string): RufhReplies {
  const interims: RawReply[] = []
  let rest = received
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return { interims, final: undefined }
    const status = Number(/^HTTP\/1\.\d (\d{3})/.exec(rest)?.[1])
    if (!(status >= 100 && status < 200)) return { interims, final: parseReply(rest) }
    interims.push(parseReply(rest.slice(0, end + 4)))
    rest = rest.slice(end + 4)
  }
}

/** A request head written byte for byte, so that the test controls when and how the body goes. */
function requestHead(method: string, target: string, headers: RawHeaders): string {
  const lines = [`${method} ${target} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close']
  for (const [name, value] of headers) lines.push(`${name}: ${value}`)
  return `${lines.join('\r\n')}\r\n\r\n`
}

/** One request on a connection of its own, whose body the test sends, or cuts, as it likes. */
export interface OpenRequest {
  readonly connection: Connection
  /** The interim and final answers received so far. */
  received(): RufhReplies
  /** Resolves once the answers received satisfy `ready`. */
  until(ready: (replies: RufhReplies) => boolean): Promise<RufhReplies>
  /** Writes body bytes; resolves once the socket took them. */
  send(bytes: Buffer): Promise<void>
  /** Resolves with every answer once the server closed the connection. */
  finished(): Promise<RufhReplies>
}

export async function openRequest(
  baseUrl: string,
  method: string,
  target: string,
  headers: RawHeaders,
): Promise<OpenRequest> {
  const connection = await openConnection(baseUrl)
  const chunks: Buffer[] = []
  const waiters = new Set<() => void>()
  connection.socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk)
    for (const wake of waiters) wake()
  })
  const received = () => parseReplies(Buffer.concat(chunks).toString('latin1'))
  connection.socket.write(requestHead(method, target, headers))
  return {
    connection,
    received,
    until(ready) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const replies = received()
          if (!ready(replies)) return
          waiters.delete(check)
          resolve(replies)
        }
        waiters.add(check)
        void connection.closed.then(() => {
          if (!waiters.has(check)) return
          waiters.delete(check)
          reject(new Error(`the connection closed first; received ${JSON.stringify(received())}`))
        })
        check()
      })
    },
    send(bytes) {
      return new Promise((resolve, reject) =>
        connection.socket.write(bytes, (error) => (error ? reject(error) : resolve())),
      )
    },
    async finished() {
      return parseReplies(await connection.closed)
    },
  }
}

/** One whole request; resolves with every answer once the server closed the connection. */
export async function rufhRequest(
  baseUrl: string,
  method: string,
  target: string,
  headers: RawHeaders,
  body: Buffer = Buffer.alloc(0),
): Promise<RufhReplies> {
  const withLength: RawHeaders =
    method === 'HEAD' || method === 'OPTIONS' || method === 'DELETE'
      ? headers
      : [...headers, ['Content-Length', String(body.length)]]
  const request = await openRequest(baseUrl, method, target, withLength)
  if (body.length > 0) await request.send(body)
  return request.finished()
}

/** The path of an absolute Location, for requests written by hand. */
export function pathOf(location: string | undefined): string {
  if (!location) throw new Error('no Location')
  return new URL(location).pathname
}

/** A JSON body, decoded as UTF-8 (raw replies are read one byte per character). */
export function jsonOf(reply: RawReply | undefined): unknown {
  return JSON.parse(Buffer.from(reply?.body ?? '', 'latin1').toString('utf8'))
}

/** Headers of an interop 8 (draft 12) request. */
export function interop8(headers: RawHeaders = []): RawHeaders {
  return [['Upload-Draft-Interop-Version', '8'], ...headers]
}

export interface ResumedOverStall {
  readonly path: string
  /** What the stalled append was answered, and how long after the HEAD was sent. */
  readonly stale: RufhReplies
  readonly staleEndedAfterMs: number
  readonly head: RufhReplies
  readonly completion: RufhReplies
}

/** An upload created with `?0` whose one append stalls: half its body sent, then silence. */
export interface StalledAppend {
  readonly path: string
  readonly stalled: OpenRequest
}

/**
 * Creates an upload and opens an append that sends half of `bytes` and then nothing, leaving its
 * connection open; resolves once `lockHeld` says the stalled append holds the upload.
 */
export async function stallAnAppend(
  baseUrl: string,
  bytes: Buffer,
  lockHeld: () => Promise<boolean>,
): Promise<StalledAppend> {
  const created = await rufhRequest(
    baseUrl,
    'POST',
    '/files',
    interop8([
      ['Upload-Complete', '?0'],
      ['Content-Type', 'image/png'],
    ]),
  )
  const path = pathOf(created.final?.headers.get('location'))
  const stalled = await openRequest(
    baseUrl,
    'PATCH',
    path,
    interop8([
      ['Upload-Offset', '0'],
      ['Upload-Complete', '?1'],
      ['Content-Type', 'application/partial-upload'],
      ['Content-Length', String(bytes.length)],
    ]),
  )
  await stalled.send(bytes.subarray(0, bytes.length / 2))
  await waitUntil('the stalled append holds the upload', lockHeld)
  return { path, stalled }
}

/**
 * A client whose append stalls gives up on it and resumes as RUFH says: HEAD for the offset,
 * then an append of the rest.
 */
export async function resumeOverStalledAppend(
  baseUrl: string,
  bytes: Buffer,
  lockHeld: () => Promise<boolean>,
): Promise<ResumedOverStall> {
  const { path, stalled } = await stallAnAppend(baseUrl, bytes, lockHeld)

  const headSentAt = performance.now()
  const staleEnded = stalled
    .until((replies) => replies.final !== undefined)
    .then((replies) => ({ replies, afterMs: performance.now() - headSentAt }))
  const head = await rufhRequest(baseUrl, 'HEAD', path, interop8())
  const offset = Number(head.final?.headers.get('upload-offset'))
  const completion = await rufhRequest(
    baseUrl,
    'PATCH',
    path,
    interop8([
      ['Upload-Offset', String(offset)],
      ['Upload-Complete', '?1'],
      ['Content-Type', 'application/partial-upload'],
    ]),
    bytes.subarray(offset),
  )
  const stale = await staleEnded
  stalled.connection.socket.destroy()
  return { path, stale: stale.replies, staleEndedAfterMs: stale.afterMs, head, completion }
}
