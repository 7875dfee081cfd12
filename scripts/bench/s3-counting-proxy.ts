/**
 * A proxy in front of the benchmark's S3 server that counts the requests passing through it, by
 * S3 operation, so the benchmark can report how many requests an upload through tusbox makes.
 * Only the tusbox instance that is counted talks through it: D's throughput figures never do.
 * `GET /__bench/counts` answers the counts since the last `DELETE /__bench/counts` (no bucket
 * name can start with `_`). It keeps the Host header as the client sent it, which is what the
 * request's signature covers.
 * Usage: node scripts/bench/s3-counting-proxy.ts <S3 endpoint>; prints {"url"} once it listens.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { pipeline } from 'node:stream/promises'

const target = process.argv[2]
if (!target) throw new Error('usage: s3-counting-proxy.ts <S3 endpoint>')
const upstream = new URL(target)
const COUNTS_PATH = '/__bench/counts'

/** The S3 operation a path-style request is, from its method and query. */
function operationOf(method: string, url: URL): string {
  const query = url.searchParams
  const objectKey = url.pathname.split('/').filter(Boolean).length > 1
  const operations: Record<string, () => string> = {
    GET: () =>
      query.has('uploadId')
        ? 'ListParts'
        : query.has('uploads')
          ? 'ListMultipartUploads'
          : objectKey
            ? 'GetObject'
            : 'ListObjects',
    HEAD: () => (objectKey ? 'HeadObject' : 'HeadBucket'),
    PUT: () => (query.has('partNumber') ? 'UploadPart' : objectKey ? 'PutObject' : 'CreateBucket'),
    POST: () =>
      query.has('uploads')
        ? 'CreateMultipartUpload'
        : query.has('uploadId')
          ? 'CompleteMultipartUpload'
          : 'DeleteObjects',
    DELETE: () =>
      query.has('uploadId') ? 'AbortMultipartUpload' : objectKey ? 'DeleteObject' : 'DeleteBucket',
  }
  return operations[method]?.() ?? method
}

let counts = new Map<string, number>()

const server = http.createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://proxy')
  if (url.pathname === COUNTS_PATH) {
    if (request.method === 'DELETE') counts = new Map()
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end(JSON.stringify(Object.fromEntries(counts)))
    return
  }
  const operation = operationOf(request.method ?? 'GET', url)
  counts.set(operation, (counts.get(operation) ?? 0) + 1)
  const forwarded = http.request({
    host: upstream.hostname,
    port: upstream.port,
    method: request.method,
    path: request.url,
    headers: request.headers,
  })
  forwarded.on('response', (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers)
    pipeline(answer, response).catch(() => response.destroy())
  })
  forwarded.on('error', () => {
    if (!response.headersSent) response.writeHead(502)
    response.end()
  })
  pipeline(request, forwarded).catch(() => forwarded.destroy())
})

server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`)
})
// The benchmark holds our stdin open: when it goes away, so do we, even if it was killed.
process.stdin.on('close', () => process.exit(0)).resume()
