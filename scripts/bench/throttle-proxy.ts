/**
 * A TCP proxy in front of a tus server that lets each connection upload at most a given rate,
 * as a long or shared link does (a TCP window over a high round-trip time, a per-flow shaper).
 * Parallel uploads exist for such links: on loopback no connection is limited, so only through
 * this proxy does `parallelUploads` have something to win. Bytes to the server are paced per
 * connection; answers pass at once. The proxy forwards bytes untouched, so the Host header, and
 * with it every upload URL the server hands out, names the proxy.
 * Usage: node scripts/bench/throttle-proxy.ts <tus endpoint> <bytes per second>; prints {"url"},
 * the endpoint through the proxy, once it listens.
 */
import net, { type AddressInfo } from 'node:net'
import { Transform, type TransformCallback } from 'node:stream'

const [target, rateArgument] = process.argv.slice(2)
if (!target || !rateArgument) {
  throw new Error('usage: throttle-proxy.ts <tus endpoint> <bytes per second>')
}
const upstream = new URL(target)
const bytesPerMs = Number(rateArgument) / 1000

/** Lets bytes through no faster than the rate, from when the connection has something to send. */
class Pace extends Transform {
  #nextAt = 0

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    const now = performance.now()
    // An idle connection earns no credit: a burst after a pause is paced like any other bytes.
    this.#nextAt = Math.max(this.#nextAt, now)
    const wait = this.#nextAt - now
    this.#nextAt += chunk.length / bytesPerMs
    setTimeout(() => done(null, chunk), wait)
  }
}

const proxy = net.createServer((client) => {
  const server = net.connect(Number(upstream.port), upstream.hostname)
  const closeBoth = () => {
    client.destroy()
    server.destroy()
  }
  client.on('error', closeBoth).on('close', closeBoth)
  server.on('error', closeBoth).on('close', closeBoth)
  client.pipe(new Pace()).pipe(server)
  server.pipe(client)
})
proxy.listen(0, '127.0.0.1', () => {
  const { port } = proxy.address() as AddressInfo
  const url = new URL(upstream.pathname, `http://127.0.0.1:${port}`)
  process.stdout.write(`${JSON.stringify({ url: url.href })}\n`)
})
// The benchmark holds our stdin open: when it goes away, so do we, even if it was killed.
process.stdin.on('close', () => process.exit(0)).resume()
