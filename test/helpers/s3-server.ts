import { buildApp } from 'fauxqs'

/**
 * A real S3-compatible HTTP server for the tests: fauxqs 2.4.1 with what tusbox's S3 store needs
 * and fauxqs lacks. It adds ListParts (the store reads an upload's parts with it) and
 * ListMultipartUploads (the tests use it to prove nothing is left behind), both read from
 * fauxqs's own in-memory state; raises the 11 MiB body limit; and binds 127.0.0.1 instead of
 * 0.0.0.0. Only the S3 side of fauxqs is used.
 */

interface FauxqsPart {
  readonly partNumber: number
  readonly body: Buffer
  readonly etag: string
  readonly lastModified: Date
}

interface FauxqsMultipartUpload {
  readonly uploadId: string
  readonly bucket: string
  readonly key: string
  readonly initiated: Date
  readonly parts: Map<number, FauxqsPart>
}

/** The parts of fauxqs's S3Store (not exported by the package) the shim reads. */
interface FauxqsS3Store {
  readonly multipartUploads: Map<string, FauxqsMultipartUpload>
}

export interface S3TestServer {
  readonly endpoint: string
  stop(): Promise<void>
}

/** Parts are at most S3_PART_SIZE; this leaves room for large part sizes in benchmarks. */
const MAX_BODY_BYTES = 1024 * 1024 * 1024

export async function startS3TestServer(): Promise<S3TestServer> {
  // The package exports only buildApp; its S3Store class sits beside it in dist/.
  const storeModule = new URL('../../node_modules/fauxqs/dist/s3/s3Store.js', import.meta.url).href
  const { S3Store } = (await import(storeModule)) as { S3Store: new () => FauxqsS3Store }
  const s3Store = new S3Store()
  const app = buildApp({ logger: false, stores: { s3Store } as never })
  app.removeAllContentTypeParsers()
  app.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: MAX_BODY_BYTES },
    (_req, body, done) => done(null, body),
  )
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'GET') return
    const answer = listMultipart(request.url, s3Store)
    if (!answer) return
    await reply.status(answer.status).header('content-type', 'application/xml').send(answer.xml)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (typeof address !== 'object' || !address) throw new Error('the S3 test server has no address')
  return { endpoint: `http://127.0.0.1:${address.port}`, stop: () => app.close() }
}

interface XmlAnswer {
  readonly status: number
  readonly xml: string
}

function listMultipart(rawUrl: string, store: FauxqsS3Store): XmlAnswer | undefined {
  const url = new URL(rawUrl, 'http://s3.local')
  const [bucket = '', ...keyParts] = url.pathname.slice(1).split('/').map(decodeURIComponent)
  const key = keyParts.join('/')
  const uploadId = url.searchParams.get('uploadId')
  if (key !== '' && uploadId !== null)
    return listParts(store, bucket, key, uploadId, url.searchParams)
  if (key === '' && url.searchParams.has('uploads'))
    return listUploads(store, bucket, url.searchParams)
  return undefined
}

function listParts(
  store: FauxqsS3Store,
  bucket: string,
  key: string,
  uploadId: string,
  query: URLSearchParams,
): XmlAnswer {
  const upload = store.multipartUploads.get(uploadId)
  if (!upload || upload.bucket !== bucket || upload.key !== key) {
    return {
      status: 404,
      xml: s3Error('NoSuchUpload', 'The specified multipart upload does not exist.'),
    }
  }
  const marker = Number(query.get('part-number-marker') ?? 0)
  const maxParts = Number(query.get('max-parts') ?? 1000)
  const after = [...upload.parts.values()]
    .filter((part) => part.partNumber > marker)
    .sort((a, b) => a.partNumber - b.partNumber)
  const page = after.slice(0, maxParts)
  const truncated = after.length > page.length
  const parts = page.map(
    (part) =>
      `<Part><PartNumber>${part.partNumber}</PartNumber><LastModified>${part.lastModified.toISOString()}</LastModified><ETag>${escapeXml(part.etag)}</ETag><Size>${part.body.length}</Size></Part>`,
  )
  return {
    status: 200,
    xml: xmlDocument('ListPartsResult', [
      `<Bucket>${escapeXml(bucket)}</Bucket><Key>${escapeXml(key)}</Key><UploadId>${escapeXml(uploadId)}</UploadId>`,
      `<PartNumberMarker>${marker}</PartNumberMarker><MaxParts>${maxParts}</MaxParts>`,
      `<NextPartNumberMarker>${page.at(-1)?.partNumber ?? marker}</NextPartNumberMarker>`,
      `<IsTruncated>${truncated}</IsTruncated>`,
      ...parts,
    ]),
  }
}

function listUploads(store: FauxqsS3Store, bucket: string, query: URLSearchParams): XmlAnswer {
  const prefix = query.get('prefix') ?? ''
  const uploads = [...store.multipartUploads.values()]
    .filter((upload) => upload.bucket === bucket && upload.key.startsWith(prefix))
    .sort((a, b) => a.key.localeCompare(b.key) || a.uploadId.localeCompare(b.uploadId))
    .map(
      (upload) =>
        `<Upload><Key>${escapeXml(upload.key)}</Key><UploadId>${escapeXml(upload.uploadId)}</UploadId><Initiated>${upload.initiated.toISOString()}</Initiated></Upload>`,
    )
  return {
    status: 200,
    xml: xmlDocument('ListMultipartUploadsResult', [
      `<Bucket>${escapeXml(bucket)}</Bucket><Prefix>${escapeXml(prefix)}</Prefix>`,
      '<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>',
      ...uploads,
    ]),
  }
}

function xmlDocument(root: string, children: readonly string[]): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${children.join('')}</${root}>`
}

function s3Error(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (char) => `&#${char.charCodeAt(0)};`)
}
