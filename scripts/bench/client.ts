/**
 * The lean client the throughput figures are measured with: node:http writing slices of one
 * pre-generated buffer, so the client neither reads a disk nor allocates per request and is not
 * what limits a 1 GiB upload.
 */
import { randomInt } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import { Readable } from 'node:stream'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

/**
 * The bytes of every benchmark file: this pattern repeated. Lowercase lines of text, because
 * tusbox sniffs the first 64 KiB and keeps only allowed types (text/plain is one).
 */
const PATTERN = (() => {
  const pattern = Buffer.alloc(MiB)
  for (let index = 0; index < pattern.length; index++) {
    pattern[index] = index % 80 === 79 ? 0x0a : 0x61 + randomInt(26)
  }
  return pattern
})()

/** Byte `i` of a benchmark file is PATTERN[i % PATTERN.length]: any range of it, as slices. */
function* slices(offset: number, length: number): Generator<Buffer> {
  let position = offset
  const end = offset + length
  while (position < end) {
    const start = position % PATTERN.length
    const take = Math.min(PATTERN.length - start, end - position)
    yield PATTERN.subarray(start, start + take)
    position += take
  }
}

/** The whole file in one buffer, for tus-js-client (which slices a Buffer without copying). */
export function fileBytes(size: number): Buffer {
  const bytes = Buffer.allocUnsafe(size)
  let position = 0
  for (const slice of slices(0, size)) position += slice.copy(bytes, position)
  return bytes
}

/** A range of a benchmark file as a stream, for @aws-sdk/lib-storage. */
export function fileStream(size: number): Readable {
  return Readable.from(slices(0, size), { objectMode: false })
}

/** Keep-alive, like every real client; no socket limit, so 64 uploads are 64 connections. */
const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY })

/** Ends every request in flight (they fail) and every idle connection: nothing more is sent. */
export function closeClient(): void {
  agent.destroy()
}

/** A request that neither sends nor hears anything for this long is stuck: fail, do not hang. */
const IDLE_TIMEOUT_MS = 120_000

export interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

export interface RequestOptions {
  readonly method: string
  readonly headers?: Record<string, string>
  /** Bytes [offset, offset + length) of the benchmark file as the body. */
  readonly body?: { readonly offset: number; readonly length: number }
}

export async function send(url: string, options: RequestOptions): Promise<Answer> {
  const { body } = options
  const request = http.request(url, {
    agent,
    method: options.method,
    headers: { ...options.headers, 'Content-Length': String(body?.length ?? 0) },
  })
  request.setTimeout(IDLE_TIMEOUT_MS, () =>
    request.destroy(new Error(`${options.method} ${url}: no progress for ${IDLE_TIMEOUT_MS} ms`)),
  )
  let answeredEarly = false
  const answered = once(request, 'response').then(([response]) => {
    answeredEarly = true
    return response as http.IncomingMessage
  })
  // Rejections of `answered` are awaited below; this only keeps an early one from going unhandled.
  answered.catch(() => undefined)
  if (body) {
    for (const slice of slices(body.offset, body.length)) {
      // A refusal can come before the whole body: stop sending, the answer says why.
      if (answeredEarly) break
      if (!request.write(slice)) await Promise.race([once(request, 'drain'), answered])
    }
  }
  request.end()
  const response = await answered
  let text = ''
  response.setEncoding('utf8')
  for await (const chunk of response) text += chunk
  return { status: response.statusCode ?? 0, headers: response.headers, body: text }
}

/** Throws unless the answer has the status a well-behaved exchange gets. */
export function expectStatus(answer: Answer, status: number, what: string): Answer {
  if (answer.status !== status) {
    throw new Error(
      `${what}: expected ${status}, got ${answer.status} ${answer.body.slice(0, 300)}`,
    )
  }
  return answer
}

const TUS_RESUMABLE = { 'Tus-Resumable': '1.0.0' }
const METADATA = `filename ${Buffer.from('bench.txt').toString('base64')},filetype ${Buffer.from('text/plain').toString('base64')}`

/**
 * tus creation (POST without a body); resolves with the upload URL. `concat: 'partial'` creates
 * a partial upload (tus concatenation).
 */
export function tusCreate(endpoint: string, size: number, concat?: 'partial'): Promise<string> {
  return tusPost(endpoint, {
    'Upload-Length': String(size),
    ...(concat ? { 'Upload-Concat': concat } : {}),
  })
}

/** The final upload of tus concatenation, joined from complete partial uploads. */
export function tusConcatenate(endpoint: string, partials: readonly string[]): Promise<string> {
  return tusPost(endpoint, { 'Upload-Concat': `final;${partials.join(' ')}` })
}

async function tusPost(endpoint: string, headers: Record<string, string>): Promise<string> {
  const answer = await send(endpoint, {
    method: 'POST',
    headers: { ...TUS_RESUMABLE, 'Upload-Metadata': METADATA, ...headers },
  })
  expectStatus(answer, 201, `POST ${endpoint}`)
  const location = answer.headers.location
  if (!location) throw new Error(`POST ${endpoint} answered 201 without a Location`)
  return new URL(location, endpoint).href
}

export async function tusPatch(url: string, offset: number, length: number): Promise<void> {
  const answer = await send(url, {
    method: 'PATCH',
    headers: {
      ...TUS_RESUMABLE,
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
    },
    body: { offset, length },
  })
  expectStatus(answer, 204, `PATCH ${url} at ${offset}`)
  if (answer.headers['upload-offset'] !== String(offset + length)) {
    throw new Error(
      `PATCH ${url}: offset ${answer.headers['upload-offset']}, not ${offset + length}`,
    )
  }
}

/** A whole tus upload: creation, then PATCHes of `chunk` bytes (one PATCH when omitted). */
export async function tusUpload(endpoint: string, size: number, chunk = size): Promise<string> {
  const url = await tusCreate(endpoint, size)
  for (let offset = 0; offset < size; offset += chunk) {
    await tusPatch(url, offset, Math.min(chunk, size - offset))
  }
  return url
}

/**
 * A whole upload over RUFH (interop 8): one creation that carries every byte with
 * `Upload-Complete: ?1`. Node's client takes the 104s tusbox sends on the way as 'information'
 * events; the final answer is the stored file.
 */
export async function rufhUpload(endpoint: string, size: number): Promise<void> {
  const answer = await send(endpoint, {
    method: 'POST',
    headers: {
      'Upload-Draft-Interop-Version': '8',
      'Upload-Complete': '?1',
      'Content-Type': 'text/plain',
      'Content-Disposition': 'attachment; filename="bench.txt"',
    },
    body: { offset: 0, length: size },
  })
  expectStatus(answer, 200, `RUFH POST ${endpoint}`)
}

/** Reference A: the file's bytes sent to the sink, in requests of `chunk` bytes. */
export async function sinkUpload(url: string, size: number, chunk = size): Promise<void> {
  for (let offset = 0; offset < size; offset += chunk) {
    const answer = await send(url, {
      method: 'POST',
      body: { offset, length: Math.min(chunk, size - offset) },
    })
    expectStatus(answer, 204, `POST ${url}`)
  }
}
