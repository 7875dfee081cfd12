import { type PurgeDeps, type PurgeReport, purge } from '../../uploads/purge.ts'

export function uploadsPurgeHandler(deps: PurgeDeps) {
  return (): Promise<PurgeReport> => purge(deps)
}
