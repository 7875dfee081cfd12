/**
 * Resolves once `check` resolves true, asking again every 50 ms: for state another process or
 * worker changes (a row in Postgres), where no event reaches the test. Rejects after `timeoutMs`.
 */
export async function waitUntil(
  description: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${description}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
