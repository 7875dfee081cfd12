import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { v4 as uuidv4, v7 as uuidv7 } from 'uuid'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HTTP_LIMITS } from '../../src/http/server.ts'
import { pngBytes, sha256 } from '../helpers/fixtures.ts'
import {
  openConnection,
  parseReply,
  type RawHeaders,
  rawRequest,
  sendRaw,
} from '../helpers/raw-http.ts'
import { countRows, expectStoredOnce } from '../helpers/records.ts'
import { TEST_STORES, type TestStore } from '../helpers/stores.ts'
import { startTestServer, type TestServer } from '../helpers/test-server.ts'
import { uploadWithTus } from '../helpers/tus-client.ts'
import { encodeMetadata, patchUpload, TUS } from '../helpers/tus-requests.ts'

/**
 * Malformed and hostile requests, each with the exact answer it gets. The tus and storage cases
 * run on every store; the HTTP and JSON API cases on the file store (they never reach a store).
 * Cases already in tus-bad-input.test.ts are not repeated here.
 */

const MAX_SIZE = 1024 * 1024
const png = { filename: 'a.png', filetype: 'image/png' }
const OFFSET_STREAM = 'application/offset+octet-stream'

/** What a case observed, from fetch or from the wire. */
interface Reply {
  readonly status: number | undefined
  readonly headers: { get(name: string): string | null }
  readonly body: string
}

interface Ctx {
  readonly server: TestServer
  /** A new upload of `length` bytes (deferred when undefined) with `sent` bytes already PATCHed. */
  upload(length: number | undefined, sent?: number): Promise<string>
}

interface HostileCase {
  /** The request, as the test name states it. */
  readonly what: string
  readonly status: number | undefined
  /** The JSON error code; absent for answers without a body (HEAD, Node's own, success). */
  readonly code?: string
  /** Creates what the request aims at (an upload URL) before the "nothing changed" snapshot. */
  readonly setup?: (ctx: Ctx) => Promise<string>
  readonly send: (ctx: Ctx, target: string) => Promise<Reply>
  /** False for the few cases that are meant to change an upload (they check it themselves). */
  readonly untouched?: false
  readonly check?: (ctx: Ctx, target: string, reply: Reply) => Promise<void>
}

async function viaFetch(response: Promise<Response>): Promise<Reply> {
  const answer = await response
  return { status: answer.status, headers: answer.headers, body: await answer.text() }
}

async function viaWire(ctx: Ctx, bytes: string | Buffer): Promise<Reply> {
  const reply = await sendRaw(ctx.server.url, bytes)
  return {
    status: reply.status,
    headers: { get: (name) => reply.headers.get(name.toLowerCase()) ?? null },
    body: reply.body,
  }
}

function request(
  ctx: Ctx,
  method: string,
  target: string,
  headers: Record<string, string> = {},
  body?: string | Uint8Array,
): Promise<Reply> {
  const url = target.startsWith('http') ? target : `${ctx.server.url}${target}`
  return viaFetch(fetch(url, { method, headers, ...(body === undefined ? {} : { body }) }))
}

const create = (ctx: Ctx, headers: Record<string, string>) =>
  request(ctx, 'POST', '/files', { ...TUS, 'Upload-Metadata': encodeMetadata(png), ...headers })

const createWithLength = (length: string) => (ctx: Ctx) => create(ctx, { 'Upload-Length': length })

const createWithMetadata = (metadata: string) => (ctx: Ctx) =>
  request(ctx, 'POST', '/files', { ...TUS, 'Upload-Length': '10', 'Upload-Metadata': metadata })

const patch = (
  ctx: Ctx,
  url: string,
  headers: Record<string, string> = {},
  body: Uint8Array = pngBytes(10),
) =>
  request(
    ctx,
    'PATCH',
    url,
    { ...TUS, 'Content-Type': OFFSET_STREAM, 'Upload-Offset': '0', ...headers },
    body,
  )

/** The path part of an upload URL, for raw requests. */
const pathOf = (url: string) => new URL(url).pathname

const newUpload =
  (length: number | undefined, sent = 0) =>
  (ctx: Ctx) =>
    ctx.upload(length, sent)

async function offsetOf(url: string): Promise<string | null> {
  const head = await fetch(url, { method: 'HEAD', headers: TUS })
  return head.headers.get('upload-offset')
}

const ID = '01a22063-b7db-76c5-ade9-046081fece3e'

const idCases: HostileCase[] = [
  {
    what: 'HEAD on an id with encoded ../ segments',
    status: 404,
    send: (ctx) => request(ctx, 'HEAD', '/files/..%2F..%2Fetc%2Fpasswd', TUS),
  },
  {
    what: 'PATCH on an id with encoded ../ segments',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, '/files/..%2F..%2Fetc%2Fpasswd'),
  },
  {
    what: 'DELETE on an id with encoded ../ segments',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => request(ctx, 'DELETE', '/files/..%2F..%2Fetc%2Fpasswd', TUS),
  },
  {
    what: 'PATCH on an id with encoded backslashes',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, '/files/..%5C..%5Cetc%5Cpasswd'),
  },
  {
    what: 'PATCH on an id of encoded dots and slashes',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, '/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd'),
  },
  {
    what: 'PATCH on /files/%2e%2e, which URL parsing turns into /',
    status: 404,
    code: 'route_not_found',
    send: (ctx) => viaWire(ctx, rawRequest('PATCH', '/files/%2e%2e', tusPatchHeaders(0))),
  },
  {
    what: 'PATCH on a literal /files/../../etc/passwd',
    status: 404,
    code: 'route_not_found',
    send: (ctx) => viaWire(ctx, rawRequest('PATCH', '/files/../../etc/passwd', tusPatchHeaders(0))),
  },
  {
    what: 'PATCH on a uuid that is not a v7',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, `/files/${uuidv4()}`),
  },
  {
    what: 'PATCH on an upper-case uuidv7',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, `/files/${uuidv7().toUpperCase()}`),
  },
  {
    what: 'PATCH on a 5000-character id',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, `/files/${uuidv7()}${'a'.repeat(5000)}`),
  },
  {
    what: 'PATCH on an id followed by an encoded NUL',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => patch(ctx, `/files/${uuidv7()}%00`),
  },
  {
    what: 'PATCH on an upload URL with a path parameter',
    status: 404,
    code: 'file_not_found',
    setup: newUpload(100),
    send: (ctx, url) => patch(ctx, `${url};x=1`),
  },
  {
    what: 'PATCH on an upload URL with an extra path segment',
    status: 404,
    code: 'file_not_found',
    setup: newUpload(100),
    send: (ctx, url) => patch(ctx, `${url}/..%2F..%2Fx`),
  },
  {
    what: 'HEAD on an upload named by its storage key instead of its id',
    status: 404,
    setup: newUpload(100),
    send: (ctx, url) => {
      const id = url.slice(url.lastIndexOf('/') + 1)
      const key = ctx.server.container.uploads.storageKeyOf(id)
      return request(ctx, 'HEAD', `/files/${encodeURIComponent(key)}`, TUS)
    },
  },
  {
    what: 'DELETE on an unknown uuidv7',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => request(ctx, 'DELETE', `/files/${ID}`, TUS),
  },
]

