/**
 * The thread that hashes uploads for OffThreadSha256 (off-thread-sha256.ts). Messages arrive in
 * the order they were posted, so a `digest` request answers for every batch posted before it.
 *
 * Plain JavaScript, unlike the rest of tusbox: a thread that loads a .ts file starts Node's type
 * stripper (a WebAssembly compiler) of its own, which cost the process 19 MiB more than this
 * whole thread does (measured: 37 MiB against 18 MiB). The messages are typed by ToHasher there.
 */
import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

const port = parentPort
if (!port) throw new Error('sha256-worker.js runs only as a worker thread')

/** @type {Map<number, import('node:crypto').Hash>} */
const hashes = new Map()

port.on('message', (/** @type {import('./off-thread-sha256.ts').ToHasher} */ message) => {
  switch (message.type) {
    case 'update': {
      let hash = hashes.get(message.id)
      if (!hash) {
        hash = createHash('sha256')
        hashes.set(message.id, hash)
      }
      hash.update(new Uint8Array(message.buffer, 0, message.length))
      // The batch buffer goes back to be filled again: no allocation per batch on either side.
      port.postMessage({ type: 'consumed', buffer: message.buffer }, [message.buffer])
      return
    }
    case 'digest': {
      const hash = hashes.get(message.id) ?? createHash('sha256')
      // A copy: the upload may still grow, or its finish run again.
      port.postMessage({
        type: 'digest',
        request: message.request,
        sha256: hash.copy().digest('hex'),
      })
      return
    }
    case 'drop':
      hashes.delete(message.id)
      return
  }
})
