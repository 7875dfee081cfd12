/**
 * Reference A, the physical ceiling: a bare node:http server that does nothing but move request
 * bodies. `/file/<name>` appends the body to a file (so a 1 GiB upload in one request or in
 * 8 MiB requests leaves the same file, as a tus store would); `/discard` reads and drops it.
 * Usage: node scripts/bench/sink-server.ts <directory>; prints {"url"} once it listens.
 */
import { createWriteStream } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'

const directory = process.argv[2]
if (!directory) throw new Error('usage: sink-server.ts <directory>')

const server = createServer((request, response) => {
  const name = /^\/file\/([\w-]+)$/.exec(request.url ?? '')?.[1]
  const sink = name
    ? createWriteStream(path.join(directory, name), { flags: 'a' })
    : request.url === '/discard'
      ? undefined
      : null
  if (sink === null) {
    response.writeHead(404).end()
    return
  }
  const received = sink ? pipeline(request, sink) : drain(request)
  received.then(
    () => response.writeHead(204).end(),
    () => response.writeHead(500).end(),
  )
})

function drain(request: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve, reject) => {
    request.on('end', resolve).on('error', reject).resume()
  })
}

server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}` })}\n`)
})
// The benchmark holds our stdin open: when it goes away, so do we, even if it was killed.
process.stdin.on('close', () => process.exit(0)).resume()