const lengthCases: HostileCase[] = [
  ...['+10', '1e3', '0x10', '010', '-0', '', '9007199254740993'].map(
    (length): HostileCase => ({
      what: `POST with Upload-Length ${JSON.stringify(length)}`,
      status: 400,
      code: 'invalid_header',
      send: createWithLength(length),
    }),
  ),
  {
    what: 'POST with Upload-Length 2^53, over FILE_UPLOAD_MAX_SIZE',
    status: 413,
    code: 'max_size_exceeded',
    send: createWithLength('9007199254740992'),
  },
  {
    what: 'POST with Upload-Length sent twice',
    status: 400,
    code: 'invalid_header',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest('POST', '/files', [
          ['Tus-Resumable', '1.0.0'],
          ['Upload-Length', '10'],
          ['Upload-Length', '10'],
        ]),
      ),
  },
  {
    what: 'POST with both Upload-Length and Upload-Defer-Length',
    status: 400,
    code: 'invalid_length',
    send: (ctx) => create(ctx, { 'Upload-Length': '10', 'Upload-Defer-Length': '1' }),
  },
  {
    what: 'POST with Upload-Defer-Length 0',
    status: 400,
    code: 'invalid_header',
    send: (ctx) => create(ctx, { 'Upload-Defer-Length': '0' }),
  },
  {
    what: 'POST with Upload-Defer-Length "true"',
    status: 400,
    code: 'invalid_header',
    send: (ctx) => create(ctx, { 'Upload-Defer-Length': 'true' }),
  },
  {
    what: 'PATCH declaring a length over FILE_UPLOAD_MAX_SIZE on a deferred upload',
    status: 413,
    code: 'max_size_exceeded',
    setup: newUpload(undefined),
    send: (ctx, url) => patch(ctx, url, { 'Upload-Length': String(MAX_SIZE + 1) }),
  },
  {
    what: 'PATCH declaring a negative length on a deferred upload',
    status: 400,
    code: 'invalid_header',
    setup: newUpload(undefined),
    send: (ctx, url) => patch(ctx, url, { 'Upload-Length': '-5' }),
  },
  {
    what: 'PATCH declaring a length below the bytes already received',
    status: 400,
    code: 'invalid_length',
    setup: newUpload(undefined, 20),
    send: (ctx, url) => patch(ctx, url, { 'Upload-Length': '5', 'Upload-Offset': '20' }),
  },
  {
    what: 'PATCH with a Content-Length over FILE_UPLOAD_MAX_SIZE on a deferred upload',
    status: 413,
    code: 'size_exceeded',
    setup: newUpload(undefined),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [...tusPatchHeaders(0), ['Content-Length', String(MAX_SIZE + 1)]],
          'x'.repeat(10),
        ),
      ),
  },
  {
    what: 'PATCH declaring Upload-Length on an upload whose length is known',
    status: 400,
    code: 'invalid_length',
    setup: newUpload(100),
    send: (ctx, url) => patch(ctx, url, { 'Upload-Length': '100' }),
  },
  {
    what: 'a chunked PATCH body longer than Upload-Length',
    status: 413,
    code: 'max_size_exceeded',
    setup: newUpload(100),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [...tusPatchHeaders(0), ['Transfer-Encoding', 'chunked']],
          `96\r\n${'x'.repeat(150)}\r\n0\r\n\r\n`,
        ),
      ),
    check: async (_ctx, url) => {
      expect(await offsetOf(url)).toBe('0')
    },
  },
]

