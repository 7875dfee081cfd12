import { connect, createServer, type Server, type Socket } from 'node:net'

export interface TcpProxyOptions {
  /** The port on 127.0.0.1 to forward to; setTarget() moves it (a restarted server). */
  readonly targetPort: number
  /**
   * How many bytes (both directions together) the next connection may carry before the proxy
   * cuts it; undefined lets it live. Called once per accepted connection, in accept order.
   */
  readonly budget?: () => number | undefined
}

/**
 * A TCP proxy on 127.0.0.1 between a client and a server: the network faults the tests need,
 * made at the byte level where clients and servers cannot tell them from real ones. It cuts
 * connections after a byte budget, holds the client's bytes after a count (a stalled PATCH the
 * server has read part of), and counts what it forwarded so tests wait on bytes, not on time.
 */
export class TcpProxy {
  /** Bytes forwarded from clients to the server, over every connection. */
  bytesToServer = 0
  connections = 0
  cuts = 0
  #targetPort: number
  readonly #budget: (() => number | undefined) | undefined
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  readonly #waiters = new Set<() => void>()
  #holdAfter: number | undefined
  readonly #held: Array<() => void> = []

  private constructor(options: TcpProxyOptions) {
    this.#targetPort = options.targetPort
    this.#budget = options.budget
    this.#server = createServer((client) => this.#accept(client))
  }

  static async start(options: TcpProxyOptions): Promise<TcpProxy> {
    const proxy = new TcpProxy(options)
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject)
      proxy.#server.listen(0, '127.0.0.1', resolve)
    })
    return proxy
  }

  get port(): number {
    const address = this.#server.address()
    if (typeof address !== 'object' || !address) throw new Error('the proxy is not listening')
    return address.port
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  setTarget(port: number): void {
    this.#targetPort = port
  }

  /**
   * Forwards client bytes until `bytesToServer` reaches `total`, then holds the rest (the
   * connections stay open) until release(). Resolves once the count is reached.
   */
  holdAfter(total: number): Promise<void> {
    this.#holdAfter = total
    return this.waitForBytesToServer(total)
  }

  /** Forwards what was held and everything after it. */
  release(): void {
    this.#holdAfter = undefined
    for (const resume of this.#held.splice(0)) resume()
  }

  waitForBytesToServer(total: number): Promise<void> {
    if (this.bytesToServer >= total) return Promise.resolve()
    return new Promise((resolve) => {
      const check = () => {
        if (this.bytesToServer < total) return
        this.#waiters.delete(check)
        resolve()
      }
      this.#waiters.add(check)
    })
  }

  /** Cuts every open connection, as a network that drops everything at once. */
  cutAll(): void {
    for (const socket of this.#sockets) socket.destroy()
  }

  async close(): Promise<void> {
    this.cutAll()
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }

  #accept(client: Socket): void {
    this.connections++
    const server = connect({ host: '127.0.0.1', port: this.#targetPort })
    const budget = this.#budget?.()
    let carried = 0
    const cut = () => {
      this.cuts++
      client.destroy()
      server.destroy()
    }
    /** Forwards what the budget allows; false once the connection is cut. */
    const forward = (chunk: Buffer, to: Socket, toServer: boolean): boolean => {
      const allowed = budget === undefined ? chunk.length : Math.min(chunk.length, budget - carried)
      let part = chunk.subarray(0, allowed)
      if (toServer && this.#holdAfter !== undefined) {
        part = part.subarray(0, Math.max(0, this.#holdAfter - this.bytesToServer))
      }
      carried += part.length
      if (part.length > 0) to.write(part)
      if (toServer) {
        this.bytesToServer += part.length
        for (const waiter of [...this.#waiters]) waiter()
      }
      if (part.length === chunk.length) return true
      if (part.length < allowed) {
        // Held, not cut: keep the rest until release(), reading nothing more meanwhile.
        client.pause()
        this.#held.push(() => {
          if (forward(chunk.subarray(part.length), to, toServer)) client.resume()
        })
        return true
      }
      cut()
      return false
    }
    for (const socket of [client, server]) {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
      // Either side going away ends the pair, as a real connection would.
      socket.on('error', () => {
        client.destroy()
        server.destroy()
      })
    }
    client.on('data', (chunk: Buffer) => void forward(chunk, server, true))
    server.on('data', (chunk: Buffer) => void forward(chunk, client, false))
    client.on('end', () => server.end())
    server.on('end', () => client.end())
    client.on('close', () => server.destroy())
    server.on('close', () => client.destroy())
  }
}

const MIN_FLAKY_BUDGET = 100
/** About four 64 KiB chunks: most uploads lose several connections. */
const MAX_FLAKY_BUDGET = 256 * 1024

/**
 * Budgets for a flaky network that cuts every upload through it at least once, whatever the
 * seed draws. Until the proxy has cut a connection, each gets less than `firstChunkBytes`, the
 * fewest bytes the first request carrying upload bytes carries (a chunk, or a whole partial
 * upload when smaller), so that request is cut on whichever connection it travels. After that,
 * one connection in five is left alone and the others are cut after 100 B to 256 KiB.
 */
export function flakyBudgets(
  proxy: () => TcpProxy,
  random: () => number,
  firstChunkBytes: number,
): () => number | undefined {
  return () => {
    const below = proxy().cuts === 0 ? firstChunkBytes : MAX_FLAKY_BUDGET
    if (below === MAX_FLAKY_BUDGET && random() < 0.2) return undefined
    return MIN_FLAKY_BUDGET + Math.floor(random() * (below - MIN_FLAKY_BUDGET))
  }
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}
