/**
 * A tus-js-client upload in a process of its own, for tests that kill the client mid-upload:
 * `node upload-child.ts <endpoint> <file> <protocol> <chunkSize>`. It prints one JSON line per
 * event: `{"url": …}` once the upload exists, `{"acknowledged": n}` after each chunk.
 */
import { readFile } from 'node:fs/promises'
import * as tus from 'tus-js-client'
import type { TusOptions, TusProtocol } from './tus-client.ts'

const [endpoint, file, protocol, chunkSize] = process.argv.slice(2)
if (!endpoint || !file || !protocol || !chunkSize)
  throw new Error('usage: <endpoint> <file> <protocol> <chunkSize>')
const bytes = await readFile(file)
const options: TusOptions & tus.UploadOptions = {
  endpoint,
  protocol: protocol as TusProtocol,
  chunkSize: Number(chunkSize),
  retryDelays: [],
  metadata: { filename: 'killed.png', filetype: 'image/png' },
  onUploadUrlAvailable: () => console.log(JSON.stringify({ url: upload.url })),
  onChunkComplete: (_size, acknowledged) => console.log(JSON.stringify({ acknowledged })),
  onError: (error) => {
    console.error(error)
    process.exit(1)
  },
  onSuccess: () => console.log(JSON.stringify({ done: true })),
}
const upload = new tus.Upload(bytes, options)
upload.start()