const offsetCases: HostileCase[] = [
  ...['-1', 'abc', '99999999999999999999', '1.0', ''].map(
    (offset): HostileCase => ({
      what: `PATCH with Upload-Offset ${JSON.stringify(offset)}`,
      status: 400,
      code: 'invalid_header',
      setup: newUpload(100),
      send: (ctx, url) => patch(ctx, url, { 'Upload-Offset': offset }),
    }),
  ),
  {
    what: 'PATCH without Upload-Offset',
    status: 400,
    code: 'missing_offset',
    setup: newUpload(100),
    send: (ctx, url) =>
      request(ctx, 'PATCH', url, { ...TUS, 'Content-Type': OFFSET_STREAM }, pngBytes(10)),
  },
  {
    what: 'PATCH with Upload-Offset sent twice',
    status: 400,
    code: 'invalid_header',
    setup: newUpload(100),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [...tusPatchHeaders(0), ['Upload-Offset', '0'], ['Content-Length', '1']],
          'x',
        ),
      ),
  },
  {
    what: 'PATCH at an offset beyond the bytes received',
    status: 409,
    code: 'offset_mismatch',
    setup: newUpload(100),
    send: (ctx, url) => patch(ctx, url, { 'Upload-Offset': '50' }),
  },
  {
    what: 'PATCH with a Content-Type parameter',
    status: 415,
    code: 'unsupported_media_type',
    setup: newUpload(100),
    send: (ctx, url) => patch(ctx, url, { 'Content-Type': `${OFFSET_STREAM}; charset=utf-8` }),
  },
  {
    what: 'PATCH without Content-Type',
    status: 415,
    code: 'unsupported_media_type',
    setup: newUpload(100),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [
            ['Tus-Resumable', '1.0.0'],
            ['Upload-Offset', '0'],
            ['Content-Length', '1'],
          ],
          'x',
        ),
      ),
  },
  {
    what: 'PATCH with Content-Type sent twice',
    status: 415,
    code: 'unsupported_media_type',
    setup: newUpload(100),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [...tusPatchHeaders(0), ['Content-Type', OFFSET_STREAM], ['Content-Length', '1']],
          'x',
        ),
      ),
  },
  {
    what: 'PATCH on /files, which has no upload id',
    status: 405,
    code: 'method_not_allowed',
    send: (ctx) => patch(ctx, '/files'),
    check: async (_ctx, _url, reply) => {
      expect(reply.headers.get('allow')).toBe('POST, OPTIONS')
    },
  },
  {
    what: 'HEAD on /files, which has no upload id',
    status: 405,
    send: (ctx) => request(ctx, 'HEAD', '/files', TUS),
  },
  {
    what: 'DELETE on /files, which has no upload id',
    status: 405,
    code: 'method_not_allowed',
    send: (ctx) => request(ctx, 'DELETE', '/files', TUS),
  },
  {
    what: 'POST on an upload URL (which used to create a new upload)',
    status: 405,
    code: 'method_not_allowed',
    setup: newUpload(100),
    send: (ctx, url) => request(ctx, 'POST', url, { ...TUS, 'Upload-Length': '10' }),
    check: async (_ctx, _url, reply) => {
      expect(reply.headers.get('allow')).toBe('GET, HEAD, PATCH, DELETE, OPTIONS')
    },
  },
]

const overrideCases: HostileCase[] = [
  {
    what: 'POST with X-HTTP-Method-Override: PATCH, which appends like a PATCH',
    status: 204,
    untouched: false,
    setup: newUpload(100),
    send: (ctx, url) =>
      request(
        ctx,
        'POST',
        url,
        {
          ...TUS,
          'X-HTTP-Method-Override': 'PATCH',
          'Content-Type': OFFSET_STREAM,
          'Upload-Offset': '0',
        },
        pngBytes(100).subarray(0, 40),
      ),
    check: async (_ctx, url, reply) => {
      expect(reply.headers.get('upload-offset')).toBe('40')
      expect(await offsetOf(url)).toBe('40')
    },
  },
  {
    what: 'POST with X-HTTP-Method-Override: DELETE, which terminates like a DELETE',
    status: 204,
    untouched: false,
    setup: newUpload(100),
    send: (ctx, url) => request(ctx, 'POST', url, { ...TUS, 'X-HTTP-Method-Override': 'DELETE' }),
    check: async (ctx, url) => {
      const head = await fetch(url, { method: 'HEAD', headers: TUS })
      expect(head.status).toBe(410)
      const id = url.slice(url.lastIndexOf('/') + 1)
      expect((await ctx.server.storedFiles()).filter((name) => name.includes(id))).toEqual([])
    },
  },
  ...[
    ['POST', 'GET'],
    ['POST', 'patch'],
    ['POST', 'HEAD'],
    ['POST', 'TRACE'],
    ['PATCH', 'DELETE'],
    ['DELETE', 'PATCH'],
  ].map(
    ([method = '', override = '']): HostileCase => ({
      what: `${method} with X-HTTP-Method-Override: ${override}`,
      status: 400,
      code: 'invalid_method_override',
      setup: newUpload(100),
      send: (ctx, url) =>
        request(
          ctx,
          method,
          url,
          {
            ...TUS,
            'X-HTTP-Method-Override': override,
            'Content-Type': OFFSET_STREAM,
            'Upload-Offset': '0',
          },
          method === 'DELETE' ? undefined : pngBytes(10),
        ),
    }),
  ),
]

