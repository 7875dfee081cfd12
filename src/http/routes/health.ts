import { Hono } from 'hono'

export interface ReadinessCheck {
  readonly name: string
  /** Resolves when the dependency answers; rejects with the reason it does not. */
  readonly check: () => Promise<void>
}

/** A check that has not answered by then counts as failed: /readyz must answer promptly. */
const CHECK_TIMEOUT_MS = 3_000

export function healthRoutes(checks: readonly ReadinessCheck[]): Hono {
  const routes = new Hono()

  routes.get('/healthz', (c) => c.json({ status: 'ok' }))

  routes.get('/readyz', async (c) => {
    const results = await Promise.all(checks.map(runCheck))
    const failed = results.filter((result) => result.status !== 'ok')
    const body = { status: failed.length === 0 ? 'ready' : 'unavailable', checks: results }
    if (failed.length === 0) return c.json(body)
    return c.json(
      {
        ...body,
        error: {
          code: 'not_ready',
          message: `Not ready: ${failed.map((result) => `${result.name} (${result.error})`).join(', ')}.`,
        },
      },
      503,
    )
  })

  return routes
}

async function runCheck(readiness: ReadinessCheck) {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
      CHECK_TIMEOUT_MS,
    )
  })
  try {
    await Promise.race([readiness.check(), timeout])
    return { name: readiness.name, status: 'ok' as const }
  } catch (error) {
    return {
      name: readiness.name,
      status: 'failed' as const,
      error: error instanceof Error ? error.message : String(error),
    }
  } finally {
    clearTimeout(timer)
  }
}
