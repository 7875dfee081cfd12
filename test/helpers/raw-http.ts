import { connect, type Socket } from 'node:net'

/** A response as it came off the wire, or `status: undefined` when the server sent nothing. */
export interface RawReply {
  readonly status: number | undefined
  /** Lower-cased names; repeated headers keep the last value. */
  readonly headers: ReadonlyMap<string, string>
  readonly body: string
}

export type RawHeaders = ReadonlyArray<readonly [string, string]>

/**
 * An HTTP/1.1 request written byte for byte, for what fetch refuses to send: repeated headers,
 * bad framing, odd methods and targets, oversized heads. Adds Host and `Connection: close`
 * unless `headers` has them or `bare` is set.
 */
export function rawRequest(
  method: string,
  target: string,
  headers: RawHeaders = [],
  body = '',
  options: { readonly bare?: boolean; readonly version?: string } = {},
): string {
  const names = new Set(headers.map(([name]) => name.toLowerCase()))
  const lines = [`${method} ${target} HTTP/${options.version ?? '1.1'}`]
  if (!options.bare && !names.has('host')) lines.push('Host: 127.0.0.1')
  for (const [name, value] of headers) lines.push(`${name}: ${value}`)
  if (!options.bare && !names.has('connection')) lines.push('Connection: close')
  return `${lines.join('\r\n')}\r\n\r\n${body}`
}

/** An open connection to the server, with everything it sent so far and when it closed. */
export interface Connection {
  readonly socket: Socket
  /** Resolves with all bytes received once the server closes the connection. */
  readonly closed: Promise<string>
}

export async function openConnection(baseUrl: string): Promise<Connection> {
  const { hostname, port } = new URL(baseUrl)
  const socket = connect(Number(port), hostname)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  const closed = new Promise<string>((resolve) => {
    // A reset after the server's answer still counts: what was received is what matters.
    socket.on('error', () => undefined)
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')))
  })
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  return { socket, closed }
}

/**
 * Sends `bytes` on a new connection and reads until the server closes it. A string is written
 * as latin1, one byte per character, as replies are read.
 */
export async function sendRaw(baseUrl: string, bytes: string | Buffer): Promise<RawReply> {
  const connection = await openConnection(baseUrl)
  connection.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes)
  return parseReply(await connection.closed)
}

/** The first response in `received` (chunked bodies are decoded). */
export function parseReply(received: string): RawReply {
  const end = received.indexOf('\r\n\r\n')
  if (end === -1) return { status: undefined, headers: new Map(), body: '' }
  const [statusLine = '', ...headerLines] = received.slice(0, end).split('\r\n')
  const headers = new Map<string, string>()
  for (const line of headerLines) {
    const colon = line.indexOf(':')
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim())
  }
  const rest = received.slice(end + 4)
  const body =
    headers.get('transfer-encoding') === 'chunked'
      ? decodeChunked(rest)
      : rest.slice(0, Number(headers.get('content-length') ?? rest.length))
  return { status: Number(statusLine.split(' ')[1]), headers, body }
}

function decodeChunked(text: string): string {
  let body = ''
  let at = 0
  for (;;) {
    const lineEnd = text.indexOf('\r\n', at)
    const size = Number.parseInt(text.slice(at, lineEnd), 16)
    if (!(size > 0)) return body
    body += text.slice(lineEnd + 2, lineEnd + 2 + size)
    at = lineEnd + 2 + size + 2
  }
}