const metadataCases: HostileCase[] = [
  {
    what: 'Upload-Metadata with a duplicate key',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(`filename ${b64('a.png')},filename ${b64('b.png')}`),
  },
  {
    what: 'Upload-Metadata with a NUL byte in a value tusbox keeps',
    status: 400,
    code: 'invalid_metadata',
    send: createWithMetadata(encodeMetadata({ ...png, note: 'a\u0000b' })),
  },
  {
    what: 'Upload-Metadata with a NUL byte in filetype',
    status: 400,
    code: 'invalid_metadata',
    send: createWithMetadata(encodeMetadata({ filename: 'a.png', filetype: 'image/png\u0000' })),
  },
  {
    what: 'Upload-Metadata with a NUL byte in batchId',
    status: 400,
    code: 'invalid_batch_id',
    send: createWithMetadata(encodeMetadata({ ...png, batchId: `${ID}\u0000` })),
  },
  {
    what: 'an empty Upload-Metadata',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(''),
  },
  {
    what: 'Upload-Metadata with an empty pair',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(`filename ${b64('a.png')},`),
  },
  {
    what: 'Upload-Metadata with a non-ASCII key',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(`f\u00efle ${b64('a.png')}`),
  },
  {
    what: 'Upload-Metadata with unpadded base64',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata('filename YQ'),
  },
  {
    what: 'Upload-Metadata with two spaces between key and value',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(`filename  ${b64('a.png')}`),
  },
  {
    what: 'Upload-Metadata with a __proto__ key',
    status: 400,
    code: 'invalid_header',
    send: createWithMetadata(`__proto__ ${b64('x')},filename ${b64('a.png')}`),
  },
  {
    what: 'a filename with a right-to-left override',
    status: 400,
    code: 'invalid_filename',
    send: createWithMetadata(
      encodeMetadata({ filename: 'evil\u202egnp.exe', filetype: 'image/png' }),
    ),
  },
  {
    what: 'a filetype that is not a MIME type',
    status: 400,
    code: 'invalid_metadata',
    send: createWithMetadata(encodeMetadata({ filename: 'a.png', filetype: 'not a type' })),
  },
  {
    what: 'a batchId carrying SQL',
    status: 400,
    code: 'invalid_batch_id',
    send: createWithMetadata(encodeMetadata({ ...png, batchId: "' OR 1=1 --" })),
  },
  {
    what: 'Tus-Resumable sent twice',
    status: 412,
    code: 'unsupported_tus_version',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest('POST', '/files', [
          ['Tus-Resumable', '1.0.0'],
          ['Tus-Resumable', '1.0.0'],
          ['Upload-Length', '10'],
        ]),
      ),
  },
  ...(
    [
      ['not partial or final', 'bogus'],
      ['an empty list', 'final;'],
      ['only spaces after final;', 'final;     '],
      ['garbage URLs', 'final;::: not-a-url %%%'],
      ['a URL that names no upload', 'final;/files/12345'],
      ['the URL of another host', `final;http://other-host.invalid/files/${uuidv7()}`],
      ['a URL outside /files', `final;/api/files/${uuidv7()}`],
    ] as const
  ).map(
    ([what, value]): HostileCase => ({
      what: `Upload-Concat with ${what}`,
      status: 400,
      code: 'invalid_upload_concat',
      send: (ctx) => create(ctx, { 'Upload-Concat': value }),
    }),
  ),
  {
    what: 'Upload-Concat: final with an Upload-Length',
    status: 400,
    code: 'invalid_upload_concat',
    send: (ctx) =>
      create(ctx, { 'Upload-Length': '10', 'Upload-Concat': `final;/files/${uuidv7()}` }),
  },
  {
    what: 'Upload-Concat: final naming more partial uploads than one final joins',
    status: 400,
    code: 'too_many_partial_uploads',
    send: (ctx) =>
      create(ctx, {
        'Upload-Concat': `final;${Array.from({ length: 257 }, () => `/files/${uuidv7()}`).join(' ')}`,
      }),
  },
  {
    what: 'Upload-Concat: final naming 10 000 partial uploads (the headers outgrow what Node reads)',
    status: 431,
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest('POST', '/files', [
          ['Tus-Resumable', '1.0.0'],
          [
            'Upload-Concat',
            `final;${Array.from({ length: 10_000 }, () => `/files/${uuidv7()}`).join(' ')}`,
          ],
        ]),
      ),
  },
  {
    what: 'Upload-Concat: partial with both Upload-Length and Upload-Defer-Length',
    status: 400,
    code: 'invalid_length',
    send: (ctx) =>
      create(ctx, {
        'Upload-Length': '10',
        'Upload-Defer-Length': '1',
        'Upload-Concat': 'partial',
      }),
  },
  {
    what: 'X-Forwarded-Proto: gopher',
    status: 400,
    code: 'invalid_header',
    send: (ctx) => create(ctx, { 'Upload-Length': '10', 'X-Forwarded-Proto': 'gopher' }),
  },
]

