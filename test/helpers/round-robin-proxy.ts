import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { forward } from './forward.ts'

export interface ProxiedRequest {
  readonly method: string
  readonly path: string
  /** Index into the targets of the instance that served it. */
  readonly instance: number
}

export interface RoundRobinProxy {
  readonly url: string
  /** Every request in arrival order, with the instance it went to. */
  readonly served: readonly ProxiedRequest[]
  /** The instances to spread requests over; until set, the proxy answers 503. */
  setTargets(targets: readonly string[]): void
  close(): Promise<void>
}

/**
 * A load balancer at its least helpful: each request goes to the next instance, so consecutive
 * requests of one upload never land on the same one. Bodies stream both ways, and a client that
 * drops its connection drops the upstream one too, as a real balancer does.
 */
export async function startRoundRobinProxy(): Promise<RoundRobinProxy> {
  let targets: readonly URL[] = []
  let next = 0
  const served: ProxiedRequest[] = []
  const agent = new http.Agent({ keepAlive: true })

  const server = http.createServer((request, response) => {
    if (targets.length === 0) {
      response.writeHead(503).end()
      return
    }
    const instance = next++ % targets.length
    const target = targets[instance] as URL
    served.push({ method: request.method ?? '', path: request.url ?? '', instance })
    forward(request, response, target, agent)
  })
  server.listen(0, '127.0.0.1')
  await new Promise<void>((resolve) => server.once('listening', resolve))

  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    served,
    setTargets(urls) {
      targets = urls.map((url) => new URL(url))
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      agent.destroy()
    },
  }
}
