/**
 * Reference B: what a user would run instead of tusbox, bare @tus/server with the same
 * FileStore, no database, no hooks. A benchmark reference, not tusbox code: that is why it
 * imports the tus store itself (in tusbox only src/tus/datastore/ does).
 * Usage: node scripts/bench/tus-reference-server.ts <directory>; prints {"url"} once it listens.
 */
import type { AddressInfo } from 'node:net'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

const directory = process.argv[2]
if (!directory) throw new Error('usage: tus-reference-server.ts <directory>')

const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) })
const server = tus.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/files` })}\n`)
})
// The benchmark holds our stdin open: when it goes away, so do we, even if it was killed.
process.stdin.on('close', () => process.exit(0)).resume()