/** Requests that never reach a store: the HTTP layer, methods, and the JSON API. */
const protocolCases: HostileCase[] = [
  {
    what: 'a 20 KiB header',
    status: 431,
    code: 'headers_too_large',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [['X-Big', 'a'.repeat(20_000)]])),
  },
  {
    what: '400 headers of 50 bytes',
    status: 431,
    code: 'headers_too_large',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest(
          'GET',
          '/healthz',
          Array.from({ length: 400 }, (_, i) => [`X-H${i}`, 'b'.repeat(40)] as const),
        ),
      ),
  },
  {
    what: 'a 9000-character URL',
    status: 414,
    code: 'uri_too_long',
    send: (ctx) => viaWire(ctx, rawRequest('GET', `/api/files?x=${'a'.repeat(9000)}`)),
  },
  {
    what: 'a 20 KiB URL, which Node counts against the header limit',
    status: 431,
    code: 'headers_too_large',
    send: (ctx) => viaWire(ctx, rawRequest('GET', `/api/files?x=${'a'.repeat(20_000)}`)),
  },
  {
    what: 'an HTTP/1.1 request without Host',
    status: 400,
    code: 'missing_host',
    send: (ctx) => viaWire(ctx, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'),
  },
  {
    what: 'an HTTP/1.0 request without Host, which HTTP/1.0 allows',
    status: 200,
    send: (ctx) => viaWire(ctx, 'GET /healthz HTTP/1.0\r\n\r\n'),
  },
  {
    what: 'a Host with userinfo pointing elsewhere',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [['Host', '127.0.0.1@evil.test']])),
  },
  {
    what: 'a backslash in the path',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/files\\..\\..\\etc\\passwd')),
  },
  {
    what: 'Content-Length sent twice',
    status: 400,
    code: 'bad_request',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest(
          'POST',
          '/api/batches',
          [
            ['Content-Length', '2'],
            ['Content-Length', '2'],
          ],
          '{}',
        ),
      ),
  },
  {
    what: 'Content-Length together with Transfer-Encoding (request smuggling)',
    status: 400,
    code: 'bad_request',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest(
          'POST',
          '/api/batches',
          [
            ['Content-Length', '2'],
            ['Transfer-Encoding', 'chunked'],
          ],
          '0\r\n\r\n',
        ),
      ),
  },
  {
    what: 'a negative Content-Length',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('POST', '/api/batches', [['Content-Length', '-1']])),
  },
  {
    what: 'Transfer-Encoding that does not end in chunked',
    status: 400,
    code: 'bad_request',
    send: (ctx) =>
      viaWire(ctx, rawRequest('POST', '/api/batches', [['Transfer-Encoding', 'chunked, gzip']])),
  },
  {
    what: 'a malformed chunk size',
    status: 400,
    code: 'bad_request',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest('POST', '/api/batches', [['Transfer-Encoding', 'chunked']], 'zz\r\n{}\r\n'),
      ),
  },
  {
    what: 'a method that is not a token',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('BR@W', '/healthz')),
  },
  {
    what: 'a NUL byte in a header value',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [['X-Nul', 'a\u0000b']])),
  },
  {
    what: 'a header name with a space',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [['Upload Length', '5']])),
  },
  {
    what: 'a request line with a malformed HTTP version',
    status: 400,
    code: 'bad_request',
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [], '', { version: '1.x' })),
  },
  {
    what: "Expect: teapot (Node's answer, without a JSON body)",
    status: 417,
    send: (ctx) => viaWire(ctx, rawRequest('GET', '/healthz', [['Expect', 'teapot']])),
  },
  {
    what: "CONNECT (Node's doing: tusbox never sees it)",
    status: undefined,
    send: (ctx) => viaWire(ctx, rawRequest('CONNECT', '127.0.0.1:22', [])),
  },
  ...['PUT', 'TRACE', 'PROPFIND'].map(
    (method): HostileCase => ({
      what: `${method} on /files`,
      status: 405,
      code: 'method_not_allowed',
      send: (ctx) => viaWire(ctx, rawRequest(method, '/files', [['Tus-Resumable', '1.0.0']])),
    }),
  ),
  {
    what: 'GET on /files',
    status: 405,
    code: 'method_not_allowed',
    send: (ctx) => request(ctx, 'GET', '/files', TUS),
  },
  {
    what: 'PUT on /api/files/:id',
    status: 404,
    code: 'route_not_found',
    send: (ctx) => request(ctx, 'PUT', `/api/files/${ID}`, {}, '{}'),
  },
  {
    what: 'DELETE on /healthz',
    status: 404,
    code: 'route_not_found',
    send: (ctx) => request(ctx, 'DELETE', '/healthz'),
  },
  ...['0', '101', '-1', 'abc', '1.5', '%ZZ', '99999999999999999999'].map(
    (limit): HostileCase => ({
      what: `GET /api/files?limit=${limit}`,
      status: 400,
      code: 'invalid_limit',
      send: (ctx) => request(ctx, 'GET', `/api/files?limit=${limit}`),
    }),
  ),
  {
    what: 'GET /api/files with a batchId that is not an id',
    status: 400,
    code: 'invalid_batchId',
    send: (ctx) => request(ctx, 'GET', `/api/files?batchId=${encodeURIComponent("' OR 1=1 --")}`),
  },
  {
    what: 'GET /api/files with an after cursor that climbs paths',
    status: 400,
    code: 'invalid_after',
    send: (ctx) => request(ctx, 'GET', '/api/files?after=..%2F..%2Fetc%2Fpasswd'),
  },
  ...[
    '..%2F..%2Fetc%2Fpasswd',
    'not-an-id',
    `${ID}%00`,
    `${ID}${'0'.repeat(5000)}`,
    encodeURIComponent(`uploads/2026/11/${ID}`),
  ].map(
    (id): HostileCase => ({
      what: `GET /api/files/${id.length > 60 ? `${id.slice(0, 40)}… (${id.length} characters)` : id}`,
      status: 404,
      code: 'file_not_found',
      send: (ctx) => request(ctx, 'GET', `/api/files/${id}`),
    }),
  ),
  {
    what: 'GET /api/files/:id/content on an id with encoded ../ segments',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => request(ctx, 'GET', '/api/files/..%2F..%2Fetc%2Fpasswd/content'),
  },
  {
    what: 'DELETE /api/files/:id on an id with encoded ../ segments',
    status: 404,
    code: 'file_not_found',
    send: (ctx) => request(ctx, 'DELETE', '/api/files/..%2F..%2Fetc%2Fpasswd'),
  },
  {
    what: 'GET /api/batches/:id on an id that is not an id',
    status: 404,
    code: 'batch_not_found',
    send: (ctx) => request(ctx, 'GET', '/api/batches/..%2F..%2Fetc'),
  },
  {
    what: 'POST /api/batches/:id/complete on an id that is not an id',
    status: 404,
    code: 'batch_not_found',
    send: (ctx) => request(ctx, 'POST', '/api/batches/1%20OR%201=1/complete'),
  },
  ...['{', '[]', 'null', '"text"', '['.repeat(5000) + ']'.repeat(5000)].map(
    (body): HostileCase => ({
      what: `POST /api/batches with the body ${body.length > 20 ? `${body.slice(0, 10)}… (${body.length} characters)` : body}`,
      status: 400,
      code: 'invalid_body',
      send: (ctx) =>
        request(ctx, 'POST', '/api/batches', { 'Content-Type': 'application/json' }, body),
    }),
  ),
  {
    what: 'POST /api/batches with a body that is not UTF-8',
    status: 400,
    code: 'invalid_body',
    send: (ctx) =>
      request(ctx, 'POST', '/api/batches', {}, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])),
  },
  ...['"3"', '0', '1001', '2.5', '1e400', '-1', 'true'].map(
    (value): HostileCase => ({
      what: `POST /api/batches with expectedFiles ${value}`,
      status: 400,
      code: 'invalid_expected_files',
      send: (ctx) => request(ctx, 'POST', '/api/batches', {}, `{"expectedFiles":${value}}`),
    }),
  ),
  {
    what: 'POST /api/batches with a __proto__ member, which sets nothing',
    status: 201,
    untouched: false,
    send: (ctx) => request(ctx, 'POST', '/api/batches', {}, '{"__proto__":{"expectedFiles":5}}'),
    check: async (_ctx, _url, reply) => {
      expect(JSON.parse(reply.body)).toMatchObject({ expectedFiles: null })
    },
  },
  {
    what: 'POST /api/batches with a 1 MiB body, closing the connection it did not read',
    status: 413,
    code: 'body_too_large',
    send: (ctx) =>
      request(ctx, 'POST', '/api/batches', {}, `{"expectedFiles":1,"x":"${'a'.repeat(MAX_SIZE)}"}`),
    check: async (_ctx, _url, reply) => {
      expect(reply.headers.get('connection')).toBe('close')
    },
  },
  {
    what: 'POST /api/batches with a chunked 100 KiB body',
    status: 413,
    code: 'body_too_large',
    send: (ctx) => {
      const body = `{"x":"${'a'.repeat(100 * 1024)}"}`
      return viaWire(
        ctx,
        rawRequest(
          'POST',
          '/api/batches',
          [['Transfer-Encoding', 'chunked']],
          `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        ),
      )
    },
  },
]

/** Errors whose Node message names a path inside the store: the answer must not. */
const internalErrorCases: HostileCase[] = [
  {
    what: 'GET content of a stored file whose bytes vanished from the store',
    status: 500,
    code: 'internal_error',
    setup: async (ctx) => {
      const url = await ctx.upload(100, 100)
      await rm(await storePath(ctx, url))
      return url
    },
    send: (ctx, url) =>
      request(ctx, 'GET', `/api/files/${url.slice(url.lastIndexOf('/') + 1)}/content`),
  },
  {
    what: 'PATCH on an upload the store cannot stat (a symlink loop)',
    status: 500,
    code: 'internal_error',
    setup: async (ctx) => {
      const url = await ctx.upload(100)
      const file = await storePath(ctx, url)
      await rm(file)
      await symlink(file, file)
      return url
    },
    send: (ctx, url) => patch(ctx, url),
  },
]

async function storePath(ctx: Ctx, url: string): Promise<string> {
  const id = url.slice(url.lastIndexOf('/') + 1)
  const { storage } = ctx.server.config
  if (storage.backend !== 'file') throw new Error('only the file store has paths')
  return path.join(storage.directory, ctx.server.container.uploads.storageKeyOf(id))
}

/** The test name: the outcome first, then the request. */
function outcomeOf(hostile: HostileCase): string {
  if (hostile.status === undefined)
    return `closes the connection without an answer to ${hostile.what}`
  return `answers ${hostile.status}${hostile.code ? ` ${hostile.code}` : ''} to ${hostile.what}`
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64')
}

function tusPatchHeaders(offset: number): RawHeaders {
  return [
    ['Tus-Resumable', '1.0.0'],
    ['Content-Type', OFFSET_STREAM],
    ['Upload-Offset', String(offset)],
  ]
}

const RUFH = { 'Upload-Draft-Interop-Version': '8' }
const PARTIAL_UPLOAD = 'application/partial-upload'
const INCONSISTENT_LENGTH =
  'https://iana.org/assignments/http-problem-types#inconsistent-upload-length'

const rufhCreate = (ctx: Ctx, headers: Record<string, string>, body?: Uint8Array) =>
  request(ctx, 'POST', '/files', { ...RUFH, 'Content-Type': 'image/png', ...headers }, body)

const rufhAppend = (
  ctx: Ctx,
  url: string,
  headers: Record<string, string>,
  body: Uint8Array = pngBytes(10),
) =>
  request(
    ctx,
    'PATCH',
    url,
    {
      ...RUFH,
      'Content-Type': PARTIAL_UPLOAD,
      'Upload-Offset': '0',
      'Upload-Complete': '?0',
      ...headers,
    },
    body,
  )

function expectProblem(reply: Reply, type: string): void {
  expect(reply.headers.get('content-type')).toBe('application/problem+json')
  expect(JSON.parse(reply.body).type).toBe(type)
}

/** RUFH requests on the same endpoint and the same uploads (created here with tus). */
const rufhCases: HostileCase[] = [
  {
    what: 'a RUFH creation with Upload-Complete: ?2',
    status: 400,
    code: 'malformed_header',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?2' }),
  },
  {
    what: 'a RUFH creation with Upload-Complete: ?1;x',
    status: 400,
    code: 'malformed_header',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?1;x' }),
  },
  {
    what: 'a RUFH creation with Upload-Complete sent twice',
    status: 400,
    code: 'malformed_header',
    send: (ctx) =>
      viaWire(
        ctx,
        rawRequest('POST', '/files', [
          ['Upload-Draft-Interop-Version', '8'],
          ['Upload-Complete', '?0'],
          ['Upload-Complete', '?1'],
          ['Content-Length', '0'],
        ]),
      ),
  },
  {
    what: 'a RUFH creation with a negative Upload-Length',
    status: 400,
    code: 'malformed_header',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?0', 'Upload-Length': '-1' }),
  },
  {
    what: 'a RUFH creation with a 16-digit Upload-Length',
    status: 400,
    code: 'malformed_header',
    send: (ctx) =>
      rufhCreate(ctx, { 'Upload-Complete': '?0', 'Upload-Length': '1234567890123456' }),
  },
  {
    what: 'a RUFH creation with an Upload-Length above the limit',
    status: 413,
    code: 'max_size_exceeded',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?0', 'Upload-Length': '999999999999999' }),
    check: async (_ctx, _target, reply) => {
      expect(reply.headers.get('upload-limit')).toMatch(`max-size=${MAX_SIZE}`)
      expect(reply.body).toContain(
        `The file is 999999999999999 bytes; the limit is ${MAX_SIZE} bytes (FILE_UPLOAD_MAX_SIZE on the server).`,
      )
    },
  },
  {
    what: 'a RUFH creation whose Upload-Length and completing body disagree',
    status: 400,
    send: (ctx) =>
      rufhCreate(ctx, { 'Upload-Complete': '?1', 'Upload-Length': '99' }, pngBytes(100)),
    check: async (_ctx, _target, reply) => expectProblem(reply, INCONSISTENT_LENGTH),
  },
  {
    what: 'a RUFH creation sent as application/partial-upload',
    status: 400,
    code: 'partial_upload_on_creation',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?0', 'Content-Type': PARTIAL_UPLOAD }),
  },
  {
    what: 'a RUFH creation with a malformed Upload-Metadata',
    status: 400,
    code: 'invalid_metadata',
    send: (ctx) => rufhCreate(ctx, { 'Upload-Complete': '?0', 'Upload-Metadata': 'a b c' }),
  },
  {
    what: 'a RUFH creation whose Content-Disposition names a path',
    status: 400,
    code: 'invalid_filename',
    send: (ctx) =>
      rufhCreate(ctx, {
        'Upload-Complete': '?0',
        'Content-Disposition': 'attachment; filename="../../etc/passwd"',
      }),
  },
  {
    what: 'a RUFH request in interop version 99',
    status: 400,
    send: (ctx) =>
      rufhCreate(ctx, { 'Upload-Draft-Interop-Version': '99', 'Upload-Complete': '?0' }),
    check: async (_ctx, _target, reply) => {
      expect(reply.headers.get('content-type')).toBe('application/problem+json')
      expect(JSON.parse(reply.body)['supported-versions']).toEqual([3, 4, 5, 6, 7, 8])
    },
  },
  {
    what: 'a RUFH append with Upload-Offset: ?1',
    status: 400,
    code: 'malformed_header',
    setup: newUpload(100),
    send: (ctx, url) => rufhAppend(ctx, url, { 'Upload-Offset': '?1' }),
  },
  {
    what: 'a RUFH append with a negative Upload-Offset',
    status: 400,
    code: 'malformed_header',
    setup: newUpload(100),
    send: (ctx, url) => rufhAppend(ctx, url, { 'Upload-Offset': '-5' }),
  },
  {
    what: 'a RUFH interop 8 append that is not application/partial-upload',
    status: 415,
    code: 'unsupported_media_type',
    setup: newUpload(100),
    send: (ctx, url) => rufhAppend(ctx, url, { 'Content-Type': OFFSET_STREAM }),
  },
  {
    what: 'a RUFH append whose Upload-Length disagrees with the upload',
    status: 400,
    setup: newUpload(100),
    send: (ctx, url) => rufhAppend(ctx, url, { 'Upload-Length': '50' }),
    check: async (_ctx, _target, reply) => expectProblem(reply, INCONSISTENT_LENGTH),
  },
  {
    what: 'a RUFH append whose Content-Length goes past the known length',
    status: 400,
    setup: newUpload(100),
    send: (ctx, url) => rufhAppend(ctx, url, {}, pngBytes(200)),
    check: async (_ctx, url, reply) => {
      expectProblem(reply, INCONSISTENT_LENGTH)
      expect(await offsetOf(url)).toBe('0')
    },
  },
  {
    what: 'a chunked RUFH append that goes past the known length, which invalidates the upload',
    status: 400,
    setup: newUpload(100),
    send: (ctx, url) =>
      viaWire(
        ctx,
        rawRequest(
          'PATCH',
          pathOf(url),
          [
            ['Upload-Draft-Interop-Version', '8'],
            ['Content-Type', PARTIAL_UPLOAD],
            ['Upload-Offset', '0'],
            ['Upload-Complete', '?0'],
            ['Transfer-Encoding', 'chunked'],
          ],
          `c8\r\n${'x'.repeat(200)}\r\n0\r\n\r\n`,
        ),
      ),
    untouched: false,
    check: async (ctx, url, reply) => {
      expectProblem(reply, INCONSISTENT_LENGTH)
      const id = url.slice(url.lastIndexOf('/') + 1)
      const row = await ctx.server.knex('upload_files').where({ id }).first()
      expect(row.status).toBe('DELETED')
      expect((await ctx.server.storedFiles()).some((name) => name.includes(id))).toBe(false)
    },
  },
]

const STORE_CASES = [
  ...idCases,
  ...lengthCases,
  ...offsetCases,
  ...overrideCases,
  ...metadataCases,
  ...rufhCases,
]

/** A store directory inside a fresh directory, with a file beside it that must stay untouched. */
async function storeWithNeighbour(): Promise<{ parent: string; env: Record<string, string> }> {
  const parent = await mkdtemp(path.join(tmpdir(), 'tusbox-test-hostile-'))
  await mkdir(path.join(parent, 'etc'))
  await writeFile(path.join(parent, 'etc', 'passwd'), 'root:x:0:0\n')
  return { parent, env: { FILE_STORE_DIR: path.join(parent, 'store') } }
}

describe.each(TEST_STORES)('hostile requests on the $name store', (store: TestStore) => {
  let server: TestServer
  let parent: string | undefined
  const ctx: Ctx = {
    get server() {
      return server
    },
    async upload(length, sent = 0) {
      const response = await fetch(server.tusEndpoint, {
        method: 'POST',
        headers: {
          ...TUS,
          'Upload-Metadata': encodeMetadata(png),
          ...(length === undefined
            ? { 'Upload-Defer-Length': '1' }
            : { 'Upload-Length': String(length) }),
        },
      })
      expect(response.status).toBe(201)
      const url = response.headers.get('location') ?? ''
      if (sent > 0) {
        const bytes = pngBytes(Math.max(sent, 100)).subarray(0, sent)
        expect((await patch(ctx, url, {}, bytes)).status).toBe(204)
      }
      return url
    },
  }

  beforeAll(async () => {
    const outside = store.name === 'file' ? await storeWithNeighbour() : undefined
    parent = outside?.parent
    server = await startTestServer(
      { FILE_UPLOAD_MAX_SIZE: String(MAX_SIZE), ...outside?.env },
      store,
    )
  })

  afterAll(async () => {
    await server?.close()
    if (parent) await rm(parent, { recursive: true, force: true })
  })

  const cases =
    store.name === 'file' ? [...STORE_CASES, ...protocolCases, ...internalErrorCases] : STORE_CASES

  it.each(cases.map((hostile) => [outcomeOf(hostile), hostile] as const))(
    '%s',
    async (_name, hostile) => {
      const target = hostile.setup ? await hostile.setup(ctx) : ''
      const rowsBefore = await countRows(server.knex, 'upload_files')
      const filesBefore = await server.storedFiles()

      const reply = await hostile.send(ctx, target)

      expect(reply.status).toBe(hostile.status)
      if (hostile.code) {
        expect(reply.headers.get('content-type')).toMatch(/^application\/json/)
        expect(JSON.parse(reply.body).error.code).toBe(hostile.code)
      }
      // No stack trace, no path on this machine.
      expect(reply.body).not.toMatch(/ at .*\.(ts|js):\d+|node_modules/)
      expect(reply.body).not.toContain(tmpdir())
      if (hostile.untouched !== false) {
        expect(await countRows(server.knex, 'upload_files')).toBe(rowsBefore)
        expect(await server.storedFiles()).toEqual(filesBefore)
      }
      await hostile.check?.(ctx, target, reply)
    },
  )

  it('stores an upload from tus-js-client sending its PATCHes as POST with X-HTTP-Method-Override', async () => {
    const bytes = pngBytes(250_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'override.png', filetype: 'image/png' },
      chunkSize: 100_000,
      overridePatchMethod: true,
    })
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('is still healthy afterwards, stores a normal upload, and wrote nothing outside its store', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    const bytes = pngBytes(300_000)
    const { id } = await uploadWithTus(server.tusEndpoint, bytes, {
      metadata: { filename: 'after.png', filetype: 'image/png' },
      chunkSize: 100_000,
    })
    await expectStoredOnce(server.knex, id, bytes)
    const content = await fetch(`${server.url}/api/files/${id}/content`, { redirect: 'follow' })
    expect(sha256(new Uint8Array(await content.arrayBuffer()))).toBe(sha256(bytes))

    const stored = await server.storedFiles()
    expect(
      stored.filter((name) => !name.replace(/^multipart:/, '').startsWith('uploads/')),
    ).toEqual([])
    if (parent) {
      const entries = await readdir(parent, { recursive: true })
      expect(entries.filter((entry) => !entry.startsWith('store')).sort()).toEqual([
        'etc',
        path.join('etc', 'passwd'),
      ])
      expect(await readFile(path.join(parent, 'etc', 'passwd'), 'utf8')).toBe('root:x:0:0\n')
    }
  })
})

describe('slow clients', () => {
  // The real limits, with timeouts short enough for a test.
  const limits = {
    ...HTTP_LIMITS,
    headersTimeoutMs: 300,
    idleTimeoutMs: 1_000,
    keepAliveTimeoutMs: 300,
  }
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({}, TEST_STORES[0], { httpLimits: limits })
  })

  afterAll(async () => {
    await server?.close()
  })

  async function newUploadPath(length: number): Promise<string> {
    const response = await fetch(server.tusEndpoint, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': String(length), 'Upload-Metadata': encodeMetadata(png) },
    })
    expect(response.status).toBe(201)
    return new URL(response.headers.get('location') ?? '').pathname
  }

  function patchHead(uploadPath: string, offset: number, length: number): string {
    return rawRequest('PATCH', uploadPath, [
      ...tusPatchHeaders(offset),
      ['Content-Length', String(length)],
    ])
  }

  it('answers 408 with a JSON body to headers that stop arriving, and closes the connection', async () => {
    const connection = await openConnection(server.url)
    connection.socket.write('POST /files HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n')

    const reply = parseReply(await connection.closed)
    expect(reply.status).toBe(408)
    expect(reply.headers.get('content-type')).toBe('application/json')
    expect(JSON.parse(reply.body).error.code).toBe('request_timeout')
  })

  it('closes the connection of a PATCH whose body stops arriving, keeps the bytes that came, and lets the client resume', async () => {
    const uploadPath = await newUploadPath(100)
    const bytes = pngBytes(100)
    const connection = await openConnection(server.url)
    connection.socket.write(patchHead(uploadPath, 0, 100))
    connection.socket.write(bytes.subarray(0, 30))

    // No answer: the client is gone or hostile, and a tus client asks with HEAD where it stands.
    expect(await connection.closed).toBe('')
    const head = await fetch(`${server.url}${uploadPath}`, { method: 'HEAD', headers: TUS })
    expect(head.headers.get('upload-offset')).toBe('30')
    const rest = await patchUpload(`${server.url}${uploadPath}`, 30, bytes.subarray(30))
    expect(rest.status).toBe(204)
    const id = uploadPath.slice(uploadPath.lastIndexOf('/') + 1)
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('accepts a PATCH body that takes twice the idle timeout, as long as it keeps coming', async () => {
    const uploadPath = await newUploadPath(100)
    const bytes = pngBytes(100)
    const connection = await openConnection(server.url)
    connection.socket.write(patchHead(uploadPath, 0, 100))
    // A slow link: ten pieces 200 ms apart, each gap well inside the 1 s idle timeout.
    for (let piece = 0; piece < 10; piece++) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      connection.socket.write(bytes.subarray(piece * 10, piece * 10 + 10))
    }

    const reply = parseReply(await connection.closed)
    expect(reply.status).toBe(204)
    const id = uploadPath.slice(uploadPath.lastIndexOf('/') + 1)
    await expectStoredOnce(server.knex, id, bytes)
  })

  it('closes a keep-alive connection left unused', async () => {
    const connection = await openConnection(server.url)
    connection.socket.write(rawRequest('GET', '/healthz', [['Connection', 'keep-alive']]))

    expect(parseReply(await connection.closed).status).toBe(200)
  })
})
