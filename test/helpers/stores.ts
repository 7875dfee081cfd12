/**
 * Every storage backend the contract suites run against. Each entry gives the environment that
 * selects it; the S3 backend joins this list when it is built.
 */
export interface TestStore {
  readonly name: string
  readonly env: Record<string, string>
}

export const TEST_STORES: readonly TestStore[] = [
  { name: 'file', env: { STORAGE_BACKEND: 'file' } },
]
